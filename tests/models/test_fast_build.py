"""Builds whose weights are overwritten next skip the initializers (tfvideo.models._fast_build):
a conversion and `keras.saving.load_model` get the file's weights exactly, every other build
(from_config, clone) still draws fresh random weights, and the config keeps the real
initializers. The time it saves is measured by benchmarks/convert_large.py."""

import zipfile

import keras
import numpy as np
import pytest

from tfvideo import models, online
from tfvideo.models import _fast_build

D, K = 6, 4


def _trn(**kwargs):
    return online.get_detector("trn", D, K, embed_dim=5, hidden_dim=7, decoder_steps=3, dropout=0.0, **kwargs)


def _weights(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


def test_zero_initializers_skip_draws_and_restore():
    model = online.detector_class("trn")(feature_dim=D, num_classes=K, embed_dim=5, hidden_dim=7, decoder_steps=3)
    before = model.encoder.recurrent_initializer
    with _fast_build.zero_initializers(model, keep=[model.classifier]):
        assert isinstance(model.encoder.recurrent_initializer, keras.initializers.Zeros)
        model.build((None, None, D))
    assert model.encoder.recurrent_initializer is before
    assert model.encoder.get_config()["recurrent_initializer"]["class_name"] == "Orthogonal"
    assert model.embed.get_config()["kernel_initializer"]["class_name"] == "GlorotUniform"
    weights = _weights(model)
    assert not np.any(weights[model.encoder.recurrent_kernel.path]) and not np.any(weights[model.embed.kernel.path])
    assert np.any(weights[model.classifier.kernel.path])  # Kept: drawn as usual.


def test_load_model_gets_the_files_weights_and_other_builds_stay_random(tmp_path, monkeypatch):
    zeroed, real = [], _fast_build.zero_initializers
    monkeypatch.setattr(_fast_build, "zero_initializers", lambda m, keep=(): zeroed.append(m.name) or real(m, keep))
    model = _trn()
    path = str(tmp_path / "trn.keras")
    models.save_converted(model, path)
    with zipfile.ZipFile(path) as zf:  # The layout Keras writes.
        assert zf.namelist()[:3] == ["metadata.json", "config.json", "model.weights.h5"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
    loaded = keras.saving.load_model(path)
    assert zeroed == [loaded.name]  # The load built without drawing initial values.
    want, got = _weights(model), _weights(loaded)
    assert set(want) == set(got)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    x = np.random.default_rng(0).normal(size=(1, 4, D)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)["scores"]), np.asarray(model(x)["scores"]), rtol=1e-6)
    # Outside load_model (deserialisation, cloning): a fresh random build, not zeros.
    fresh = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    kernel = _weights(fresh)[fresh.encoder.recurrent_kernel.path]
    assert np.any(kernel) and not np.array_equal(kernel, want[model.encoder.recurrent_kernel.path])
    assert zeroed == [loaded.name]
    assert not _fast_build.loading_saved_weights()


def test_save_converted_leaves_nothing_behind(tmp_path):
    path = tmp_path / "out" / "trn.keras"
    models.save_converted(_trn(), str(path))
    assert sorted(p.name for p in path.parent.iterdir()) == ["trn.keras"]
    with pytest.raises(ValueError, match="must be a .keras file"):
        models.save_converted(_trn(), str(tmp_path / "trn.h5"))
