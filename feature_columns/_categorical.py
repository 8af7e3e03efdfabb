"""Categorical columns: vocabulary list/file, identity, hash bucket, weighted."""

import os

import keras
import tensorflow as tf

from feature_columns import _base
from tfvideo.api._export import tf_export


def _check_key(fn, key):
    if not isinstance(key, str) or not key:
        raise _base.FeatureColumnError(f"{fn}: key must be a non-empty string, got {key!r}.")


def _column_dtype(fn, key, dtype, vocabulary=None):
    if dtype is None:
        if vocabulary is not None and vocabulary and all(isinstance(v, int) for v in vocabulary):
            return "int64"
        return "string"
    dtype = tf.as_dtype(dtype)
    if dtype == tf.string:
        return "string"
    if dtype.is_integer:
        return "int64"
    raise _base.FeatureColumnError(f"{fn} {key!r}: dtype {dtype.name} must be string or integer.")


def _raw_spec(key, dtype, multivalent):
    return {key: tf.TensorSpec([None, None] if key in multivalent else [None], dtype, name=key)}


class _VocabularyColumn(_base.CategoricalColumn):
    """Shared lookup for list and file vocabularies (Keras StringLookup / IntegerLookup).

    TensorFlow numbers the vocabulary 0..V-1 and OOV buckets V..V+k-1 (FarmHash64 of the
    value, integers hashed as their decimal string); Keras puts the k OOV indices first.
    The lookup's ids are remapped to TensorFlow's numbering.
    """

    fn_name = "categorical_column_with_vocabulary"

    def _init_common(self, key, dtype, num_oov_buckets, default_value):
        num_oov_buckets = int(num_oov_buckets)
        if num_oov_buckets < 0:
            raise _base.FeatureColumnError(f"{self.fn_name} {key!r}: num_oov_buckets={num_oov_buckets} must be >= 0.")
        if num_oov_buckets and default_value is not None:
            raise _base.FeatureColumnError(f"{self.fn_name} {key!r}: give num_oov_buckets or default_value, not both.")
        self.key = key
        self.dtype = dtype
        self.num_oov_buckets = num_oov_buckets
        self.default_value = -1 if default_value is None else int(default_value)

    @property
    def name(self):
        return self.key

    def vocabulary_values(self):
        raise NotImplementedError

    @property
    def num_buckets(self):
        return len(self.vocabulary_values()) + self.num_oov_buckets

    def raw_specs(self, multivalent=()):
        return _raw_spec(self.key, self.dtype, multivalent)

    def create_state(self):
        vocab = self.vocabulary_values()
        oov = max(self.num_oov_buckets, 1)
        name = _base.state_key(self)
        if self.dtype == "string":
            return keras.layers.StringLookup(vocabulary=list(vocab), num_oov_indices=oov, name=name)
        return keras.layers.IntegerLookup(
            vocabulary=list(vocab), num_oov_indices=oov, oov_method="farmhash", mask_token=None, name=name
        )

    def transform_ids(self, ctx):
        def run():
            raw = ctx.raw(self, self.key)
            _base.check_dtype(self, self.key, raw, "string" if self.dtype == "string" else "int")
            ids = _base.to_ragged_ids(self, self.key, raw)
            if self.dtype != "string":
                ids = tf.cast(ids, tf.int64)
            size = len(self.vocabulary_values())
            oov = max(self.num_oov_buckets, 1)

            def remap(values):
                looked = tf.cast(ctx.layer(self)(values), tf.int64)
                fallback = (
                    size + looked
                    if self.num_oov_buckets
                    else tf.fill(tf.shape(looked), tf.cast(self.default_value, tf.int64))
                )
                return tf.where(looked >= oov, looked - oov, fallback)

            return tf.ragged.map_flat_values(remap, ids), None

        return ctx.cached(self, "ids", run)


