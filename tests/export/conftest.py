"""A tiny trained model_dir (tsm_tiny, 4 classes, 32px crops, 8 segments) built in-process."""

import os

import numpy as np
import pytest

LABELS = ["left", "right", "up", "down"]
CLIP_LENGTH = 8
CROP = 32
RESIZE = 36


def make_tiny_model_dir(model_dir, seed=0):
    """Trains tsm_tiny for a few steps on random clips and writes a model_dir."""
    import keras

    from tfvideo import models
    from trainers import _experiment

    keras.utils.set_random_seed(seed)
    model = models.get("tsm_tiny", num_classes=len(LABELS))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, CLIP_LENGTH, CROP, CROP, 3)).astype(np.float32)
    y = np.arange(4) % len(LABELS)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    config = _experiment.ExperimentConfig(
        model="tsm_tiny",
        num_classes=len(LABELS),
        labels=list(LABELS),
        sampler={"type": "segment", "num_segments": CLIP_LENGTH},
        preprocess={"crop_size": CROP, "resize_short": RESIZE},
    )
    config.write(model_dir)
    model.save(os.path.join(model_dir, _experiment.MODEL_FILE))
    return model_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return make_tiny_model_dir(str(tmp_path_factory.mktemp("tiny_model") / "tiny"))


@pytest.fixture(scope="session")
def loaded(tiny_model_dir):
    """(keras model, ExperimentConfig) of the tiny model_dir, as export loads them."""
    from trainers import _experiment

    return _experiment.load_trained_model(tiny_model_dir)
