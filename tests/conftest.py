"""Shared fixtures: tiny videos made on the fly, quiet TensorFlow."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def frame_code_frames(num_frames, height=48, width=64, bits=6):
    """uint8 [N, H, W, 3] where frame i shows i in binary: bit b lights column block b."""
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    block = width // bits
    for i in range(num_frames):
        for b in range(bits):
            if (i >> b) & 1:
                frames[i, :, b * block : (b + 1) * block] = 255
    return frames


def read_frame_code(frame, bits=6):
    """Inverse of `frame_code_frames` for one decoded frame (robust to compression)."""
    block = frame.shape[1] // bits
    mid = frame.shape[0] // 2
    return sum(int(frame[mid, b * block + block // 2].mean() > 127) << b for b in range(bits))


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