@_base.register_column
class VocabularyListColumn(_VocabularyColumn):
    """See `categorical_column_with_vocabulary_list`."""

    fn_name = "categorical_column_with_vocabulary_list"

    def __init__(self, key, vocabulary_list, dtype=None, default_value=-1, num_oov_buckets=0):
        _check_key(self.fn_name, key)
        vocabulary_list = list(vocabulary_list)
        if not vocabulary_list:
            raise _base.FeatureColumnError(f"{self.fn_name} {key!r}: vocabulary_list is empty.")
        if len(set(vocabulary_list)) != len(vocabulary_list):
            raise _base.FeatureColumnError(f"{self.fn_name} {key!r}: vocabulary_list has duplicates.")
        dtype = _column_dtype(self.fn_name, key, dtype, vocabulary_list)
        if dtype == "string" and not all(isinstance(v, str) for v in vocabulary_list):
            raise _base.FeatureColumnError(f"{self.fn_name} {key!r}: a string column needs a vocabulary of strings.")
        if dtype == "int64":
            vocabulary_list = [int(v) for v in vocabulary_list]
        self.vocabulary_list = vocabulary_list
        self._init_common(key, dtype, num_oov_buckets, None if default_value == -1 else default_value)

    def vocabulary_values(self):
        return self.vocabulary_list

    def get_config(self):
        return {
            "key": self.key,
            "vocabulary_list": list(self.vocabulary_list),
            "dtype": self.dtype,
            "default_value": self.default_value,
            "num_oov_buckets": self.num_oov_buckets,
        }


@tf_export("tfvideo.feature_columns.categorical_column_with_vocabulary_list")
def categorical_column_with_vocabulary_list(key, vocabulary_list, dtype=None, default_value=-1, num_oov_buckets=0):
    """Ids from an in-memory vocabulary: value `vocabulary_list[i]` -> i.

    Out-of-vocabulary values go to `len(vocabulary) + FarmHash64(value) % num_oov_buckets`
    when `num_oov_buckets > 0`, else to `default_value` (-1: ignored by embedding and
    indicator columns). dtype defaults to int64 for an all-int vocabulary, else string.
    """
    return VocabularyListColumn(key, vocabulary_list, dtype, default_value, num_oov_buckets)


@_base.register_column
class VocabularyFileColumn(_VocabularyColumn):
    """See `categorical_column_with_vocabulary_file`."""

    fn_name = "categorical_column_with_vocabulary_file"

    def __init__(
        self, key, vocabulary_file, vocabulary_size=None, num_oov_buckets=0, default_value=None, dtype="string"
    ):
        _check_key(self.fn_name, key)
        if not vocabulary_file or not tf.io.gfile.exists(vocabulary_file):
            raise _base.FeatureColumnError(
                f"{self.fn_name} {key!r}: vocabulary file {vocabulary_file!r} does not exist."
            )
        self.vocabulary_file = os.fspath(vocabulary_file)
        dtype = _column_dtype(self.fn_name, key, dtype)
        with tf.io.gfile.GFile(self.vocabulary_file, "r") as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines = lines[:-1]
        if vocabulary_size is not None:
            vocabulary_size = int(vocabulary_size)
            if vocabulary_size < 1 or vocabulary_size > len(lines):
                raise _base.FeatureColumnError(
                    f"{self.fn_name} {key!r}: vocabulary_size={vocabulary_size} "
                    f"but {self.vocabulary_file} has {len(lines)} lines."
                )
            lines = lines[:vocabulary_size]
        if not lines:
            raise _base.FeatureColumnError(f"{self.fn_name} {key!r}: vocabulary file {self.vocabulary_file} is empty.")
        if dtype == "int64":
            try:
                values = [int(v) for v in lines]
            except ValueError as e:
                raise _base.FeatureColumnError(f"{self.fn_name} {key!r}: {self.vocabulary_file}: {e}") from None
        else:
            values = lines
        if len(set(values)) != len(values):
            raise _base.FeatureColumnError(
                f"{self.fn_name} {key!r}: vocabulary file {self.vocabulary_file} has duplicates."
            )
        self._values = values
        self.vocabulary_size = vocabulary_size
        self._init_common(key, dtype, num_oov_buckets, default_value)

    def vocabulary_values(self):
        return self._values

    def get_config(self):
        return {
            "key": self.key,
            "vocabulary_file": self.vocabulary_file,
            "vocabulary_size": self.vocabulary_size,
            "num_oov_buckets": self.num_oov_buckets,
            "default_value": None if self.default_value == -1 else self.default_value,
            "dtype": self.dtype,
        }


