"""Shared fixtures: tiny videos made on the fly, quiet TensorFlow."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402
from framecode import frame_code_frames, read_frame_code  # noqa: E402,F401 -- tests used to import them from here.


@pytest.fixture(scope="session")
def moving_shapes(tmp_path_factory):
    """A tiny motion-direction dataset of real mp4 files (4 classes)."""
    from tfvideo import data

    root = tmp_path_factory.mktemp("moving_shapes")
    return data.make_moving_shapes_dataset(str(root), videos_per_class=(4, 2), num_frames=16, size=32)


@pytest.fixture(autouse=True)
def _float32_policy():
    """Tests that switch Keras to mixed precision must not leak it into later tests."""
    yield
    import keras

    if keras.mixed_precision.global_policy().name != "float32":
        keras.mixed_precision.set_global_policy("float32")
