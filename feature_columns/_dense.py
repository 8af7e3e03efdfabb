"""Dense wrappers of categorical columns: embedding and indicator (multi-hot)."""

import math

import keras
import tensorflow as tf

from feature_columns import _base
from tfvideo.api._export import tf_export

_COMBINERS = ("mean", "sum", "sqrtn")


def _categorical_arg(fn, column):
    column = _base.deserialize_column(column)
    if not isinstance(column, _base.CategoricalColumn):
        raise _base.FeatureColumnError(f"{fn}: {column!r} is not a categorical column.")
    return column


def _valid(ids, weights, num_buckets, prune_weights=True):
    """Flat (row, id, weight) of the entries used: 0 <= id < n (and weight > 0 if prune_weights)."""
    rows = ids.value_rowids()
    values = ids.flat_values
    w = tf.ones_like(values, tf.float32) if weights is None else weights.flat_values
    keep = tf.logical_and(values >= 0, values < num_buckets)
    if weights is not None and prune_weights:
        keep = tf.logical_and(keep, w > 0)
    return tf.boolean_mask(rows, keep), tf.boolean_mask(values, keep), tf.boolean_mask(w, keep)


@_base.register_column
class EmbeddingColumn(_base.DenseColumn):
    """See `embedding_column`."""

    def __init__(self, categorical_column, dimension, combiner="mean", initializer=None, trainable=True):
        categorical_column = _categorical_arg("embedding_column", categorical_column)
        dimension = int(dimension)
        if dimension < 1:
            raise _base.FeatureColumnError(f"embedding_column {categorical_column.name!r}: dimension must be >= 1.")
        if combiner not in _COMBINERS:
            raise _base.FeatureColumnError(
                f"embedding_column {categorical_column.name!r}: combiner {combiner!r} is not one of {_COMBINERS}."
            )
        self.categorical_column = categorical_column
        self.dimension = dimension
        self.combiner = combiner
        if initializer is None:
            # tf.feature_column's default: truncated normal with stddev 1/sqrt(dimension).
            initializer = {
                "class_name": "TruncatedNormal",
                "config": {"mean": 0.0, "stddev": 1.0 / math.sqrt(dimension)},
            }
        self.initializer = keras.initializers.get(initializer)
        self.trainable = bool(trainable)

    @property
    def name(self):
        return f"{self.categorical_column.name}_embedding"

    @property
    def parents(self):
        return (self.categorical_column,)

    @property
    def variable_shape(self):
        return (self.dimension,)

    def create_state(self):
        layer = keras.layers.Embedding(
            self.categorical_column.num_buckets,
            self.dimension,
            embeddings_initializer=self.initializer,
            dtype="float32",  # The feature concat stays float32 under mixed precision.
            name=_base.state_key(self),
        )
        layer.build((None,))
        layer.trainable = self.trainable
        return layer

    def transform_dense(self, ctx):
        def run():
            ids, weights = self.categorical_column.transform_ids(ctx)
            rows, values, w = _valid(ids, weights, self.categorical_column.num_buckets, self.combiner != "sum")
            batch = ids.nrows(out_type=tf.int64)
            vectors = ctx.layer(self)(values) * w[:, None]
            total = tf.math.unsorted_segment_sum(vectors, rows, batch)
            if self.combiner == "sum":
                return total
            scale = w if self.combiner == "mean" else tf.square(w)
            norm = tf.math.unsorted_segment_sum(scale, rows, batch)
            if self.combiner == "sqrtn":
                norm = tf.sqrt(norm)
            return tf.math.divide_no_nan(total, norm[:, None])

        return ctx.cached(self, "dense", run)

    def get_config(self):
        return {
            "categorical_column": _base.serialize_column(self.categorical_column),
            "dimension": self.dimension,
            "combiner": self.combiner,
            "initializer": keras.initializers.serialize(self.initializer),
            "trainable": self.trainable,
        }


@tf_export("tfvideo.feature_columns.embedding_column")
def embedding_column(categorical_column, dimension, combiner="mean", initializer=None, trainable=True):
    """A learned `[num_buckets, dimension]` embedding (a Keras `Embedding`), combined per example.

    Combiners over an example's ids with weights w (1 unless weighted): "sum" = sum(w e),
    "mean" = sum(w e) / sum(w), "sqrtn" = sum(w e) / sqrt(sum(w^2)). Ids outside
    `[0, num_buckets)` (e.g. -1 from a vocabulary default) are ignored, and so are weights
    <= 0 for "mean"/"sqrtn" ("sum" keeps negative weights); an example with no ids gets
    zeros. This is TensorFlow's `safe_embedding_lookup_sparse`, rule for rule.
    """
    return EmbeddingColumn(categorical_column, dimension, combiner, initializer, trainable)


@_base.register_column
class IndicatorColumn(_base.DenseColumn):
    """See `indicator_column`."""

    def __init__(self, categorical_column):
        self.categorical_column = _categorical_arg("indicator_column", categorical_column)

    @property
    def name(self):
        return f"{self.categorical_column.name}_indicator"

    @property
    def parents(self):
        return (self.categorical_column,)

    @property
    def variable_shape(self):
        return (self.categorical_column.num_buckets,)

    def transform_dense(self, ctx):
        def run():
            ids, weights = self.categorical_column.transform_ids(ctx)
            n = self.categorical_column.num_buckets
            rows, values, w = _valid(ids, weights, n, prune_weights=False)
            if weights is None:
                w = tf.ones_like(w)
            batch = ids.nrows(out_type=tf.int64)
            counts = tf.math.unsorted_segment_sum(w, rows * n + values, batch * n)
            return tf.reshape(counts, [-1, n])

        return ctx.cached(self, "dense", run)

    def get_config(self):
        return {"categorical_column": _base.serialize_column(self.categorical_column)}


@tf_export("tfvideo.feature_columns.indicator_column")
def indicator_column(categorical_column):
    """Multi-hot `[B, num_buckets]`: the count of each id in the example (or its summed weight)."""
    return IndicatorColumn(categorical_column)
