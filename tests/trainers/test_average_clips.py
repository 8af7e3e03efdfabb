"""tfvideo-evaluate --average_clips=prob|score: views averaged as probabilities or as logits (issue 25)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainers import _evaluation


class _PixelLogits(keras.Model):
    """'Recognizer' whose logits are the first pixel of its clip: a view [T, 1, 1, K] scores video[0, 0, 0]."""

    def call(self, video, training=None):
        assert len(video.shape) == 5, "views reach the model flattened, one clip each"
        return video[:, 0, 0, 0, :]


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _dataset(view_logits, labels, ids):
    video = np.asarray(view_logits, np.float32)[:, :, None, None, None, :]  # [B, V, T=1, 1, 1, K]
    return tf.data.Dataset.from_tensor_slices({"video": video, "label": np.asarray(labels, np.int32),
                                               "media_id": ids}).batch(2)


# Video 0: one view sure of class 0, two mildly for class 1 -> the modes disagree on the top class.
VIEWS = np.array([[[20.0, 0.0], [0.0, 5.0], [0.0, 5.0]],
                  [[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]],
                  [[-2.0, 1.0], [0.0, 0.0], [4.0, 4.5]]])


@pytest.mark.parametrize("mode", ["prob", "score"])
def test_views_averaged_as_numpy_computes_them(mode):
    labels, probs, ids = _evaluation.predict(_PixelLogits(), _dataset(VIEWS, [1, 0, 1], ["a", "b", "c"]),
                                             average=mode)
    want = _softmax(VIEWS).mean(1) if mode == "prob" else _softmax(VIEWS.mean(1))
    np.testing.assert_allclose(probs, want, rtol=1e-6)
    assert ids == ["a", "b", "c"] and labels.tolist() == [1, 0, 1]
    assert np.argmax(probs[0]) == (1 if mode == "prob" else 0)


def test_two_clip_prob_and_score_differ_as_expected():
    two = VIEWS[:, :2]  # 2 clips a video.
    ds = _dataset(two, [0, 0, 0], ["a", "b", "c"])
    _, prob, _ = _evaluation.predict(_PixelLogits(), ds, average="prob")
    _, score, _ = _evaluation.predict(_PixelLogits(), ds, average="score")
    np.testing.assert_allclose(prob, (_softmax(two[:, 0]) + _softmax(two[:, 1])) / 2, rtol=1e-6)
    np.testing.assert_allclose(score, _softmax((two[:, 0] + two[:, 1]) / 2), rtol=1e-6)
    assert np.abs(prob - score).max() > 0.4  # Video 0: 0.50 vs 0.9994 for class 0.


def test_multi_label_prob_averages_sigmoids():
    _, probs, _ = _evaluation.predict(_PixelLogits(), _dataset(VIEWS, [0, 0, 0], ["a", "b", "c"]), True, "prob")
    np.testing.assert_allclose(probs, (1 / (1 + np.exp(-VIEWS))).mean(1), rtol=1e-6)


@pytest.mark.parametrize("mode", ["prob", "score"])
def test_fused_streams_are_averaged_in_the_same_space(mode):
    rgb, flow = VIEWS[:, :2], VIEWS[:, 1:][:, ::-1] * 0.5
    streams = [(name, *_evaluation.predict_scores(_PixelLogits(), _dataset(v, [1, 0, 1], ["a", "b", "c"]),
                                                  average=mode)) for name, v in (("rgb", rgb), ("flow", flow))]
    _, fused, ids, _ = _evaluation.fuse_predictions(streams, [1.0, 1.5])
    fused = _evaluation.to_probabilities(fused, mode)
    if mode == "prob":
        want = (_softmax(rgb).mean(1) + 1.5 * _softmax(flow).mean(1)) / 2.5
    else:
        want = _softmax((rgb.mean(1) + 1.5 * flow.mean(1)) / 2.5)
    np.testing.assert_allclose(fused, want, rtol=1e-6)
    np.testing.assert_allclose(fused.sum(-1), 1.0, rtol=1e-9)


def test_unknown_mode_names_the_flag():
    with pytest.raises(ValueError, match=r"--average_clips='mean' must be one of prob, score"):
        _evaluation.predict(_PixelLogits(), _dataset(VIEWS, [0, 0, 0], ["a", "b", "c"]), average="mean")
