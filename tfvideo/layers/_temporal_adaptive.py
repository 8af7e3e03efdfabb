"""Temporal Adaptive Module (TAM / TANet, Liu et al. 2021)."""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export
from tfvideo.layers import _initializers


@tf_export("tfvideo.layers.TemporalAdaptive")
@keras.saving.register_keras_serializable(package="tfvideo")
class TemporalAdaptive(keras.layers.Layer):
    """Location-sensitive importance map + location-invariant adaptive temporal kernel.

    Input `[B * T, H, W, C]` (frames of clips of `num_segments`). From the spatially
    pooled series `[B, T, C]`:
      - local branch: Conv1D(C / beta, 3) -> BN -> ReLU -> Conv1D(C, 1) -> sigmoid gives
        an importance map `[B, T, C]` that rescales every frame's channels;
      - global branch: per channel, Dense(T * alpha) -> BN -> ReLU -> Dense(K) -> softmax
        over its T values gives a kernel `[B, C, K]`, applied as a depthwise temporal
        convolution (zero padded) to the rescaled features.
    The convolution and dense kernels start as the authors' PyTorch module does (PyTorch's
    default init, uniform in +-1/sqrt(fan_in)).
    """

    def __init__(self, num_segments, kernel_size=3, alpha=2, beta=4, **kwargs):
        super().__init__(**kwargs)
        self.num_segments = int(num_segments)
        self.kernel_size = int(kernel_size)
        self.alpha = int(alpha)
        self.beta = int(beta)

    def build(self, input_shape):
        c, t, p = input_shape[-1], self.num_segments, self.dtype_policy
        init = _initializers.torch_default
        self.local_conv = layers.Conv1D(max(c // self.beta, 1), 3, padding="same", use_bias=False, name="local_conv",
                                        kernel_initializer=init(), dtype=p)
        self.local_bn = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="local_bn", dtype=p)
        self.local_out = layers.Conv1D(c, 1, use_bias=False, name="local_out", kernel_initializer=init(), dtype=p)
        self.global_hidden = layers.Dense(t * self.alpha, use_bias=False, name="global_hidden", kernel_initializer=init(),
                                          dtype=p)
        self.global_bn = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="global_bn", dtype=p)
        self.global_out = layers.Dense(self.kernel_size, use_bias=False, name="global_out", kernel_initializer=init(),
                                       dtype=p)
        self.local_conv.build((None, t, c))
        self.local_bn.build((None, t, max(c // self.beta, 1)))
        self.local_out.build((None, t, max(c // self.beta, 1)))
        self.global_hidden.build((None, t))
        self.global_bn.build((None, t * self.alpha))
        self.global_out.build((None, t * self.alpha))

    def call(self, x, training=None):
        t, k = self.num_segments, self.kernel_size
        shape = ops.shape(x)
        c = x.shape[-1]
        clips = ops.reshape(x, (-1, t) + tuple(shape[1:]))  # [B, T, H, W, C]
        series = ops.mean(clips, axis=(2, 3))  # [B, T, C]
        local = ops.relu(self.local_bn(self.local_conv(series), training=training))
        importance = ops.sigmoid(self.local_out(local))  # [B, T, C]
        per_channel = ops.reshape(ops.transpose(series, (0, 2, 1)), (-1, t))  # [B * C, T]
        g = ops.relu(self.global_bn(self.global_hidden(per_channel), training=training))
        kernel = ops.reshape(ops.softmax(self.global_out(g), axis=-1), (-1, c, k))  # [B, C, K]
        rescaled = clips * importance[:, :, None, None, :]
        half = k // 2
        padded = ops.pad(rescaled, [(0, 0), (half, k - 1 - half), (0, 0), (0, 0), (0, 0)])
        out = None
        for j in range(k):
            tap = padded[:, j : j + t] * kernel[:, None, None, None, :, j]
            out = tap if out is None else out + tap
        return ops.reshape(out, shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "num_segments": self.num_segments,
            "kernel_size": self.kernel_size,
            "alpha": self.alpha,
            "beta": self.beta,
        }
