"""A user's detector registered with tfvideo.online.register_detector: the public getters and the
online trainer (which reads the detector's constructor through tfvideo.online.detector_class)."""

import json
import os
import types

import numpy as np
import pytest

from tfvideo import _experiment, online
from tfvideo.online import _registry
from trainers import _online


@pytest.fixture
def idn_micro():
    online.register_detector("user_idn_micro", online.IDN, history=4, embed_dim=8, units=8)
    yield "user_idn_micro"
    _registry._DETECTORS.unregister("user_idn_micro")  # Tests only: leave the registry as found.


def test_user_detector_through_the_public_getters(idn_micro):
    assert idn_micro in online.list_detectors()
    assert online.detector_class(idn_micro) is online.IDN
    assert online.detector_config(idn_micro) == {"history": 4, "embed_dim": 8, "units": 8}
    assert online.detector_config("trn_tiny") == {"embed_dim": 32, "hidden_dim": 32, "decoder_steps": 4}
    model = online.get_detector(idn_micro, feature_dim=6, num_classes=3, units=16)  # Overrides win.
    assert isinstance(model, online.IDN) and model.units == 16 and model.history_length == 4
    scores = online.score_sequence(model, np.random.default_rng(0).normal(size=(10, 6)).astype("float32"))
    assert scores.shape == (10, 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)  # Class probabilities per chunk.

    with pytest.raises(ValueError, match=r"^Online detector 'user_idn_micro' is already registered; pass overwrite"):
        online.register_detector(idn_micro, online.GRUDetector)
    online.register_detector(idn_micro, online.IDN, overwrite=True, history=4, embed_dim=8, units=12)
    assert online.detector_config(idn_micro)["units"] == 12
    with pytest.raises(TypeError, match=r"register_detector\('x'\): .* is not a class"):
        online.register_detector("x", online.get_detector)
    for getter in (online.detector_class, online.detector_config):
        with pytest.raises(ValueError) as e:
            getter("trn_huge")
        assert str(e.value) == f"Unknown online detector 'trn_huge'; available: {', '.join(online.list_detectors())}."


class _Flags(types.SimpleNamespace):
    """Stands in for absl FLAGS: attributes, and `flags[name].present` for the ones given."""

    def __getitem__(self, name):
        return types.SimpleNamespace(present=hasattr(self, name))


def test_online_trainer_trains_a_user_detector(idn_micro, tmp_path):
    names = []
    for k, (features, targets) in enumerate(online.make_onset_streams(6, num_chunks=24, feature_dim=8, num_actions=3, seed=0)):
        for folder, part in (("features", features), ("targets", targets)):
            os.makedirs(tmp_path / folder, exist_ok=True)
            np.save(tmp_path / folder / f"v{k}.npy", part)
        names.append(f"v{k}")
    (tmp_path / "train.txt").write_text("\n".join(names) + "\n")
    model_dir = str(tmp_path / "run")
    flags = _Flags(model=idn_micro, model_dir=model_dir, train_data=str(tmp_path / "train.txt"),
                   features_dirs=[str(tmp_path / "features")], targets_dir=str(tmp_path / "targets"),
                   history=6, window_stride=6, batch_size=8, epochs=1, learning_rate=1e-3, seed=0, verbose=0,
                   detector_kwargs="{}")
    assert _online.train_main(flags) == 0
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    # --history reached the detector: the trainer read IDN's constructor through the public class getter.
    assert config["model"] == idn_micro and config["model_kwargs"] == {"feature_dim": 8, "history": 6}
    detector, _ = _experiment.load_trained_model(model_dir)
    assert isinstance(detector, online.IDN) and (detector.history_length, detector.units) == (6, 8)
