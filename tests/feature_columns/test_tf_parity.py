"""Column-by-column parity with TensorFlow's `tf.feature_column` on the same inputs.

Ids are compared exactly; dense outputs with atol 1e-6 (float32 sums in a different order).
"""

import fc_tf_reference as ref
import numpy as np
import pytest
import tensorflow as tf

from feature_columns import _base
from feature_columns._feature_layer import _walk
from tfvideo import feature_columns as fc

ATOL = 1e-6


def our_ids(column, features):
    state = {}
    for c in _walk([column]):
        layer = c.create_state()
        if layer is not None:
            state[_base.state_key(c)] = layer
    ids, _ = column.transform_ids(_base._TransformContext(ref.to_tensors(features), state))
    return ids.to_list()


def our_dense(columns, features, embeddings=None):
    layer = fc.FeatureLayer(columns)
    for key, weights in (embeddings or {}).items():
        layer.column_layers[key].embeddings.assign(weights)
    return layer(ref.to_tensors(features)).numpy()


STRINGS = np.array([["a", "b", ""], ["zz", "", ""], ["", "", ""], ["c", "a", "q"], ["b", "yy", "x"]])
INTS = np.array([[3, 10, -1], [7, -1, -1], [-1, -1, -1], [42, 3, 0], [-5, 999, 10]], np.int64)
VALUES = np.array([[-3.0, 0.0], [0.99, 1.0], [1.0, 4.9999], [5.0, 7.5], [100.0, -0.5]], np.float32)


def scale_and_shift(x):
    return x * 2.0 + 1.0


def _pair(fn, *args, **kwargs):
    """The same column from both APIs (the TF one through tf.feature_column)."""
    return getattr(fc, fn)(*args, **kwargs), getattr(ref.v2, fn)(*args, **kwargs)


def test_numeric_with_shape_and_normalizer():
    ours, theirs = _pair("numeric_column", "v", shape=(2,), normalizer_fn=scale_and_shift)
    features = {"v": VALUES}
    np.testing.assert_allclose(our_dense([ours], features), ref.dense([theirs], features), atol=ATOL)
    assert our_dense([ours], features).shape == (5, 2)


def test_bucketized_dense_and_ids():
    boundaries = [0.0, 1.0, 5.0]
    ours = fc.bucketized_column(fc.numeric_column("v", shape=(2,)), boundaries)
    theirs = ref.v2.bucketized_column(ref.v2.numeric_column("v", shape=(2,)), boundaries)
    features = {"v": VALUES}
    np.testing.assert_array_equal(our_dense([ours], features), ref.dense([theirs], features))
    assert our_ids(ours, features) == ref.ids(theirs, features)
    # Hand check of the boundary rule: 1.0 falls in [1, 5) = bucket 2; 5.0 in [5, inf) = 3.
    assert our_ids(ours, features)[1] == [1, 4 + 2]
    assert our_ids(ours, features)[3] == [3, 4 + 3]


@pytest.mark.parametrize(
    "kwargs",
    [{"num_oov_buckets": 3}, {"default_value": 1}, {}],
    ids=["oov_buckets", "default_value", "default_minus_one"],
)
def test_vocabulary_list_strings(kwargs):
    ours, theirs = _pair("categorical_column_with_vocabulary_list", "s", ["a", "b", "c", "d"], **kwargs)
    for features in ({"s": STRINGS}, {"s": ref.sparse_value([["a", "x"], [], ["d", "d", "zz"]], object)}):
        assert our_ids(ours, features) == ref.ids(theirs, features)
        ours_ind, theirs_ind = fc.indicator_column(ours), ref.v2.indicator_column(theirs)
        np.testing.assert_array_equal(our_dense([ours_ind], features), ref.dense([theirs_ind], features))


def test_vocabulary_list_ints_hash_oov_like_tf():
    ours, theirs = _pair("categorical_column_with_vocabulary_list", "n", [3, 7, 42], num_oov_buckets=5)
    features = {"n": INTS}
    got = our_ids(ours, features)
    assert got == ref.ids(theirs, features)
    assert got[0][0] == 0 and got[3][0] == 2  # In-vocabulary ids are positions.
    assert all(3 <= i < 8 for i in got[4])  # OOV in [V, V + buckets).


def test_vocabulary_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("a\nb\nc\nzz\n")
    ours, theirs = _pair(
        "categorical_column_with_vocabulary_file", "s", str(path), vocabulary_size=3, num_oov_buckets=2
    )
    features = {"s": STRINGS}
    assert our_ids(ours, features) == ref.ids(theirs, features)
    assert ours.num_buckets == 5