@tf_export("tfvideo.feature_columns.categorical_column_with_vocabulary_file")
def categorical_column_with_vocabulary_file(
    key, vocabulary_file, vocabulary_size=None, num_oov_buckets=0, default_value=None, dtype="string"
):
    """Ids from a vocabulary file, one value per line (line i -> id i).

    The file is read when the column is made (a missing file is an error naming the
    column and path); the lookup is then embedded in the model and its SavedModel.
    OOV handling as in `categorical_column_with_vocabulary_list`.
    """
    return VocabularyFileColumn(key, vocabulary_file, vocabulary_size, num_oov_buckets, default_value, dtype)


@_base.register_column
class IdentityColumn(_base.CategoricalColumn):
    """See `categorical_column_with_identity`."""

    def __init__(self, key, num_buckets, default_value=None):
        _check_key("categorical_column_with_identity", key)
        num_buckets = int(num_buckets)
        if num_buckets < 1:
            raise _base.FeatureColumnError(f"categorical_column_with_identity {key!r}: num_buckets must be >= 1.")
        if default_value is not None and not 0 <= int(default_value) < num_buckets:
            raise _base.FeatureColumnError(
                f"categorical_column_with_identity {key!r}: default_value={default_value} is not in [0, {num_buckets})."
            )
        self.key = key
        self._num_buckets = num_buckets
        self.default_value = None if default_value is None else int(default_value)

    @property
    def name(self):
        return self.key

    @property
    def num_buckets(self):
        return self._num_buckets

    def raw_specs(self, multivalent=()):
        return _raw_spec(self.key, tf.int64, multivalent)

    def transform_ids(self, ctx):
        def run():
            raw = ctx.raw(self, self.key)
            _base.check_dtype(self, self.key, raw, "int")
            ids = tf.cast(_base.to_ragged_ids(self, self.key, raw), tf.int64)
            values = ids.flat_values
            in_range = tf.logical_and(values >= 0, values < self._num_buckets)
            if self.default_value is not None:
                values = tf.where(in_range, values, tf.cast(self.default_value, tf.int64))
            else:
                check = tf.debugging.Assert(
                    tf.reduce_all(in_range),
                    [
                        (
                            f"categorical_column_with_identity {self.key!r} (raw feature {self.key!r}): "
                            f"ids must be in [0, {self._num_buckets}) when no default_value is given; got"
                        ),
                        tf.boolean_mask(values, tf.logical_not(in_range)),
                    ],
                    summarize=10,
                )
                with tf.control_dependencies([check]):
                    values = tf.identity(values)
            return ids.with_flat_values(values), None

        return ctx.cached(self, "ids", run)

    def get_config(self):
        return {"key": self.key, "num_buckets": self._num_buckets, "default_value": self.default_value}


@tf_export("tfvideo.feature_columns.categorical_column_with_identity")
def categorical_column_with_identity(key, num_buckets, default_value=None):
    """Integer values used as ids directly, in `[0, num_buckets)`.

    Out-of-range ids become `default_value` if given, else raise an error naming the column.
    In dense input, -1 marks a missing value and is dropped.
    """
    return IdentityColumn(key, num_buckets, default_value)


@_base.register_column
class HashedColumn(_base.CategoricalColumn):
    """See `categorical_column_with_hash_bucket`."""

    def __init__(self, key, hash_bucket_size, dtype="string"):
        _check_key("categorical_column_with_hash_bucket", key)
        hash_bucket_size = int(hash_bucket_size)
        if hash_bucket_size < 1:
            raise _base.FeatureColumnError(
                f"categorical_column_with_hash_bucket {key!r}: hash_bucket_size must be >= 1."
            )
        self.key = key
        self.hash_bucket_size = hash_bucket_size
        self.dtype = _column_dtype("categorical_column_with_hash_bucket", key, dtype)

    @property
    def name(self):
        return self.key

    @property
    def num_buckets(self):
        return self.hash_bucket_size

    def raw_specs(self, multivalent=()):
        return _raw_spec(self.key, self.dtype, multivalent)

    def create_state(self):
        # Keras' Hashing without a salt is FarmHash Fingerprint64 (`to_hash_bucket_fast`) of the
        # value, integers as their decimal string: TensorFlow's hashed column exactly.
        return keras.layers.Hashing(num_bins=self.hash_bucket_size, name=_base.state_key(self))

    def transform_ids(self, ctx):
        def run():
            raw = ctx.raw(self, self.key)
            _base.check_dtype(self, self.key, raw, "string" if self.dtype == "string" else "int")
            ids = _base.to_ragged_ids(self, self.key, raw)
            return tf.ragged.map_flat_values(lambda v: tf.cast(ctx.layer(self)(v), tf.int64), ids), None

        return ctx.cached(self, "ids", run)

    def get_config(self):
        return {"key": self.key, "hash_bucket_size": self.hash_bucket_size, "dtype": self.dtype}


