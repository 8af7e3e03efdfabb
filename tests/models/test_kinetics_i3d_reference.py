"""I3D Inception-v1 is DeepMind's network: exact parameter count, and logits parity with an
independent TF forward pass (tests/models/reference_kinetics_i3d.py) on a TF1 checkpoint
with their variable names, through the `kinetics_i3d` mapper."""

import keras
import numpy as np
import pytest

from tfvideo import models
from tfvideo.models import _convert_i3d_inception


def test_i3d_inception_v1_parameter_count_is_deepminds():
    # DeepMind's I3D RGB for 400 classes (kinetics-i3d i3d.py): conv kernels, BN offsets
    # (Sonnet's BatchNorm has no scale) and the logits conv with bias: 12,689,984, the
    # published 12.69 M (OpenVINO Open Model Zoo "i3d-rgb-tf").
    model = models.I3D(400, num_frames=64, backbone="inception_v1")
    model.build((None, 64, 224, 224, 3))
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 12_689_984
    assert not any(w.path.endswith("gamma") for w in model.weights)


def test_i3d_inception_logits_match_deepminds_forward(tmp_path):
    import reference_kinetics_i3d as ref

    path = str(tmp_path / "rgb" / "model.ckpt")
    values = ref.random_checkpoint(path, num_classes=5, scale=0.25)
    assert "RGB/inception_i3d/Conv3d_1a_7x7/conv_3d/w" in values
    model = models.I3D(5, num_frames=24, backbone="inception_v1", width=16)
    clip = np.random.default_rng(0).uniform(-1, 1, size=(2, 24, 224, 224, 3)).astype("float32")
    model.build(clip.shape)
    mapped = _convert_i3d_inception.map_kinetics_i3d(_convert_i3d_inception.read_kinetics_i3d(path), model)
    assert set(mapped) == {v.path for v in model.weights}
    for v in model.weights:
        v.assign(mapped[v.path])
    got = keras.ops.convert_to_numpy(model(clip, training=False))
    want = ref.forward(path, clip)
    scale = np.abs(want).max()
    assert scale > 1e-2
    np.testing.assert_allclose(got, want, atol=1e-4 * scale)


def test_kinetics_i3d_bad_checkpoints_are_named(tmp_path):
    model = models.I3D(5, num_frames=8, backbone="inception_v1", width=16)
    model.build((None, 8, 32, 32, 3))
    bogus = tmp_path / "not_a_checkpoint"
    bogus.write_text("hello")
    with pytest.raises(ValueError, match="not_a_checkpoint: not a readable TensorFlow checkpoint"):
        _convert_i3d_inception.read_kinetics_i3d(str(bogus))
    with pytest.raises(ValueError, match="no variable under"):
        _convert_i3d_inception.map_kinetics_i3d({"resnet/conv1/w": np.zeros(3)}, model)
    w = np.zeros((7, 7, 7, 3, 64), "float32")  # a full-width stem into the width-16 model
    with pytest.raises(ValueError, match=r"Conv3d_1a_7x7/conv_3d/w' \(7, 7, 7, 3, 64\) does not fit"):
        _convert_i3d_inception.map_kinetics_i3d({"RGB/inception_i3d/Conv3d_1a_7x7/conv_3d/w": w}, model)
