"""Two-stream fusion, cross-modality init, ImageNet weights through keras.applications (no download)."""

import keras
import numpy as np
import pytest

from tfvideo import models

RNG = np.random.default_rng(2)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _randomize(model):
    """Random weights everywhere, positive BN variances (so a load is visible in the outputs)."""
    for layer in model.layers:
        values = []
        for w in layer.weights:
            v = RNG.normal(0, 0.05, w.shape).astype("float32")
            if "variance" in w.path:
                v = RNG.uniform(0.5, 1.5, w.shape).astype("float32")
            elif "gamma" in w.path:
                v = RNG.uniform(0.8, 1.2, w.shape).astype("float32")
            values.append(v)
        if values:
            layer.set_weights(values)


def test_two_stream_cross_modality_init_and_weighted_fusion(tmp_path):
    rgb = models.TSN(4, num_segments=2, backbone="resnet10", width=8)
    flow = models.TSN(4, num_segments=2, backbone="resnet10", width=8, input_channels=10)  # 5 stacked (x, y)
    rgb_clip = RNG.normal(size=(2, 2, 32, 32, 3)).astype("float32")
    flow_clip = RNG.normal(size=(2, 2, 32, 32, 10)).astype("float32")
    rgb(rgb_clip), flow(flow_clip)
    names = models.cross_modality_init(rgb, flow)
    assert "conv1_conv" in names and "classifier" not in names
    k_rgb = _np(rgb.backbone.get_layer("conv1_conv").kernel)
    k_flow = _np(flow.backbone.get_layer("conv1_conv").kernel)
    assert k_flow.shape == (7, 7, 10, 8)
    np.testing.assert_allclose(k_flow, np.repeat(k_rgb.mean(axis=2, keepdims=True), 10, axis=2), rtol=1e-6)
    np.testing.assert_array_equal(_np(flow.backbone.get_layer("conv2_block1_1_conv").kernel),
                                  _np(rgb.backbone.get_layer("conv2_block1_1_conv").kernel))
    fused = models.TwoStream(rgb, flow)
    assert fused.stream_weights == (1.0, 1.5)
    inputs = {"rgb": rgb_clip, "flow": flow_clip}
    want = (_np(rgb(rgb_clip)) + 1.5 * _np(flow(flow_clip))) / 2.5
    np.testing.assert_allclose(_np(fused(inputs)), want, rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "two_stream.keras")
    fused.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.stream_weights == (1.0, 1.5)
    np.testing.assert_allclose(_np(loaded(inputs)), want, rtol=1e-4, atol=1e-5)


def test_imagenet_weights_from_a_local_keras_applications_file(tmp_path):
    """keras.applications.ResNet50 (weights=None, randomized, saved locally) loaded into our
    ResNet-50: by-name transfer with the conv biases folded into BN. With the v1 stride
    placement both networks compute the same features (BN epsilon 1.001e-5 vs 1e-5:
    relative tolerance 1e-3)."""
    app = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(None, None, 3))
    _randomize(app)
    path = str(tmp_path / "resnet50_notop.weights.h5")
    app.save_weights(path)
    ours = models.backbone("resnet50", stride_in_1x1=True)
    models.transfer_weights(app, ours)
    image = RNG.uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    want, got = _np(app(image)), _np(ours(image))
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    bias = _np(app.get_layer("conv1_conv").bias)
    np.testing.assert_allclose(_np(ours.get_layer("conv1_bn").moving_mean),
                               _np(app.get_layer("conv1_bn").moving_mean) - bias, rtol=1e-6)
    # The recognizer entry point refuses keras.applications' v1/BGR ResNet weights for its v1.5
    # backbone (ImageNet init goes through torchvision's weights: tests/models/test_convert.py).
    tsm = models.TSM(4, num_segments=2, backbone="resnet50")
    tsm.build((None, 2, 64, 64, 3))
    with pytest.raises(ValueError, match="torchvision ImageNet state_dict"):
        models.load_imagenet_weights(tsm, weights=path)


def test_imagenet_weights_mobilenet_v2(tmp_path):
    app = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.5, input_shape=(None, None, 3))
    _randomize(app)
    path = str(tmp_path / "mobilenet.weights.h5")
    app.save_weights(path)
    tsn = models.TSN(4, num_segments=2, backbone="mobilenetv2", width=16)
    tsn.build((None, 2, 64, 64, 3))
    models.load_imagenet_weights(tsn, weights=path)
    image = RNG.uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(_np(tsn.backbone(image)), _np(app(image)), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="No keras.applications ImageNet weights for backbone 'bninception'"):
        models.load_imagenet_weights(models.TSN(4, backbone="bninception"), weights=path)
