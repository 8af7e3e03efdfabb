"""Dilated temporal convolution, optionally causal (for online models)."""

import keras
from keras import ops

from tfvideo.api._export import tf_export


@tf_export("tfvideo.layers.DilatedTemporalConv")
@keras.saving.register_keras_serializable(package="tfvideo")
class DilatedTemporalConv(keras.layers.Layer):
    """Convolution along time with a dilation rate: `[B, T, ..., C] -> [B, T, ..., filters]`.

    `y[t] = sum_k W[k] x[t + (k - c) * d]` with zero padding, where `c = (K - 1) // 2`
    ("same" centring), or `c = K - 1` with `causal=True` (output at t sees only
    frames <= t). Works on `[B, T, C]` and on `[B, T, H, W, C]` (each position alone).
    """

    def __init__(self, filters, kernel_size=3, dilation_rate=1, causal=False, use_bias=True, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.dilation_rate = int(dilation_rate)
        self.causal = bool(causal)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, input_shape[-1], self.filters),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None

    def _padding(self):
        total = (self.kernel_size - 1) * self.dilation_rate
        before = total if self.causal else ((self.kernel_size - 1) // 2) * self.dilation_rate
        return before, total - before

    def call(self, x):
        before, after = self._padding()
        total = before + after
        pad = [(0, 0)] * len(x.shape)
        pad[1] = (before, after)
        padded = ops.pad(x, pad)
        out = None
        for k in range(self.kernel_size):
            start = k * self.dilation_rate
            end = start - total
            tap = padded[:, start : (end if end < 0 else None)]
            y = ops.matmul(tap, ops.cast(self.kernel[k], tap.dtype))
            out = y if out is None else out + y
        if self.bias is not None:
            out = out + ops.cast(self.bias, out.dtype)
        return self.activation(out)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate,
            "causal": self.causal,
            "use_bias": self.use_bias,
            "activation": keras.activations.serialize(self.activation),
        }
