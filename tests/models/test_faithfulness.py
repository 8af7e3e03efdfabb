"""Faithfulness: parameter counts vs published numbers, inflation's boring-video argument."""

import keras
import numpy as np
import pytest

from tfvideo import models

RNG = np.random.default_rng(1)


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_tsn_tsm_resnet50_parameter_counts():
    # Published: TSM ResNet-50, 8 frames, Kinetics-400: 24.3M parameters, 33G FLOPs
    # (Lin, Gan, Han, "TSM", ICCV 2019, comparison table); TSN ResNet-50 the same backbone and
    # head. torchvision ResNet-50 without fc: 23,508,032; + 2048 x 400 + 400 = 24,327,632.
    for cls in (models.TSN, models.TSM):
        model = cls(400, num_segments=8, backbone="resnet50")
        model.build((None, 8, 224, 224, 3))
        assert _trainable(model) == 24_327_632
        assert abs(_trainable(model) / 24.3e6 - 1) < 0.005


# I3D Inception-v1's exact count (12,689,984) is pinned in test_kinetics_i3d_reference.py.


def test_mobilenet_v2_matches_keras_applications_count():
    ours = models.backbone("mobilenetv2", width=16)
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.5, input_shape=(None, None, 3))
    assert ours.count_params() == reference.count_params()


def _boring(frame, t):
    return np.repeat(frame[:, None], t, axis=1)


@pytest.mark.parametrize("backbone", ["inception_v1", "resnet18"])
def test_inflated_network_on_a_boring_video_equals_the_2d_network(backbone):
    """The I3D argument: one frame repeated T times through the inflated network gives the
    2D network's pooled features on that frame. Exact (float32 round-off, tolerance 1e-5 of
    the feature scale) with replicate time padding; zero padding (I3D's choice) differs
    only through the clip ends."""
    model_2d = models.backbone(backbone, width=16)
    for layer in model_2d.layers:  # non-trivial BN statistics (Inception-v1's BN has no scale, as DeepMind's)
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            values = [RNG.normal(0, 0.1, c), RNG.normal(0, 0.1, c), RNG.uniform(0.5, 1.5, c)]
            layer.set_weights(([RNG.uniform(0.5, 1.5, c)] if layer.scale else []) + values)
    i3d = models.I3D(4, num_frames=16, backbone=backbone, width=16, time_padding="replicate")
    i3d.load_2d_weights(model_2d)
    frame = RNG.normal(size=(2, 64, 64, 3)).astype("float32")
    want = keras.ops.convert_to_numpy(keras.layers.GlobalAveragePooling2D()(model_2d(frame)))
    got = keras.ops.convert_to_numpy(i3d.features(_boring(frame, 16)))
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, atol=1e-5 * scale)
    # The inflated kernels are the 2D kernels repeated along time and divided by t.
    name = "Conv2d_1a_7x7_conv" if backbone == "inception_v1" else "conv1_conv"
    k2 = keras.ops.convert_to_numpy(model_2d.get_layer(name).kernel)
    k3 = keras.ops.convert_to_numpy(i3d.backbone.get_layer(name).kernel)
    np.testing.assert_allclose(k3.sum(axis=0), k2, rtol=1e-5, atol=1e-7)
    assert np.allclose(k3[0], k3[-1])
    # With zero time padding (as in I3D) the clip ends see zeros: not equal any more.
    zeros = models.I3D(4, num_frames=16, backbone=backbone, width=16)
    zeros.load_2d_weights(model_2d)
    assert np.abs(keras.ops.convert_to_numpy(zeros.features(_boring(frame, 16))) - want).max() > 1e-3 * scale


def test_inflate_function_on_a_plain_keras_model():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model_2d = keras.Model(inputs, keras.layers.Dense(3)(x))
    model_3d = models.inflate(model_2d, num_frames=5, time_padding="replicate")
    frame = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model_3d(_boring(frame, 5))),
                               keras.ops.convert_to_numpy(model_2d(frame)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown layers"):
        models.inflate(model_2d, time_kernels={"missing": 3})


def test_non_local_i3d(tmp_path):
    model = models.I3D(3, num_frames=8, backbone="resnet18", width=8, non_local=True, non_local_mode="dot_product")
    blocks = [layer for layer in model.backbone.layers if type(layer).__name__ == "NonLocalBlock"]
    assert len(blocks) == 2 and all(b.mode == "dot_product" for b in blocks)  # res3/res4 block 1 in ResNet-18
    clip = RNG.normal(size=(1, 8, 32, 32, 3)).astype("float32")
    want = keras.ops.convert_to_numpy(model(clip))
    assert want.shape == (1, 3)
    path = str(tmp_path / "i3d_nl.keras")
    model.save(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.models.load_model(path)(clip)), want, rtol=1e-4,
                               atol=1e-5)


def _graph_flops(model, shape):
    import tensorflow as tf

    spec = tf.TensorSpec(shape, tf.float32)
    graph = tf.function(lambda x: model(x, training=False), autograph=False).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="counts FLOPs on a TensorFlow graph")
def test_flops_match_published_counts():
    # TSM paper (Lin et al. ICCV 2019): TSN/TSM ResNet-50, 8 frames 224x224: 33G multiply-adds.
    tsm = models.get("tsm_r50", num_classes=400)
    assert abs(_graph_flops(tsm, (1, 8, 224, 224, 3)) / 2e9 / 33.0 - 1) < 0.01
    # DeepMind I3D RGB (OpenVINO OMZ i3d-rgb-tf spec): 278.981 GFLOPs for a 79x224x224 clip.
    i3d = models.I3D(400, num_frames=79, backbone="inception_v1")
    assert abs(_graph_flops(i3d, (1, 79, 224, 224, 3)) / 1e9 / 278.981 - 1) < 0.01
