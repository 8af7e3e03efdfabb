"""BatchNormalization that runs TensorFlow's fused kernel on `[N, H, W, C]` tensors."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfvideo")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with TensorFlow's fused kernel in training mode.

    Keras 3 normalises with separate moments, subtract, multiply and add ops on every
    backend; in a training step their gradients are as many more passes over each
    activation. On the TensorFlow backend, in training mode, for a rank-4 input normalised
    over its last axis (2D CNN feature maps, channels last, no mask, no renorm or
    synchronized statistics), this layer calls `FusedBatchNormV3` (one pass forward, one
    backward). Inference (where the fused kernel measured slower here:
    benchmarks/tsm_vs_pytorch.py, docs/notes/models.md), every other case and every other
    backend run the Keras layer unchanged. Same weights, names and moving-average
    update as Keras (the moving variance takes the biased batch variance, as Keras does;
    the fused kernel reports the unbiased one, which is rescaled).
    """

    def _fused_applies(self, inputs, training, mask):
        return (training and self.trainable and keras.backend.backend() == "tensorflow" and mask is None
                and not self.renorm and not self.synchronized and len(inputs.shape) == 4 and self.axis in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = ops.cast(inputs, "float32")  # statistics in float32, as Keras computes them
        channels = x.shape[-1]
        gamma = ops.cast(self.gamma, "float32") if self.scale else tf.ones((channels,), "float32")
        beta = ops.cast(self.beta, "float32") if self.center else tf.zeros((channels,), "float32")
        empty = tf.constant([], "float32")  # no running statistics in: the kernel computes the batch's
        # The raw op: tf.nn.fused_batch_norm would raise epsilon to at least 1.001e-5 (a cuDNN limit).
        y, batch_mean, batch_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=empty, variance=empty, epsilon=self.epsilon, data_format="NHWC",
            is_training=True)
        count = ops.cast(ops.prod(ops.shape(x)[:-1]), "float32")
        batch_variance = batch_variance * ops.maximum(count - 1.0, 0.0) / count  # unbiased -> biased, as Keras
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + ops.cast(batch_mean, self.moving_mean.dtype) * (1 - m))
        self.moving_variance.assign(self.moving_variance * m
                                    + ops.cast(batch_variance, self.moving_variance.dtype) * (1 - m))
        return ops.cast(y, self.compute_dtype)
