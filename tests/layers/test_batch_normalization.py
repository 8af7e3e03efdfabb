"""FusedBatchNormalization: same outputs, gradients and moving statistics as Keras' BatchNormalization."""

import keras
import numpy as np
import pytest

from tfvideo.layers._batch_normalization import FusedBatchNormalization

RNG = np.random.default_rng(3)


def _pair(shape, **kwargs):
    """A Keras BatchNormalization and a FusedBatchNormalization with the same non-trivial weights."""
    ref = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, **kwargs)
    fused = FusedBatchNormalization(epsilon=1e-5, momentum=0.9, **kwargs)
    ref.build(shape)
    fused.build(shape)
    weights = [RNG.uniform(0.5, 1.5, w.shape).astype("float32") for w in ref.get_weights()]
    ref.set_weights(weights)
    fused.set_weights(weights)
    return ref, fused


def _numpy_train(x, gamma, beta, eps=1e-5):
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))  # biased, as Keras normalises
    return (x - mean) / np.sqrt(var + eps) * gamma + beta, mean, var


@pytest.mark.parametrize("training", [True, False])
def test_fused_matches_keras_and_numpy(training):
    import tensorflow as tf

    x = RNG.normal(2.0, 3.0, (6, 5, 4, 8)).astype("float32")
    ref, fused = _pair(x.shape)
    gamma, beta, moving_mean, moving_var = ref.get_weights()
    upstream = tf.constant(RNG.normal(size=x.shape).astype("float32"))
    outputs, grads = [], []
    for layer in (ref, fused):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, training=training)
            loss = tf.reduce_sum(y * upstream)
        outputs.append(y.numpy())
        grads.append([g.numpy() for g in tape.gradient(loss, [xt, layer.gamma, layer.beta])])
    if training:
        want, mean, var = _numpy_train(x.astype("float64"), gamma, beta)
        np.testing.assert_allclose(fused.moving_mean.numpy(), 0.9 * moving_mean + 0.1 * mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fused.moving_variance.numpy(), 0.9 * moving_var + 0.1 * var, rtol=1e-5, atol=1e-6)
    else:
        want = (x - moving_mean) / np.sqrt(moving_var + 1e-5) * gamma + beta
        np.testing.assert_array_equal(fused.moving_mean.numpy(), moving_mean)
    np.testing.assert_allclose(outputs[1], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-4, atol=1e-4)
    for got, ref_grad, name in zip(grads[1], grads[0], ("input", "gamma", "beta")):
        np.testing.assert_allclose(got, ref_grad, rtol=1e-3, atol=1e-3, err_msg=f"gradient of {name}")
    np.testing.assert_allclose(fused.moving_variance.numpy(), ref.moving_variance.numpy(), rtol=1e-5, atol=1e-6)


def test_other_ranks_and_masks_run_keras_layer():
    x = RNG.normal(size=(2, 3, 4, 4, 8)).astype("float32")  # rank 5 (an inflated I3D BN): Keras' path
    ref, fused = _pair(x.shape)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused(x, training=True)),
                               keras.ops.convert_to_numpy(ref(x, training=True)), rtol=1e-5, atol=1e-5)


def test_config_round_trip_and_frozen_layer():
    import tensorflow as tf

    layer = FusedBatchNormalization(epsilon=1e-5, momentum=0.9, name="conv1_bn")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is FusedBatchNormalization and clone.epsilon == 1e-5 and clone.momentum == 0.9
    x = tf.constant(RNG.normal(size=(2, 3, 3, 4)).astype("float32"))
    clone.build(x.shape)
    clone.trainable = False  # frozen (partial BN): inference statistics even with training=True
    before = clone.moving_mean.numpy().copy()
    np.testing.assert_allclose(clone(x, training=True).numpy(), clone(x, training=False).numpy())
    np.testing.assert_array_equal(clone.moving_mean.numpy(), before)
