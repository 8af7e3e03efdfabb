"""Crossed column: hashed feature crosses, id for id equal to TensorFlow's."""

import tensorflow as tf

from feature_columns import _base, _categorical
from tfvideo.api._export import tf_export

# The hash key `tf.sparse.cross_hashed` (and so `tf.feature_column.crossed_column`) uses by
# default for FingerprintCat64; kept explicit so ids stay stable if that default moves.
DEFAULT_HASH_KEY = 0xDECAFCAFFE


def _leaf_keys(keys):
    leaves = []
    for key in keys:
        if isinstance(key, CrossedColumn):
            leaves.extend(_leaf_keys(key.keys))
        else:
            leaves.append(key)
    return leaves


@_base.register_column
class CrossedColumn(_base.CategoricalColumn):
    """See `crossed_column`."""

    def __init__(self, keys, hash_bucket_size, hash_key=None):
        keys = [k if isinstance(k, str) else _base.deserialize_column(k) for k in keys]
        if len(keys) < 2:
            raise _base.FeatureColumnError(f"crossed_column: needs at least 2 keys, got {keys!r}.")
        for key in keys:
            if isinstance(key, _categorical.HashedColumn):
                raise _base.FeatureColumnError(
                    f"crossed_column: categorical_column_with_hash_bucket {key.key!r} cannot be crossed "
                    "(hashing before crossing adds collisions); pass the feature name as a string."
                )
            if not isinstance(key, (str, _base.CategoricalColumn)):
                raise _base.FeatureColumnError(
                    f"crossed_column: key {key!r} is neither a feature name nor categorical."
                )
        hash_bucket_size = int(hash_bucket_size)
        if hash_bucket_size < 1:
            raise _base.FeatureColumnError("crossed_column: hash_bucket_size must be >= 1.")
        self.keys = keys
        self.hash_bucket_size = hash_bucket_size
        self.hash_key = DEFAULT_HASH_KEY if hash_key is None else int(hash_key)

    @property
    def name(self):
        names = [k if isinstance(k, str) else k.name for k in _leaf_keys(self.keys)]
        return "_X_".join(sorted(names))

    @property
    def parents(self):
        return tuple(k for k in self.keys if not isinstance(k, str))

    @property
    def num_buckets(self):
        return self.hash_bucket_size

    def raw_specs(self, multivalent=()):
        specs = super().raw_specs(multivalent)
        for key in self.keys:
            if isinstance(key, str):
                specs[key] = tf.TensorSpec([None, None] if key in multivalent else [None], tf.string, name=key)
        return specs

    def _cross_input(self, ctx, key):
        if not isinstance(key, str):
            ids, weights = key.transform_ids(ctx)
            if weights is not None:
                raise _base.FeatureColumnError(
                    f"crossed_column {self.name!r}: weighted column {key.name!r} cannot be crossed."
                )
            return ids.to_sparse()
        raw = ctx.raw(self, key)
        _base.check_dtype(self, key, raw, "string_or_int")
        if isinstance(raw, tf.RaggedTensor):
            raw = raw.to_sparse()
        elif not isinstance(raw, tf.SparseTensor):
            # Dense raw features are crossed as they are (no missing-value dropping), as in TF.
            if raw.shape.rank == 1:
                raw = raw[:, None]
            elif raw.shape.rank != 2:
                raise _base.FeatureColumnError(
                    f"crossed_column {self.name!r}: raw feature {key!r} must be [B] or [B, N], got shape {raw.shape}."
                )
        if raw.dtype.is_integer and raw.dtype != tf.int64:
            raw = (
                tf.cast(raw, tf.int64)
                if not isinstance(raw, tf.SparseTensor)
                else tf.sparse.map_values(tf.cast, raw, tf.int64)
            )
        return raw

    def transform_ids(self, ctx):
        def run():
            inputs = [self._cross_input(ctx, key) for key in _leaf_keys(self.keys)]
            crossed = tf.sparse.cross_hashed(inputs, num_buckets=self.hash_bucket_size, hash_key=self.hash_key)
            return tf.RaggedTensor.from_sparse(crossed), None

        return ctx.cached(self, "ids", run)

    def get_config(self):
        return {
            "keys": [k if isinstance(k, str) else _base.serialize_column(k) for k in self.keys],
            "hash_bucket_size": self.hash_bucket_size,
            "hash_key": self.hash_key,
        }


@tf_export("tfvideo.feature_columns.crossed_column")
def crossed_column(keys, hash_bucket_size, hash_key=None):
    """Hashed cross of raw features (names) and categorical columns.

    Ids are `FingerprintCat64(hash_key, values...) % hash_bucket_size` over the Cartesian
    product of the keys' values per example (`tf.sparse.cross_hashed`, the op TensorFlow's
    `crossed_column` uses), with the same default hash key. Keras' `HashedCrossing`
    computes the same hash but only for one value per key, so it is not used here.
    """
    return CrossedColumn(keys, hash_bucket_size, hash_key)
