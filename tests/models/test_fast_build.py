"""Builds whose weights are overwritten next skip the initializers (tfvideo.models._fast_build):
a conversion and `keras.saving.load_model` get the file's weights exactly, every other build
(from_config, clone) still draws fresh random weights, and the config keeps the real
initializers. The time it saves is measured by benchmarks/convert_large.py."""

import os
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


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_unfilled_initializers_skip_draws_and_restore(monkeypatch):
    model = online.detector_class("trn")(feature_dim=D, num_classes=K, embed_dim=5, hidden_dim=7, decoder_steps=3)
    before = model.encoder.recurrent_initializer
    drawn = []
    for cls in (keras.initializers.Orthogonal, keras.initializers.GlorotUniform):
        real = cls.__call__
        monkeypatch.setattr(cls, "__call__", lambda self, *a, _real=real, **k: drawn.append(self) or _real(self, *a, **k))
    with _fast_build.unfilled_initializers(model, keep=[model.classifier]):
        assert isinstance(model.encoder.recurrent_initializer, _fast_build._Unfilled)
        model.build((None, None, D))
    assert drawn == [model.classifier.kernel_initializer]  # Only the kept classifier drew its values.
    assert model.encoder.recurrent_initializer is before
    assert model.encoder.get_config()["recurrent_initializer"]["class_name"] == "Orthogonal"
    assert model.embed.get_config()["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert {tuple(v.shape) for v in model.weights} >= {(7, 28), (6, 5)}


@pytest.mark.skipif(not os.path.exists("/proc/self/statm") or keras.backend.backend() != "tensorflow",
                    reason="resident memory read from Linux's /proc; unfilled buffers are TensorFlow's")
def test_unfilled_buffers_take_no_memory_until_assigned():
    # What keeps a load's peak at the weights once (plus the file Keras reads): a 128 MiB kernel
    # built unfilled is not resident (a unfilled one would be); assigned, it holds the values.
    layer = keras.layers.Dense(8192, use_bias=False)
    resident = _resident_bytes()
    with _fast_build.unfilled_initializers(layer):
        layer.build((None, 4096))
    assert _resident_bytes() - resident < 32 << 20
    value = np.arange(4096 * 8192, dtype="float32").reshape(4096, 8192) % 7
    layer.kernel.assign(value)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.kernel), value)


def test_load_model_gets_the_files_weights_and_other_builds_stay_random(tmp_path, monkeypatch):
    unfilled, real = [], _fast_build.unfilled_initializers
    monkeypatch.setattr(_fast_build, "unfilled_initializers", lambda m, keep=(): unfilled.append(m.name) or real(m, keep))
    model = _trn()
    path = str(tmp_path / "trn.keras")
    models.save_converted(model, path)
    with zipfile.ZipFile(path) as zf:  # The layout Keras writes.
        assert zf.namelist()[:3] == ["metadata.json", "config.json", "model.weights.h5"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
    loaded = keras.saving.load_model(path)
    assert unfilled == [loaded.name]  # The load built without drawing initial values.
    want, got = _weights(model), _weights(loaded)
    assert set(want) == set(got)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    x = np.random.default_rng(0).normal(size=(1, 4, D)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)["scores"]), np.asarray(model(x)["scores"]), rtol=1e-6)
    # Outside load_model (deserialisation, cloning): a fresh random build.
    fresh = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    kernel = _weights(fresh)[fresh.encoder.recurrent_kernel.path]
    assert np.any(kernel) and not np.array_equal(kernel, want[model.encoder.recurrent_kernel.path])
    cloned = keras.models.clone_model(model)
    assert np.any(_weights(cloned)[cloned.encoder.recurrent_kernel.path])
    assert unfilled == [loaded.name]
    assert not _fast_build.loading_saved_weights()


def test_save_converted_leaves_nothing_behind(tmp_path):
    path = tmp_path / "out" / "trn.keras"
    models.save_converted(_trn(), str(path))
    assert sorted(p.name for p in path.parent.iterdir()) == ["trn.keras"]
    with pytest.raises(ValueError, match="must be a .keras file"):
        models.save_converted(_trn(), str(tmp_path / "trn.h5"))


def test_load_model_of_a_model_folder_is_recognised_too(tmp_path, monkeypatch):
    unfilled, real = [], _fast_build.unfilled_initializers
    monkeypatch.setattr(_fast_build, "unfilled_initializers", lambda m, keep=(): unfilled.append(m.name) or real(m, keep))
    model = _trn()
    model.save(str(tmp_path / "trn"), zipped=False)  # A Keras model folder: config.json, model.weights.h5.
    loaded = keras.saving.load_model(str(tmp_path / "trn"))
    assert unfilled == [loaded.name]
    for key, value in _weights(model).items():
        np.testing.assert_array_equal(_weights(loaded)[key], value, err_msg=key)
    assert not _fast_build._is_keras_format(str(tmp_path / "trn.h5")) and not _fast_build._is_keras_format(None)
