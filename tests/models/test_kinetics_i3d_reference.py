"""I3D Inception-v1 is DeepMind's network: exact parameter count, and logits parity with an
independent TF forward pass (tests/models/reference_kinetics_i3d.py) on a TF1 checkpoint
with their variable names, through the `kinetics_i3d` mapper."""

import keras
import numpy as np
import pytest

from tfvideo import models
from tfvideo.models import _convert_i3d_inception, _i3d


def test_i3d_inception_v1_parameter_count_is_deepminds():
    # DeepMind's I3D RGB for 400 classes (kinetics-i3d i3d.py): conv kernels, BN offsets
    # (Sonnet's BatchNorm has no scale) and the logits conv with bias: 12,689,984, the
    # published 12.69 M (OpenVINO Open Model Zoo "i3d-rgb-tf").
    model = models.I3D(400, num_frames=64, backbone="inception_v1")
    model.build((None, 64, 224, 224, 3))
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 12_689_984
    assert not any(w.path.endswith("gamma") for w in model.weights)


IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def test_i3d_inception_logits_match_deepminds_forward(tmp_path):
    """DeepMind's network reads RGB in [-1, 1]; the converted model reads tfvideo's clips (ImageNet
    mean/std) and gives the same logits: its `input_range` maps one to the other, and it travels
    with the weights (`.keras` file, then `init_from_converted` into a fresh model as the trainer does)."""
    import reference_kinetics_i3d as ref

    path = str(tmp_path / "rgb" / "model.ckpt")
    values = ref.random_checkpoint(path, num_classes=5, scale=0.25)
    assert "RGB/inception_i3d/Conv3d_1a_7x7/conv_3d/w" in values
    rgb = np.random.default_rng(0).uniform(0, 1, size=(2, 24, 224, 224, 3))
    theirs = (2 * rgb - 1).astype("float32")
    ours = ((rgb - IMAGENET_MEAN) / IMAGENET_STD).astype("float32")
    model = models.I3D(5, num_frames=24, backbone="inception_v1", width=16)
    model.build(ours.shape)
    mapped = _convert_i3d_inception.map_kinetics_i3d(_convert_i3d_inception.read_kinetics_i3d(path), model)
    assert set(mapped) == {v.path for v in model.weights}
    np.testing.assert_allclose(mapped[model.input_range.scale.path], 2 * IMAGENET_STD, rtol=1e-6)
    np.testing.assert_allclose(mapped[model.input_range.offset.path], 2 * IMAGENET_MEAN - 1, rtol=1e-6)
    converted, report = models.convert_checkpoint("kinetics_i3d", path, model)
    assert not report.missing and not report.unused
    models.save_converted(converted, str(tmp_path / "i3d.keras"))
    fresh = models.I3D(5, num_frames=24, backbone="inception_v1", width=16)
    fresh.build(ours.shape)
    models.init_from_converted(fresh, str(tmp_path / "i3d.keras"))
    got = keras.ops.convert_to_numpy(fresh(ours, training=False))
    want = ref.forward(path, theirs)
    scale = np.abs(want).max()
    assert scale > 1e-2
    np.testing.assert_allclose(got, want, atol=1e-4 * scale)


def test_folding_the_input_range_into_the_stem_is_inexact_at_the_border():
    """Why `input_range` is a layer before the stem and not folded into its conv weights: with
    SAME padding the folded conv pads zeros of the normalised input, which are not [-1, 1]'s
    zeros, so only outputs whose window stays inside the clip agree."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.05, (7, 7, 7, 3, 8)).astype("float32")
    rgb = rng.uniform(0, 1, (1, 16, 32, 32, 3))
    x = ((rgb - IMAGENET_MEAN) / IMAGENET_STD).astype("float32")
    want = tf.nn.conv3d((2 * rgb - 1).astype("float32"), w, [1, 2, 2, 2, 1], "SAME").numpy()
    # 2 rgb - 1 = a x + b: kernel scaled by a per input channel, b's response as a bias.
    a, b = 2 * IMAGENET_STD, 2 * IMAGENET_MEAN - 1
    folded_w = (w * a[None, None, None, :, None]).astype("float32")
    bias = np.einsum("thwco,c->o", w, b)
    folded = tf.nn.conv3d(x, folded_w, [1, 2, 2, 2, 1], "SAME").numpy() + bias
    inside = (slice(None), slice(2, -2), slice(2, -2), slice(2, -2))  # windows clear of the padding
    np.testing.assert_allclose(folded[inside], want[inside], atol=1e-4)
    assert np.abs(folded - want).max() > 0.1 * np.abs(want).max()
    layer = _i3d.InputAffine()
    layer.build(x.shape)
    layer.scale.assign(a)
    layer.offset.assign(b)
    exact = tf.nn.conv3d(keras.ops.convert_to_numpy(layer(x)), w, [1, 2, 2, 2, 1], "SAME").numpy()
    np.testing.assert_allclose(exact, want, atol=1e-4)


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
