"""The reference: TensorFlow's deprecated `tf.feature_column`, evaluated in a v1 graph.

TF 2.21 still ships the columns and `tf.compat.v1.feature_column.input_layer`; the
categorical ids come from the columns' own `get_sparse_tensors` on a
`FeatureTransformationCache` (the internals `input_layer` uses).
"""

import numpy as np
import tensorflow as tf
from tensorflow.python.feature_column import feature_column_v2 as tf_fc2

v2 = tf.feature_column


def to_tensors(features):
    """NumPy arrays and SparseTensorValues -> tensors (in the current graph, or eager)."""
    out = {}
    for key, value in features.items():
        if isinstance(value, tf.compat.v1.SparseTensorValue):
            out[key] = tf.SparseTensor(value.indices, value.values, value.dense_shape)
        else:
            out[key] = tf.constant(value)
    return out


def _run(fetch):
    with tf.compat.v1.Session() as sess:
        sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
        return sess.run(fetch)


def dense(columns, features):
    """`input_layer(features, columns)` as a NumPy array [B, D]."""
    with tf.Graph().as_default():
        out = tf.compat.v1.feature_column.input_layer(to_tensors(features), columns)
        return _run(out)


def ids(column, features):
    """A categorical column's ids as a list (per example) of lists, in sparse index order."""
    with tf.Graph().as_default():
        cache = tf_fc2.FeatureTransformationCache(to_tensors(features))
        pair = column.get_sparse_tensors(cache, None)
        value = _run(pair.id_tensor)
    rows = [[] for _ in range(int(value.dense_shape[0]))]
    for (row, *_), v in zip(value.indices, value.values):
        rows[row].append(int(v))
    return rows


def parse_example_spec(columns):
    return tf.compat.v1.feature_column.make_parse_example_spec(columns)


def sparse_value(rows, dtype):
    """A SparseTensorValue [B, max_len] from a list of lists (for both implementations)."""
    indices = [[i, j] for i, row in enumerate(rows) for j in range(len(row))]
    values = np.array([v for row in rows for v in row], dtype=dtype)
    width = max([len(r) for r in rows] + [1])
    return tf.compat.v1.SparseTensorValue(np.array(indices, np.int64).reshape(-1, 2), values, [len(rows), width])
