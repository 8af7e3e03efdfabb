"""Recognizers: preset contract, config and .keras round trips, order sensitivity."""

import keras
import numpy as np
import pytest

from tfvideo import models

RNG = np.random.default_rng(0)
TINY = ["tsn_tiny", "tsm_tiny", "trn_tiny", "tdn_tiny", "tam_tiny", "i3d_tiny"]


def _frames(model):
    return model.num_frames if hasattr(model, "num_frames") else model.clip_length


def _clip(model, batch=2, views=None, size=32):
    shape = (batch,) + ((views,) if views else ()) + (_frames(model), size, size, 3)
    return RNG.normal(size=shape).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("name", ["tsm_tiny", "tsn_tiny"])
def test_tiny_presets_keep_the_demo_contract(name):
    model = models.get(name, num_classes=4)
    assert isinstance(model, keras.Model)
    views = RNG.normal(size=(2, 3, 8, 56, 56, 3)).astype("float32")
    out = _np(model(views))
    assert out.shape == (2, 4) and out.dtype == np.float32
    per_view = np.stack([_np(model(views[:, v])) for v in range(3)], axis=1)
    np.testing.assert_allclose(out, per_view.mean(axis=1), rtol=1e-4, atol=1e-5)
    assert model.count_params() < 400_000  # small enough to train on a CPU in a minute


def test_classifier_outputs_float32_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        for name in TINY:
            model = models.get(name, num_classes=3)
            out = model(_clip(model, batch=1))
            assert keras.backend.standardize_dtype(out.dtype) == "float32", name
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


@pytest.mark.parametrize("name", TINY)
def test_config_and_keras_file_round_trip(name, tmp_path):
    model = models.get(name, num_classes=5)
    x = _clip(model)
    want = _np(model(x))
    config = model.get_config()
    clone = model.__class__.from_config(config)
    assert clone.get_config() == config
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(_np(loaded(x)), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", TINY)
def test_order_sensitivity(name):
    """Reversed frames: TSN (an average of per-frame scores) is unchanged; temporal models change."""
    model = models.get(name, num_classes=5)
    x = _clip(model)
    if name == "tdn_tiny":  # reverse segments, keep each segment's frames in place
        n = model.frames_per_segment
        reversed_x = x.reshape((2, -1, n) + x.shape[2:])[:, ::-1].reshape(x.shape)
    else:
        reversed_x = x[:, ::-1]
    a, b = _np(model(x)), _np(model(reversed_x))
    if name == "tsn_tiny":
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    else:
        assert np.abs(a - b).max() > 1e-4, f"{name} ignores frame order"


def test_tsm_places_a_shift_in_every_residual_block():
    model = models.get("tsm_r18", num_classes=4)
    shifts = [layer for layer in model.backbone.layers if type(layer).__name__ == "TemporalShift"]
    assert len(shifts) == 8 and all(s.num_segments == 8 and s.fold_div == 8 for s in shifts)
    tam = models.get("tam_tiny", num_classes=4)
    assert sum(type(layer).__name__ == "TemporalAdaptive" for layer in tam.backbone.layers) == 4


def test_tdn_reads_frames_per_segment_and_checks_the_clip_length():
    model = models.get("tdn_tiny", num_classes=3)
    assert model.clip_length == 24
    assert _np(model(_clip(model, batch=1))).shape == (1, 3)
    with pytest.raises(ValueError, match="must have 24 frames"):
        model(RNG.normal(size=(1, 8, 32, 32, 3)).astype("float32"))


def test_mobilenet_and_bninception_backbones():
    tsm = models.TSM(3, num_segments=2, backbone="mobilenetv2", width=8)
    assert _np(tsm(RNG.normal(size=(1, 2, 32, 32, 3)).astype("float32"))).shape == (1, 3)
    assert any(type(layer).__name__ == "TemporalShift" for layer in tsm.backbone.layers)
    trn = models.TRN(3, num_segments=3, backbone="bninception", width=8, relation_dim=16)
    assert _np(trn(RNG.normal(size=(1, 3, 32, 32, 3)).astype("float32"))).shape == (1, 3)
    with pytest.raises(ValueError, match="needs a ResNet or MobileNetV2"):
        models.TSM(3, backbone="bninception")


def test_unknown_preset_and_bad_input_name_the_problem():
    with pytest.raises(ValueError, match="Unknown model preset 'nope'"):
        models.get("nope", num_classes=2)
    model = models.get("tsn_tiny", num_classes=2)
    with pytest.raises(ValueError, match=r"input must be \[B, T, H, W, C\]"):
        model(np.zeros((8, 32, 32, 3), "float32"))