@tf_export("tfvideo.feature_columns.categorical_column_with_hash_bucket")
def categorical_column_with_hash_bucket(key, hash_bucket_size, dtype="string"):
    """Ids `FarmHash64(value) % hash_bucket_size` (integers hashed as their decimal string)."""
    return HashedColumn(key, hash_bucket_size, dtype)


@_base.register_column
class WeightedColumn(_base.CategoricalColumn):
    """See `weighted_categorical_column`."""

    def __init__(self, categorical_column, weight_feature_key, dtype="float32"):
        categorical_column = _base.deserialize_column(categorical_column)
        if not isinstance(categorical_column, _base.CategoricalColumn):
            raise _base.FeatureColumnError(f"weighted_categorical_column: {categorical_column!r} is not categorical.")
        _check_key("weighted_categorical_column", weight_feature_key)
        dtype = tf.as_dtype(dtype)
        if not dtype.is_floating:
            raise _base.FeatureColumnError(
                f"weighted_categorical_column {weight_feature_key!r}: dtype must be floating."
            )
        self.categorical_column = categorical_column
        self.weight_feature_key = weight_feature_key
        self.dtype = dtype.name

    @property
    def name(self):
        return f"{self.categorical_column.name}_weighted_by_{self.weight_feature_key}"

    @property
    def parents(self):
        return (self.categorical_column,)

    @property
    def num_buckets(self):
        return self.categorical_column.num_buckets

    def raw_specs(self, multivalent=()):
        specs = self.categorical_column.raw_specs(multivalent)
        # Weights have the ids' layout: [B], or [B, N] when the weight key is multivalent.
        id_key = getattr(self.categorical_column, "key", None)
        multivalent_ids = id_key in multivalent or self.weight_feature_key in multivalent
        shape = [None, None] if multivalent_ids else [None]
        specs[self.weight_feature_key] = tf.TensorSpec(shape, self.dtype, name=self.weight_feature_key)
        return specs

    def transform_ids(self, ctx):
        def run():
            ids, weights = self.categorical_column.transform_ids(ctx)
            if weights is not None:
                raise _base.FeatureColumnError(
                    f"weighted_categorical_column {self.name!r}: its column is already weighted."
                )
            raw = ctx.raw(self, self.weight_feature_key)
            _base.check_dtype(self, self.weight_feature_key, raw, "float")
            weights = self._align(ctx, raw)
            return ids, tf.cast(weights, tf.float32)

        return ctx.cached(self, "ids", run)

    def _align(self, ctx, raw):
        """Weights laid out like the ids: dense weights keep the entries whose id is present."""
        key = self.categorical_column.key if hasattr(self.categorical_column, "key") else None
        raw_ids = ctx.raw(self, key) if key else None
        if isinstance(raw, (tf.SparseTensor, tf.RaggedTensor)):
            return _base.to_ragged_ids(self, self.weight_feature_key, raw)
        if raw.shape.rank == 1:
            raw = raw[:, None]
        if raw_ids is not None and not isinstance(raw_ids, (tf.SparseTensor, tf.RaggedTensor)):
            if raw_ids.shape.rank == 1:
                raw_ids = raw_ids[:, None]
            ignore = "" if raw_ids.dtype == tf.string else tf.cast(-1, raw_ids.dtype)
            return tf.ragged.boolean_mask(raw, tf.not_equal(raw_ids, ignore))
        return tf.ragged.boolean_mask(raw, tf.not_equal(raw, 0))

    def get_config(self):
        return {
            "categorical_column": _base.serialize_column(self.categorical_column),
            "weight_feature_key": self.weight_feature_key,
            "dtype": self.dtype,
        }


@tf_export("tfvideo.feature_columns.weighted_categorical_column")
def weighted_categorical_column(categorical_column, weight_feature_key, dtype="float32"):
    """Attaches a weight per id, read from raw feature `weight_feature_key` (same layout as the ids).

    Embedding columns multiply embeddings by the weights (see `embedding_column` for which
    weights are ignored); indicator columns sum the weights per id.
    """
    return WeightedColumn(categorical_column, weight_feature_key, dtype)
