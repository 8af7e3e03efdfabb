"""Temporal Difference modules (TDN, Wang et al. 2021): short- and long-term differences."""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export


def _upsample_to(x, like):
    """Nearest x2 upsampling of `x`, cropped to the spatial size of `like`."""
    x = ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)
    return x[:, : ops.shape(like)[1], : ops.shape(like)[2]]


@tf_export("tfvideo.layers.ShortTermDifference")
@keras.saving.register_keras_serializable(package="tfvideo")
class ShortTermDifference(keras.layers.Layer):
    """TDN's short-term module (S-TDM): RGB differences around a segment enrich its stem.

    `call(frames, features)`: `frames` `[N, H, W, L * C]` are the L consecutive frames of
    each segment stacked on channels; `features` `[N, h, w, F]` is the stem output of the
    centre frame. The L - 1 frame differences are average pooled x2, convolved (7x7,
    stride 2) to F channels, upsampled x2 and added to `features`.
    """

    def __init__(self, frames_per_segment=5, channels=3, **kwargs):
        super().__init__(**kwargs)
        if frames_per_segment < 2:
            raise ValueError(f"ShortTermDifference: frames_per_segment={frames_per_segment} must be >= 2.")
        self.frames_per_segment = int(frames_per_segment)
        self.channels = int(channels)

    def build(self, frames_shape, features_shape):
        f = features_shape[-1]
        self.pool = layers.AveragePooling2D(2, padding="same", name="pool", dtype=self.dtype_policy)
        self.conv = layers.Conv2D(f, 7, strides=2, padding="same", use_bias=False, name="conv", dtype=self.dtype_policy)
        self.bn = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn", dtype=self.dtype_policy)
        c, n = self.channels, self.frames_per_segment
        diff_shape = tuple(frames_shape[:-1]) + ((n - 1) * c,)
        self.conv.build(self.pool.compute_output_shape(diff_shape))
        self.bn.build(self.conv.compute_output_shape(self.pool.compute_output_shape(diff_shape)))

    def call(self, frames, features, training=None):
        c = self.channels
        diffs = [frames[..., (i + 1) * c : (i + 2) * c] - frames[..., i * c : (i + 1) * c]
                 for i in range(self.frames_per_segment - 1)]
        d = self.pool(ops.concatenate(diffs, axis=-1))
        d = ops.relu(self.bn(self.conv(d), training=training))
        return features + _upsample_to(d, features)

    def compute_output_shape(self, frames_shape, features_shape):
        return tuple(features_shape)

    def get_config(self):
        return {**super().get_config(), "frames_per_segment": self.frames_per_segment, "channels": self.channels}


@tf_export("tfvideo.layers.TemporalDifference")
@keras.saving.register_keras_serializable(package="tfvideo")
class TemporalDifference(keras.layers.Layer):
    """TDN's long-term module (L-TDM): attention from differences of adjacent segments.

    Input `[B * T, H, W, C]`. Features are squeezed to C / reduction channels; the
    forward difference conv3x3(F[t+1]) - F[t] and the backward one conv3x3(F[t-1]) - F[t]
    (zero at the clip ends) go through a two-scale spatial branch (full and x2 pooled),
    are averaged, expanded back to C channels, and gate the input:
    `x + x * (sigmoid(a) - 0.5)`.
    """

    def __init__(self, num_segments, reduction=8, **kwargs):
        super().__init__(**kwargs)
        self.num_segments = int(num_segments)
        self.reduction = int(reduction)

    def build(self, input_shape):
        c = input_shape[-1]
        r = max(c // self.reduction, 1)
        p = self.dtype_policy

        def conv(filters, kernel, name):
            return layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=name, dtype=p)

        self.squeeze = conv(r, 1, "squeeze")
        self.squeeze_bn = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="squeeze_bn", dtype=p)
        self.align_forward = conv(r, 3, "align_forward")
        self.align_backward = conv(r, 3, "align_backward")
        self.full_scale = conv(r, 3, "full_scale")
        self.half_scale = conv(r, 3, "half_scale")
        self.pool = layers.AveragePooling2D(2, padding="same", name="pool", dtype=p)
        self.expand = conv(c, 1, "expand")
        self.expand_bn = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="expand_bn", dtype=p)
        reduced = tuple(input_shape[:-1]) + (r,)
        self.squeeze.build(input_shape)
        self.squeeze_bn.build(reduced)
        for layer in (self.align_forward, self.align_backward, self.full_scale):
            layer.build(reduced)
        self.half_scale.build(self.pool.compute_output_shape(reduced))
        self.expand.build(reduced)
        self.expand_bn.build(input_shape)

    def _multi_scale(self, d):
        return self.full_scale(d) + _upsample_to(self.half_scale(self.pool(d)), d)

    def call(self, x, training=None):
        t = self.num_segments
        y = self.squeeze_bn(self.squeeze(x), training=training)
        shape = ops.shape(y)
        clips = ops.reshape(y, (-1, t) + tuple(shape[1:]))
        fwd = ops.reshape(self.align_forward(y), (-1, t) + tuple(shape[1:]))
        bwd = ops.reshape(self.align_backward(y), (-1, t) + tuple(shape[1:]))
        zero = ops.zeros_like(clips[:, :1])
        d_fwd = ops.concatenate([fwd[:, 1:] - clips[:, :-1], zero], axis=1)
        d_bwd = ops.concatenate([zero, bwd[:, :-1] - clips[:, 1:]], axis=1)
        d_fwd = ops.reshape(d_fwd, shape)
        d_bwd = ops.reshape(d_bwd, shape)
        a = 0.5 * (self._multi_scale(d_fwd) + self._multi_scale(d_bwd))
        a = self.expand_bn(self.expand(a), training=training)
        return x + x * (ops.sigmoid(a) - 0.5)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_segments": self.num_segments, "reduction": self.reduction}