def test_vocabulary_file_ints_with_default(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("42\n3\n7\n")
    ours, theirs = _pair("categorical_column_with_vocabulary_file", "n", str(path), default_value=0, dtype=tf.int64)
    features = {"n": INTS}
    got = our_ids(ours, features)
    assert got == ref.ids(theirs, features)
    assert got[3] == [0, 1, 0]  # 42 -> line 0, 3 -> line 1, OOV 0 -> default 0.


def test_identity_with_default_and_missing_entries():
    ours, theirs = _pair("categorical_column_with_identity", "n", 11, default_value=4)
    features = {"n": INTS}
    got = our_ids(ours, features)
    assert got == ref.ids(theirs, features)
    assert got[1] == [7] and got[2] == []  # -1 marks a missing value in dense input.
    assert got[3] == [4, 3, 0]  # 42 is out of range -> default 4.


@pytest.mark.parametrize("dtype", ["string", "int64"])
def test_hash_bucket(dtype):
    ours, theirs = _pair("categorical_column_with_hash_bucket", "h", 17, dtype=tf.as_dtype(dtype))
    features = {"h": STRINGS if dtype == "string" else INTS}
    got = our_ids(ours, features)
    assert got == ref.ids(theirs, features)
    # Independent check: FarmHash64 via to_hash_bucket_fast.
    assert got[0][0] == int(tf.strings.to_hash_bucket_fast("a" if dtype == "string" else "3", 17))


def test_crossed_strings_bucketized_identity():
    strings = np.array([["a", "b"], ["c", "c"], ["a", ""], ["b", "d"], ["e", "a"]])
    features = {"s": strings, "v": VALUES, "n": np.array([1, 2, 3, 0, 5], np.int64)}
    ours = fc.crossed_column(
        [
            "s",
            fc.bucketized_column(fc.numeric_column("v", shape=(2,)), [0.0, 1.0]),
            fc.categorical_column_with_identity("n", 6),
        ],
        1000,
    )
    theirs = ref.v2.crossed_column(
        [
            "s",
            ref.v2.bucketized_column(ref.v2.numeric_column("v", shape=(2,)), [0.0, 1.0]),
            ref.v2.categorical_column_with_identity("n", 6),
        ],
        1000,
    )
    got = our_ids(ours, features)
    assert got == ref.ids(theirs, features)
    assert all(len(row) == 2 * 2 * 1 for row in got)  # Cartesian product of 2 x 2 x 1 values.
    assert ours.name == theirs.name


def test_crossed_raw_int_and_string_keys():
    features = {"s": STRINGS, "n": INTS}
    ours, theirs = fc.crossed_column(["n", "s"], 31), ref.v2.crossed_column(["n", "s"], 31)
    got = our_ids(ours, features)
    assert got == ref.ids(theirs, features)
    assert len(got[0]) == 9  # Dense raw keys are crossed with their "" / -1 entries, as in TF.


def test_crossed_nested_with_hash_key_and_sparse_input():
    features = {"s": ref.sparse_value([["a"], ["b", "c"], [], ["a", "d"], ["e"]], object), "t": STRINGS[:, 0]}
    ours = fc.crossed_column(
        [fc.crossed_column(["s", "t"], 50), fc.categorical_column_with_vocabulary_list("t", ["a", "c"])],
        97,
        hash_key=123,
    )
    theirs = ref.v2.crossed_column(
        [ref.v2.crossed_column(["s", "t"], 50), ref.v2.categorical_column_with_vocabulary_list("t", ["a", "c"])],
        97,
        hash_key=123,
    )
    got = our_ids(ours, features)
    assert got == ref.ids(theirs, features)
    assert got[2] == []


@pytest.mark.parametrize("combiner", ["mean", "sum", "sqrtn"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_embedding_combiners_multivalent(combiner, weighted):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(6, 4)).astype(np.float32)
    features = {
        "s": STRINGS,
        "w": np.array([[0.5, 2.0, 0.0], [3.0, 0, 0], [0, 0, 0], [1.0, -1.0, 0.25], [2.0, 1.0, 1.0]], np.float32),
    }
    ours_cat, theirs_cat = _pair("categorical_column_with_vocabulary_list", "s", ["a", "b", "c"], num_oov_buckets=3)
    if weighted:
        ours_cat = fc.weighted_categorical_column(ours_cat, "w")
        theirs_cat = ref.v2.weighted_categorical_column(theirs_cat, "w")
    ours = fc.embedding_column(ours_cat, 4, combiner=combiner)
    theirs = ref.v2.embedding_column(
        theirs_cat, 4, combiner=combiner, initializer=tf.compat.v1.constant_initializer(table)
    )
    got = our_dense([ours], features, {_base.state_key(ours): table})
    np.testing.assert_allclose(got, ref.dense([theirs], features), atol=ATOL)
    np.testing.assert_array_equal(got[2], 0.0)  # No ids -> zeros.
    if not weighted and combiner == "mean":
        np.testing.assert_allclose(got[0], (table[0] + table[1]) / 2, atol=ATOL)


def test_indicator_of_weighted_identity():
    features = {
        "n": np.array([[1, 3], [2, 2], [0, -1]], np.int64),
        "w": np.array([[0.5, 2.0], [1.0, 3.0], [4.0, 0.0]], np.float32),
    }
    ours = fc.indicator_column(fc.weighted_categorical_column(fc.categorical_column_with_identity("n", 4), "w"))
    theirs = ref.v2.indicator_column(
        ref.v2.weighted_categorical_column(ref.v2.categorical_column_with_identity("n", 4), "w")
    )
    features_tf = {
        "n": ref.sparse_value([[1, 3], [2], [0]], np.int64),
        "w": ref.sparse_value([[0.5, 2.0], [4.0], [4.0]], np.float32),
    }
    got = our_dense([ours], features)
    np.testing.assert_allclose(got[0], [0, 0.5, 0, 2.0])
    np.testing.assert_allclose(got[1], [0, 0, 4.0, 0])  # Repeated id: weights add up.
    np.testing.assert_allclose(our_dense([ours], features_tf), ref.dense([theirs], features_tf), atol=ATOL)


def test_whole_layer_order_matches_input_layer():
    rng = np.random.default_rng(1)
    table = rng.normal(size=(10, 3)).astype(np.float32)

    def columns(api):
        hashed = api.categorical_column_with_hash_bucket("camera", 10)
        kwargs = {} if api is fc else {"initializer": tf.compat.v1.constant_initializer(table)}
        return [
            api.numeric_column("duration"),
            api.bucketized_column(api.numeric_column("fps", dtype=tf.int64), [15.0, 30.0]),
            api.embedding_column(hashed, 3, combiner="sum", **kwargs),
            api.indicator_column(api.categorical_column_with_vocabulary_list("s", ["a", "b"], num_oov_buckets=1)),
            api.bucketized_column(api.numeric_column("v", shape=(2,)), [0.0, 2.0]),
            api.indicator_column(api.crossed_column(["s", "camera"], 5)),
        ]

    features = {
        "duration": VALUES[:, 0],
        "fps": np.array([[10], [15], [29], [30], [60]], np.int64),
        "camera": np.array(["c1", "c2", "c1", "c9", ""]),
        "s": STRINGS,
        "v": VALUES,
    }
    ours = columns(fc)
    got = our_dense(ours, features, {_base.state_key(ours[2]): table})
    np.testing.assert_allclose(got, ref.dense(columns(ref.v2), features), atol=ATOL)
    assert got.shape == (5, 1 + 3 + 3 + 3 + 6 + 5)


def test_parse_example_spec_and_missing_value_defaults():
    def columns(api):
        return [
            api.numeric_column("duration", default_value=-1.5),
            api.numeric_column("v", shape=(2,), default_value=[0.25, 4.0]),
            api.indicator_column(api.categorical_column_with_vocabulary_list("s", ["a", "b"], num_oov_buckets=1)),
            api.indicator_column(api.weighted_categorical_column(api.categorical_column_with_identity("n", 3), "w")),
        ]

    ours_spec = fc.make_parse_example_spec(columns(fc))
    theirs_spec = ref.parse_example_spec(columns(ref.v2))
    assert sorted(ours_spec) == sorted(theirs_spec)
    for key, spec in ours_spec.items():
        assert type(spec) is type(theirs_spec[key]), key
        assert tf.as_dtype(spec.dtype) == theirs_spec[key].dtype, key
        if isinstance(spec, tf.io.FixedLenFeature):
            assert tuple(spec.shape) == tuple(theirs_spec[key].shape), key
            np.testing.assert_allclose(spec.default_value, theirs_spec[key].default_value)

    def example(**feats):
        ex = tf.train.Example()
        for k, v in feats.items():
            f = ex.features.feature[k]
            if isinstance(v[0], str):
                f.bytes_list.value.extend([x.encode() for x in v])
            elif isinstance(v[0], float):
                f.float_list.value.extend(v)
            else:
                f.int64_list.value.extend(v)
        return ex.SerializeToString()

    serialized = [
        example(duration=[3.0], v=[1.0, 2.0], s=["a", "q"], n=[2], w=[0.5]),
        example(s=["b"]),  # duration and v take their defaults; no n/w.
        example(duration=[7.0], n=[0, 1], w=[1.0, 2.0]),
    ]
    parsed = tf.io.parse_example(serialized, ours_spec)
    np.testing.assert_allclose(parsed["duration"].numpy()[:, 0], [3.0, -1.5, 7.0])
    features = {
        k: tf.compat.v1.SparseTensorValue(*(t.numpy() for t in (v.indices, v.values, v.dense_shape)))
        if isinstance(v, tf.SparseTensor)
        else v.numpy()
        for k, v in parsed.items()
    }
    got = fc.FeatureLayer(columns(fc))(parsed).numpy()
    np.testing.assert_allclose(got, ref.dense(columns(ref.v2), features), atol=ATOL)
    # Columns are concatenated by name: duration, n_weighted_by_w_indicator, s_indicator, v.
    np.testing.assert_allclose(got[1], [-1.5, 0, 0, 0, 0, 1, 0, 0.25, 4.0])
