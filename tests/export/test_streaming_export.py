"""Streaming SavedModel export: reloaded step == in-memory step, state round trip."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfvideo import online
from tfvideo.export import _streaming

D, K = 5, 3


@pytest.mark.parametrize("name", ["trn_tiny", "oadtr_tiny", "chunk_mlp_tiny"])
def test_reloaded_step_equals_model(name, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = online.get_detector(name, D, K)
    path = _streaming.export_streaming_model(model, str(tmp_path / "1"), labels=["bg", "a", "b"])
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {"step", "init_state", "serving_default"}
    x = np.random.default_rng(0).normal(size=(2, 6, D)).astype("float32")

    state = model.init_state(2)
    exported_state = loaded.init_state(tf.constant(2))
    signature_state = loaded.signatures["init_state"](batch_size=tf.constant(2))
    assert {k: tuple(v.shape) for k, v in exported_state.items()} == {k: tuple(v.shape) for k, v in state.items()}
    for t in range(6):
        logits, state = model.step(x[:, t], state)
        expected = np.asarray(tf.nn.softmax(logits))
        scores, exported_state = loaded.step(tf.constant(x[:, t]), exported_state)
        np.testing.assert_allclose(scores.numpy(), expected, atol=1e-5)
        out = loaded.signatures["step"](chunk_features=tf.constant(x[:, t]), **signature_state)
        np.testing.assert_allclose(out["scores"].numpy(), expected, atol=1e-5)
        signature_state = {k: v for k, v in out.items() if k.startswith(_streaming.STATE_PREFIX)}
    for key, value in state.items():
        np.testing.assert_allclose(exported_state[key].numpy(), np.asarray(value), atol=1e-5)
    with open(os.path.join(path, "assets.extra", "labels.txt")) as f:
        assert f.read().split() == ["bg", "a", "b"]


def test_export_rejects_non_detectors(tmp_path):
    import keras

    with pytest.raises(TypeError, match="not an online detector"):
        _streaming.export_streaming_model(keras.Sequential([keras.layers.Dense(2)]), str(tmp_path / "x"))
