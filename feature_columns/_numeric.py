"""Numeric and bucketized columns."""

import itertools

import keras
import tensorflow as tf

from feature_columns import _base
from tfvideo.api._export import tf_export

_NUMERIC_DTYPES = ("float32", "float64", "int32", "int64")


@_base.register_column
class NumericColumn(_base.DenseColumn):
    """See `numeric_column`."""

    def __init__(self, key, shape=(1,), default_value=None, dtype="float32", normalizer_fn=None):
        if not isinstance(key, str) or not key:
            raise _base.FeatureColumnError(f"numeric_column: key must be a non-empty string, got {key!r}.")
        shape = (int(shape),) if isinstance(shape, int) else tuple(int(d) for d in shape)
        if not shape or any(d < 1 for d in shape):
            raise _base.FeatureColumnError(f"numeric_column {key!r}: shape {shape} must have positive dimensions.")
        dtype = tf.as_dtype(dtype).name
        if dtype not in _NUMERIC_DTYPES:
            raise _base.FeatureColumnError(f"numeric_column {key!r}: dtype {dtype} must be one of {_NUMERIC_DTYPES}.")
        if default_value is not None:
            flat = tf.reshape(tf.cast(tf.broadcast_to(default_value, shape), tf.float64), [-1]).numpy().tolist()
            if tf.as_dtype(dtype).is_integer:
                flat = [int(v) for v in flat]
            default_value = flat[0] if len(flat) == 1 else flat
        if normalizer_fn is not None and not callable(normalizer_fn):
            normalizer_fn = _base.function_from_config(normalizer_fn)
        self.key = key
        self.shape = shape
        self.default_value = default_value
        self.dtype = dtype
        self.normalizer_fn = normalizer_fn

    @property
    def name(self):
        return self.key

    @property
    def variable_shape(self):
        return self.shape

    @property
    def size(self):
        size = 1
        for d in self.shape:
            size *= d
        return size

    def raw_specs(self, multivalent=()):
        return {self.key: tf.TensorSpec([None, *self.shape], self.dtype, name=self.key)}

    def _default(self, batch):
        value = tf.constant(self.default_value, tf.float64)
        value = tf.cast(tf.broadcast_to(tf.reshape(value, [-1]), [self.size]), self.dtype)
        return tf.tile(value[None], [batch, 1])

    def transform_dense(self, ctx):
        def run():
            default = self._default if self.default_value is not None else None
            raw = ctx.raw(self, self.key, default)
            tensor, size = _base.to_dense_float(self, self.key, raw, self.shape)
            if self.normalizer_fn is not None:
                tensor = self.normalizer_fn(tensor)
            return tf.reshape(tf.cast(tensor, tf.float32), [-1, size])

        return ctx.cached(self, "dense", run)

    def get_config(self):
        return {
            "key": self.key,
            "shape": list(self.shape),
            "default_value": self.default_value,
            "dtype": self.dtype,
            "normalizer_fn": _base.function_to_config(self.normalizer_fn, f"numeric_column {self.key!r} normalizer_fn"),
        }


@tf_export("tfvideo.feature_columns.numeric_column")
def numeric_column(key, shape=(1,), default_value=None, dtype="float32", normalizer_fn=None):
    """A real-valued feature: float32 `[B, prod(shape)]` in the dense concat.

    Args:
      key: the raw feature's name.
      shape: the per-example shape (an int or a tuple); a `[B]` input is read as shape (1,).
      default_value: used when the feature is absent (from the input dict, or from a
        `tf.train.Example` parsed with `make_parse_example_spec`). Without it a missing
        feature is an error, never a silent zero.
      dtype: the raw feature's dtype in parsing and serving signatures.
      normalizer_fn: applied to the raw tensor before the float32 cast (as in
        `tf.feature_column.numeric_column`); must be a top-level function to serialize.
    """
    return NumericColumn(key, shape, default_value, dtype, normalizer_fn)


@_base.register_column
class BucketizedColumn(_base.DenseColumn, _base.CategoricalColumn):
    """See `bucketized_column`."""

    def __init__(self, source_column, boundaries):
        source_column = _base.deserialize_column(source_column)
        if not isinstance(source_column, NumericColumn):
            raise _base.FeatureColumnError(
                f"bucketized_column: source_column must be a numeric_column, got {source_column!r}."
            )
        boundaries = [float(b) for b in boundaries]
        if not boundaries or any(a >= b for a, b in itertools.pairwise(boundaries)):
            raise _base.FeatureColumnError(
                f"bucketized_column {source_column.key!r}: boundaries {boundaries} must be a non-empty increasing list."
            )
        self.source_column = source_column
        self.boundaries = boundaries

    @property
    def name(self):
        return f"{self.source_column.name}_bucketized"

    @property
    def parents(self):
        return (self.source_column,)

    @property
    def buckets_per_value(self):
        return len(self.boundaries) + 1

    @property
    def num_buckets(self):
        return self.source_column.size * self.buckets_per_value

    @property
    def variable_shape(self):
        return (*self.source_column.shape, self.buckets_per_value)

    def create_state(self):
        # Keras' Discretization uses the same Bucketize rule: bucket i holds [b[i-1], b[i]).
        return keras.layers.Discretization(
            bin_boundaries=self.boundaries, output_mode="int", name=_base.state_key(self)
        )

    def _bucket_indices(self, ctx):
        def run():
            values = self.source_column.transform_dense(ctx)  # [B, size]
            return tf.cast(ctx.layer(self)(values), tf.int64)

        return ctx.cached(self, "buckets", run)

    def transform_dense(self, ctx):
        one_hot = tf.one_hot(self._bucket_indices(ctx), self.buckets_per_value, dtype=tf.float32)
        return tf.reshape(one_hot, [-1, self.num_buckets])

    def transform_ids(self, ctx):
        buckets = self._bucket_indices(ctx)
        offsets = tf.range(self.source_column.size, dtype=tf.int64) * self.buckets_per_value
        return tf.RaggedTensor.from_tensor(buckets + offsets), None

    def get_config(self):
        return {"source_column": _base.serialize_column(self.source_column), "boundaries": list(self.boundaries)}


@tf_export("tfvideo.feature_columns.bucketized_column")
def bucketized_column(source_column, boundaries):
    """Discretizes a numeric column: bucket i is `[boundaries[i-1], boundaries[i])`.

    As a dense column: the one-hot of each value's bucket, `[B, size * (len(boundaries) + 1)]`.
    As a categorical column (in crosses, embeddings, indicators): value j of the source
    gets id `bucket + j * (len(boundaries) + 1)`, as in `tf.feature_column`.
    """
    return BucketizedColumn(source_column, boundaries)
