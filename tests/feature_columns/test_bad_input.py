"""Bad input is an error naming the column and the raw key; nothing is silently zero-filled."""

import numpy as np
import pytest
import tensorflow as tf

from tfvideo import feature_columns as fc


def test_missing_key_names_column_and_key():
    layer = fc.FeatureLayer(
        [fc.numeric_column("duration"), fc.indicator_column(fc.categorical_column_with_hash_bucket("camera", 5))]
    )
    with pytest.raises(ValueError, match=r"'camera'.*raw feature 'camera' is missing"):
        layer({"duration": tf.constant([1.0])})
    with pytest.raises(ValueError, match=r"'duration'.*raw feature 'duration' is missing"):
        layer({"camera": tf.constant(["a"])})


def test_missing_numeric_uses_default_value_only_when_given():
    layer = fc.FeatureLayer([fc.numeric_column("duration", default_value=2.5), fc.numeric_column("x")])
    out = layer({"x": tf.constant([1.0, 3.0])}).numpy()
    np.testing.assert_array_equal(out, [[2.5, 1.0], [2.5, 3.0]])
    with pytest.raises(ValueError, match="'x' is missing"):
        layer({"duration": tf.constant([1.0])})


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        (
            fc.indicator_column(fc.categorical_column_with_vocabulary_list("s", ["a"])),
            tf.constant([1, 2]),
            "int32, expected string",
        ),
        (fc.indicator_column(fc.categorical_column_with_identity("s", 3)), tf.constant(["a"]), "string, expected int"),
        (
            fc.indicator_column(fc.categorical_column_with_hash_bucket("s", 3, dtype="int64")),
            tf.constant(["a"]),
            "expected int",
        ),
        (fc.numeric_column("s"), tf.constant(["1.0"]), "string, expected numeric"),
        (fc.numeric_column("s", shape=(3,)), tf.zeros([2, 2]), r"shape \(2, 2\), expected \[B, 3\]"),
    ],
    ids=["vocab", "identity", "hash_int", "numeric_dtype", "numeric_shape"],
)
def test_wrong_dtype_or_shape(column, value, expected):
    with pytest.raises(ValueError, match=rf"column '(s|s_indicator)'.*raw feature 's'.*{expected}"):
        fc.FeatureLayer([column])({"s": value})


def test_identity_out_of_range_without_default_raises_in_graph_too():
    layer = fc.FeatureLayer([fc.indicator_column(fc.categorical_column_with_identity("camera_id", 4))])
    np.testing.assert_array_equal(
        layer({"camera_id": tf.constant([3, -1], tf.int64)}).numpy(), [[0, 0, 0, 1], [0, 0, 0, 0]]
    )
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"(?s)categorical_column_with_identity 'camera_id'.*\[0, 4\).*7"
    ):
        layer({"camera_id": tf.constant([1, 7], tf.int64)})
    ds = tf.data.Dataset.from_tensor_slices({"camera_id": tf.constant([[5]], tf.int64)}).map(layer)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"identity .*camera_id.*ids must be in \[0, 4\)"):
        list(ds)


def test_identity_out_of_range_with_default():
    layer = fc.FeatureLayer([fc.indicator_column(fc.categorical_column_with_identity("c", 4, default_value=0))])
    np.testing.assert_array_equal(layer({"c": tf.constant([9, 2], tf.int64)}).numpy(), [[1, 0, 0, 0], [0, 0, 1, 0]])


def test_missing_vocabulary_file(tmp_path):
    path = str(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match=rf"'camera'.*{path}.*does not exist"):
        fc.categorical_column_with_vocabulary_file("camera", path)


def test_bad_definitions():
    with pytest.raises(ValueError, match="wrap it in indicator_column or embedding_column"):
        fc.FeatureLayer([fc.categorical_column_with_hash_bucket("c", 3)])
    with pytest.raises(ValueError, match="hash_bucket 'c' cannot be crossed"):
        fc.crossed_column([fc.categorical_column_with_hash_bucket("c", 3), "d"], 10)
    with pytest.raises(ValueError, match="combiner 'max'"):
        fc.embedding_column(fc.categorical_column_with_identity("c", 3), 2, combiner="max")
    with pytest.raises(ValueError, match="increasing"):
        fc.bucketized_column(fc.numeric_column("x"), [1.0, 0.0])
    with pytest.raises(ValueError, match="two different columns are both named 'x'"):
        fc.FeatureLayer(
            [fc.numeric_column("x"), fc.bucketized_column(fc.numeric_column("x", default_value=1.0), [0.0])]
        )
    with pytest.raises(ValueError, match="cannot be serialized"):
        fc.numeric_column("x", normalizer_fn=lambda t: t).get_config()
