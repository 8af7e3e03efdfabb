"""Online TSM: the streaming form (one frame at a time, shift buffers as state) equals the offline model."""

import keras
import numpy as np
import pytest

from tfvideo import models

RNG = np.random.default_rng(0)
# (preset, overrides, frame size): one per backbone family; small widths keep them fast.
BACKBONES = [
    ("tsm_online_tiny", {}, (56, 56)),
    ("tsm_mobilenetv2_online_tiny", {}, (64, 48)),
    ("tsm_r50_online", {"width": 8, "num_segments": 4}, (32, 32)),
    ("tsm_mobilenetv2_online", {"width": 8, "num_segments": 4}, (32, 32)),
]


def _np(x):
    return keras.ops.convert_to_numpy(x)


def randomize(model, seed=0):
    """Weights with non-trivial statistics (a fresh model's BN and head give near-zero logits)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        if "variance" in w.path or "gamma" in w.path:
            w.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        else:
            fan = max(1, int(np.prod(shape[:-1])))
            w.assign(rng.normal(0, 1 / np.sqrt(fan), shape).astype("float32"))


def _built(name, overrides, size, num_classes=5):
    model = models.get(name, num_classes=num_classes, **overrides)
    model.build((None, model.num_segments) + size + (3,))
    randomize(model)
    return model


def _stream(stream, frames, state=None):
    """Steps [B, T, H, W, C] frame by frame; returns (per-step logits [B, T, K], final state)."""
    state = stream.init_state(frames.shape[0]) if state is None else state
    out = []
    for t in range(frames.shape[1]):
        logits, state = stream.step(frames[:, t], state)
        out.append(_np(logits))
    return np.stack(out, 1), state


@pytest.mark.parametrize("name,overrides,size", BACKBONES)
def test_stepping_frame_by_frame_equals_the_offline_model(name, overrides, size):
    model = _built(name, overrides, size)
    t = model.num_segments
    clip = RNG.normal(size=(2, t) + size + (3,)).astype("float32")
    offline = _np(model(clip))
    assert np.abs(offline).max() > 1e-2  # Logits of a size that makes the comparison mean something.

    smoothed, _ = _stream(models.StreamingRecognizer(model, size, average_last=t), clip)
    np.testing.assert_allclose(smoothed[:, -1], offline, rtol=1e-5, atol=1e-5 * np.abs(offline).max())
    # Without smoothing each step is that frame's own logits; their running mean is the offline
    # output at every prefix (the shift is causal), and the last one the whole clip's.
    per_frame, state = _stream(models.StreamingRecognizer(model, size), clip)
    np.testing.assert_allclose(per_frame.mean(1), offline, rtol=1e-5, atol=1e-5 * np.abs(offline).max())
    np.testing.assert_allclose(np.cumsum(per_frame, 1) / np.arange(1, t + 1)[:, None], smoothed, rtol=1e-5,
                               atol=1e-5 * np.abs(offline).max())
    assert all(name.startswith("shift_") for name in state)


def test_the_buffers_carry_the_past():
    model = _built("tsm_online_tiny", {}, (56, 56))
    stream = models.StreamingRecognizer(model, (56, 56))
    clip = RNG.normal(size=(1, 8, 56, 56, 3)).astype("float32")
    carried, _ = _stream(stream, clip)
    fresh = np.stack([_np(stream.step(clip[:, i], stream.init_state(1))[0]) for i in range(8)], 1)
    np.testing.assert_allclose(carried[:, 0], fresh[:, 0], rtol=1e-6, atol=1e-6)  # Nothing before frame 0.
    assert np.abs(carried[:, 1:] - fresh[:, 1:]).max() > 1e-3
    # A bidirectional TSM has no streaming form: it reads the next frame.
    with pytest.raises(ValueError, match="bidirectional"):
        models.StreamingRecognizer(models.get("tsm_tiny", num_classes=3), (56, 56))


def test_online_tsm_config_round_trip_keeps_the_left_shift(tmp_path):
    model = _built("tsm_online_tiny", {}, (32, 32), num_classes=3)
    assert model.get_config()["shift_mode"] == "left"
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    clip = RNG.normal(size=(1, 8, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(_np(loaded(clip)), _np(model(clip)), rtol=1e-6, atol=1e-6)
    models.StreamingRecognizer(loaded, (32, 32))  # Still streamable after a round trip.
    assert "tsm_mobilenetv2_online" in models.list_presets() and "tsm_r50_online" in models.list_presets()


def test_bad_frames_and_stale_states_say_what_differs():
    stream = models.StreamingRecognizer(_built("tsm_online_tiny", {}, (32, 32)), (32, 32), average_last=4)
    state = stream.init_state(2)
    with pytest.raises(ValueError, match=r"frame has shape \(2, 32, 32, 1\), expected \[batch, 32, 32, 3\]"):
        stream.step(np.zeros((2, 32, 32, 1), "float32"), state)
    with pytest.raises(ValueError, match=r"frame has shape \(2, 48, 32, 3\)"):
        stream.step(np.zeros((2, 48, 32, 3), "float32"), state)
    other = models.StreamingRecognizer(_built("tsm_mobilenetv2_online_tiny", {}, (32, 32)), (32, 32))
    with pytest.raises(ValueError, match="state does not belong to .*missing"):
        stream.step(np.zeros((2, 32, 32, 3), "float32"), other.init_state(2))
    bigger = models.StreamingRecognizer(stream.model, (64, 64), average_last=4).init_state(2)
    with pytest.raises(ValueError, match=r"state\['shift_conv2_block1_shift'\] has shape \(2, 16, 16, 2\)"):
        stream.step(np.zeros((2, 32, 32, 3), "float32"), bigger)
    with pytest.raises(ValueError, match="average_last=0"):
        models.StreamingRecognizer(stream.model, (32, 32), average_last=0)
