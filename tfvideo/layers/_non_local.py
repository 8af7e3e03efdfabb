"""Non-local block (Wang et al. 2018) over space-time."""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export

_MODES = ("embedded_gaussian", "dot_product")


@tf_export("tfvideo.layers.NonLocalBlock")
@keras.saving.register_keras_serializable(package="tfvideo")
class NonLocalBlock(keras.layers.Layer):
    """`z = x + BN(W y)`, `y_i = sum_j f(x_i, x_j) g(x_j)` over all T*H*W positions.

    Input `[B, T, H, W, C]`. theta, phi, g are 1x1x1 convolutions to `inter_channels`
    (C / 2 by default); with `sub_sample`, phi and g are max pooled 1x2x2. `f` is
    softmax(theta . phi) ("embedded_gaussian") or theta . phi / N ("dot_product").
    The output BN starts with zero scale so a new block is the identity.
    """

    def __init__(self, mode="embedded_gaussian", inter_channels=None, sub_sample=True, **kwargs):
        super().__init__(**kwargs)
        if mode not in _MODES:
            raise ValueError(f"NonLocalBlock: mode={mode!r} must be one of {_MODES}.")
        self.mode = mode
        self.inter_channels = inter_channels
        self.sub_sample = bool(sub_sample)

    def build(self, input_shape):
        if len(input_shape) != 5:
            raise ValueError(f"{self.name}: input must be [B, T, H, W, C], got {input_shape}.")
        c = input_shape[-1]
        inter = self.inter_channels or max(c // 2, 1)
        p = self.dtype_policy
        self.theta = layers.Dense(inter, name="theta", dtype=p)
        self.phi = layers.Dense(inter, name="phi", dtype=p)
        self.g = layers.Dense(inter, name="g", dtype=p)
        self.project = layers.Dense(c, name="project", dtype=p)
        self.bn = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, gamma_initializer="zeros", name="bn", dtype=p)
        for layer in (self.theta, self.phi, self.g):
            layer.build(input_shape)
        inner = tuple(input_shape[:-1]) + (inter,)
        self.project.build(inner)
        self.bn.build(input_shape)
        self.pool = layers.MaxPooling3D((1, 2, 2), padding="same", name="pool", dtype=p) if self.sub_sample else None

    def call(self, x, training=None):
        shape = ops.shape(x)
        theta, phi, g = self.theta(x), self.phi(x), self.g(x)
        if self.pool is not None:
            phi, g = self.pool(phi), self.pool(g)
        inter = theta.shape[-1]
        theta = ops.reshape(theta, (shape[0], -1, inter))
        phi = ops.reshape(phi, (shape[0], -1, inter))
        g = ops.reshape(g, (shape[0], -1, inter))
        f = ops.einsum("bnc,bmc->bnm", theta, phi)
        if self.mode == "embedded_gaussian":
            f = ops.softmax(f, axis=-1)
        else:
            f = f / ops.cast(ops.shape(phi)[1], f.dtype)
        y = ops.reshape(ops.einsum("bnm,bmc->bnc", f, g), tuple(shape[:-1]) + (inter,))
        return x + self.bn(self.project(y), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "mode": self.mode,
            "inter_channels": self.inter_channels,
            "sub_sample": self.sub_sample,
        }
