"""Chunk-feature sources: NumPy folders, SequenceExamples, training windows."""

import numpy as np
import pytest
import tensorflow as tf

from tfvideo import data


def _write_session(root, name, t, dims=(3, 2), num_columns=4, seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for folder, d in zip(("rgb", "flow"), dims):
        (root / folder).mkdir(exist_ok=True)
        parts.append(rng.normal(size=(t, d)).astype("float32"))
        np.save(root / folder / f"{name}.npy", parts[-1])
    (root / "targets").mkdir(exist_ok=True)
    targets = np.eye(num_columns, dtype="float32")[rng.integers(0, num_columns, t)]
    np.save(root / "targets" / f"{name}.npy", targets)
    return np.concatenate(parts, 1), targets


def test_load_concatenates_modalities(tmp_path):
    feats, targets = _write_session(tmp_path, "video_1", 5)
    got_f, got_t = data.load_chunk_features("video_1", [str(tmp_path / "rgb"), str(tmp_path / "flow")],
                                            str(tmp_path / "targets"))
    np.testing.assert_array_equal(got_f, feats)
    np.testing.assert_array_equal(got_t, targets)
    assert got_f.shape == (5, 5)


def test_load_errors_name_the_file(tmp_path):
    _write_session(tmp_path, "a", 5)
    np.save(tmp_path / "flow" / "a.npy", np.zeros((4, 2), "float32"))
    with pytest.raises(ValueError, match=r"flow/a.npy \(4, 2\)"):
        data.load_chunk_features("a", [str(tmp_path / "rgb"), str(tmp_path / "flow")])
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        data.load_chunk_features("missing", str(tmp_path / "rgb"))


def test_session_list(tmp_path):
    path = tmp_path / "test.txt"
    path.write_text("video_1\n\n# held out\nvideo_2  # comment\n")
    assert data.read_session_list(str(path)) == ["video_1", "video_2"]


def test_sequence_example_round_trip():
    feats = np.arange(12, dtype="float32").reshape(6, 2)
    segments = [(1, 2, 0), (4, 5, 2)]
    ex = data.make_chunk_feature_example(feats, segments, media_id="v")
    parsed = data.parse_chunk_feature_example(tf.constant(ex.SerializeToString()), feature_dim=2, num_columns=4)
    np.testing.assert_array_equal(parsed["features"].numpy(), feats)
    expected = np.eye(4, dtype="float32")[[0, 1, 1, 0, 3, 3]]
    np.testing.assert_array_equal(parsed["targets"].numpy(), expected)
    np.testing.assert_array_equal(data.targets_from_segments(6, segments, 4), expected)
    assert parsed["media_id"].numpy() == b"v"


def test_windows_and_anticipation_targets(tmp_path):
    feats = np.arange(10, dtype="float32").reshape(5, 2)
    targets = np.eye(3, dtype="float32")[[0, 1, 1, 2, 0]]
    ds = data.feature_window_dataset([(feats, targets)], history=3, batch_size=8, anticipation_steps=2,
                                     training=False)
    x, y = next(iter(ds))
    assert x.shape == (2, 3, 2)  # Windows [0, 3) and [3, 6), the second zero padded.
    np.testing.assert_array_equal(x.numpy()[1], [[6, 7], [8, 9], [0, 0]])
    np.testing.assert_array_equal(y["scores"].numpy()[1], [[0, 0, 1], [1, 0, 0], [0, 0, 0]])
    # Chunk 2 anticipates chunks 3 and 4; chunk 4 has nothing left to anticipate.
    np.testing.assert_array_equal(y["anticipation"].numpy()[0, 2], targets[[3, 4]])
    np.testing.assert_array_equal(y["anticipation"].numpy()[1, 1], np.zeros((2, 3)))
    # The TFRecord form yields the same windows.
    path = str(tmp_path / "v.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        w.write(data.make_chunk_feature_example(feats, [(1, 2, 0), (3, 3, 1)]).SerializeToString())
    x2, y2 = next(iter(data.feature_window_dataset(path, 3, 8, anticipation_steps=2, training=False,
                                                   feature_dim=2, num_columns=3)))
    np.testing.assert_array_equal(x2.numpy(), x.numpy())
    np.testing.assert_array_equal(y2["scores"].numpy(), y["scores"].numpy())


def test_windows_with_real_history_context():
    """context=C: each window carries the C chunks before it; only chunks with C real chunks
    before them are scored (OadTR's training windows)."""
    feats = np.arange(14, dtype="float32").reshape(7, 2)
    targets = np.eye(3, dtype="float32")[[0, 1, 1, 2, 0, 1, 2]]
    ds = data.feature_window_dataset([(feats, targets)], history=3, batch_size=8, anticipation_steps=1,
                                     training=False, context=2)
    x, y = next(iter(ds))
    assert x.shape == (3, 5, 2)  # ceil(7 / 3) windows of 2 + 3 chunks
    # Window 1 scores chunks 3..5 and carries chunks 1, 2 before them.
    np.testing.assert_array_equal(x.numpy()[1], feats[1:6])
    np.testing.assert_array_equal(y["scores"].numpy()[1], np.concatenate([np.zeros((2, 3)), targets[3:6]]))
    # Window 0: chunks 0 and 1 have fewer than 2 real chunks before them: not scored.
    np.testing.assert_array_equal(x.numpy()[0], np.concatenate([np.zeros((2, 2)), feats[0:3]]))
    np.testing.assert_array_equal(y["scores"].numpy()[0], np.concatenate([np.zeros((4, 3)), targets[2:3]]))
    np.testing.assert_array_equal(y["anticipation"].numpy()[0, 4], targets[3:4])
    # Window 2 scores chunk 6 (then padding).
    np.testing.assert_array_equal(y["scores"].numpy()[2, 2], targets[6])
    with pytest.raises(ValueError, match="context=-1 must be an integer >= 0"):
        data.feature_window_dataset([(feats, targets)], history=3, batch_size=8, context=-1)
