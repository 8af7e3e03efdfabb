"""Temporal Difference modules (TDN, Wang et al. CVPR 2021), as in the authors' code.

The reference is MCG-NJU/TDN (`ops/tdn_net.py`: the short-term module and its fusions;
`ops/base_module.py`: `mSEModule`, the long-term module, and `ShiftModule`, the learnable
shift). Layer and weight names here map one to one onto theirs (docs/notes/models.md).

Two revisions of the authors' code differ in one line of the long-term module (`revision`):
"2021" (their commit bcf28d9 of 2021-03-05 onwards, the code behind today's model zoo) and
"2020" (the December 2020 release, commit c5c5b10, whose backward full-scale branch re-reads
the forward branch's output; their issue #6).
"""

import keras
import numpy as np
from keras import layers, ops

from tfvideo.api._export import tf_export


def nearest_resize(x, like):
    """`x` `[N, h, w, C]` resized to the spatial size of `like` by nearest neighbour.

    Source index `floor(i * h / H)`: PyTorch's `F.interpolate(mode="nearest")`, which the
    authors use (a plain x2 repeat when sizes are even; for 7 <- 3 rows it reads 0,0,0,1,1,2,2).
    """
    for axis in (1, 2):
        n_in, n_out = ops.shape(x)[axis], ops.shape(like)[axis]
        x = ops.take(x, (ops.arange(n_out) * n_in) // n_out, axis=axis)
    return x


def _at_least_2(x):
    """Mirrors a 1-pixel-wide map to 2 pixels so a 2x2 pool has a window (the authors' net
    needs maps >= 2; smaller inputs then pool a 1x1 map to itself)."""
    h, w = (max(2 - n, 0) if isinstance(n, int) else ops.maximum(2 - n, 0) for n in ops.shape(x)[1:3])
    if isinstance(h, int) and isinstance(w, int) and not (h or w):
        return x
    return ops.pad(x, [(0, 0), (0, h), (0, w), (0, 0)], mode="symmetric")


# Revision names and the authors' commits that name them (first 7 hex digits).
TDN_REVISIONS = ("2021", "2020")
_REVISION_ALIASES = {"2021": "2021", "bcf28d9": "2021", "current": "2021",
                     "2020": "2020", "c5c5b10": "2020", "2b0a287": "2020"}


def tdn_revision(revision):
    """`revision` ("2021", "2020", or one of the authors' commits) -> "2021" or "2020"."""
    key = str(revision).strip().lower()
    if key not in _REVISION_ALIASES:
        raise ValueError(f"TDN revision={revision!r} must be one of {sorted(_REVISION_ALIASES)} "
                         "('2021': MCG-NJU/TDN since bcf28d9; '2020': their December 2020 release).")
    return _REVISION_ALIASES[key]


def _bn(name, policy):
    return layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name, dtype=policy)


@tf_export("tfvideo.layers.ShortTermDifference")
@keras.saving.register_keras_serializable(package="tfvideo")
class ShortTermDifference(keras.layers.Layer):
    """TDN's short-term module (S-TDM) stem: RGB differences of a segment's frames.

    `[N, H, W, L * C]` (the L consecutive frames of each segment stacked on channels) ->
    `[N, H/8, W/8, filters]`: the L - 1 frame differences, average pooled x2, a 7x7
    stride-2 conv (no bias) + BN + ReLU, a 3x3 stride-2 max pool (the authors' `avg_diff`,
    `conv1_5`, `maxpool_diff`). The network fuses it into the RGB stem after its pool, and
    a copy of the first residual stage applied to it after that stage (`DifferenceFusion`).
    """

    def __init__(self, frames_per_segment=5, channels=3, filters=64, **kwargs):
        super().__init__(**kwargs)
        if frames_per_segment < 2:
            raise ValueError(f"ShortTermDifference: frames_per_segment={frames_per_segment} must be >= 2.")
        self.frames_per_segment = int(frames_per_segment)
        self.channels = int(channels)
        self.filters = int(filters)
        p = self.dtype_policy
        self.pool = layers.AveragePooling2D(2, strides=2, name="pool", dtype=p)
        self.pad = layers.ZeroPadding2D(3, name="pad", dtype=p)
        self.conv = layers.Conv2D(self.filters, 7, strides=2, use_bias=False, name="conv", dtype=p)
        self.bn = _bn("bn", p)
        # Zero padding equals the authors' -inf padding here: the input is after a ReLU.
        self.max_pad = layers.ZeroPadding2D(1, name="max_pad", dtype=p)
        self.max_pool = layers.MaxPooling2D(3, strides=2, name="max_pool", dtype=p)

    def build(self, frames_shape):
        shape = tuple(frames_shape[:-1]) + ((self.frames_per_segment - 1) * self.channels,)
        shape = self.pad.compute_output_shape(self.pool.compute_output_shape(shape))
        self.conv.build(shape)
        self.bn.build(self.conv.compute_output_shape(shape))

    def call(self, frames, training=None):
        c = self.channels
        diffs = [frames[..., (i + 1) * c : (i + 2) * c] - frames[..., i * c : (i + 1) * c]
                 for i in range(self.frames_per_segment - 1)]
        d = self.conv(self.pad(self.pool(ops.concatenate(diffs, axis=-1))))
        d = ops.relu(self.bn(d, training=training))
        return self.max_pool(self.max_pad(d))

    def compute_output_shape(self, frames_shape):
        shape = tuple(frames_shape[:-1]) + ((self.frames_per_segment - 1) * self.channels,)
        for layer in (self.pool, self.pad, self.conv, self.max_pad, self.max_pool):
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        return {**super().get_config(), "frames_per_segment": self.frames_per_segment, "channels": self.channels,
                "filters": self.filters}


@keras.saving.register_keras_serializable(package="tfvideo")
class DifferenceFusion(keras.layers.Layer):
    """`[x, d]` -> `alpha * x + beta * nearest_resize(d, x)`: TDN's RGB/difference fusion.

    The authors use alpha = beta = 0.5 for 8 segments and 0.75 / 0.25 otherwise.
    """

    def __init__(self, alpha=0.5, beta=0.5, **kwargs):
        super().__init__(**kwargs)
        self.alpha, self.beta = float(alpha), float(beta)

    def call(self, inputs):
        x, d = inputs
        return self.alpha * x + self.beta * nearest_resize(d, x)

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0])

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}


@tf_export("tfvideo.layers.TemporalDifference")
@keras.saving.register_keras_serializable(package="tfvideo")
class TemporalDifference(keras.layers.Layer):
    """TDN's long-term module (L-TDM, the authors' `mSEModule`): a gate from segment differences.

    Input `[B * T, H, W, C]`. A 1x1 conv + BN squeezes to `r = C // reduction` channels;
    one depthwise 3x3 conv aligns them; the forward difference `align(F[t+1]) - F[t]`
    and the backward one `align(F[t-1]) - F[t]` (zero at the clip end/start) each go
    through three branches weighted 1/3: the difference itself, a 3x3 conv + BN at full
    scale, and a 3x3 conv + BN on the x2 average-pooled difference (resized back). A 1x1
    conv + BN back to C, `sigmoid - 0.5`, the mean of both directions `a`; output `x + x * a`.

    The two directions share the branch and expansion weights, as in the authors' code.
    `revision` "2021" (default) is their current code; "2020" their December 2020 release,
    where the backward full-scale branch applies the full-scale conv + BN to the *forward*
    branch's output (checkpoints trained with that code need it). A config saved without a
    revision (before the option existed) loads as "2020", the behaviour it was saved with.
    """

    def __init__(self, num_segments, reduction=16, revision="2021", **kwargs):
        super().__init__(**kwargs)
        self.num_segments = int(num_segments)
        self.reduction = int(reduction)
        self.revision = tdn_revision(revision)
        if self.num_segments < 1 or self.reduction < 1:
            raise ValueError(f"TemporalDifference: num_segments={num_segments} and reduction={reduction} must be >= 1.")

    def build(self, input_shape):
        c = input_shape[-1]
        r = max(c // self.reduction, 1)
        p = self.dtype_policy

        def conv(filters, kernel, name):
            return layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=name, dtype=p)

        self.squeeze = conv(r, 1, "squeeze")
        self.squeeze_bn = _bn("squeeze_bn", p)
        self.align = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="align", dtype=p)
        self.full_scale = conv(r, 3, "full_scale")
        self.full_scale_bn = _bn("full_scale_bn", p)
        self.pool = layers.AveragePooling2D(2, strides=2, name="pool", dtype=p)
        self.half_scale = conv(r, 3, "half_scale")
        self.half_scale_bn = _bn("half_scale_bn", p)
        self.expand = conv(c, 1, "expand")
        self.expand_bn = _bn("expand_bn", p)
        reduced = tuple(input_shape[:-1]) + (r,)
        self.squeeze.build(input_shape)
        for layer in (self.squeeze_bn, self.align, self.full_scale, self.full_scale_bn, self.expand):
            layer.build(reduced)
        half = self.pool.compute_output_shape(reduced)
        self.half_scale.build(half)
        self.half_scale_bn.build(half)
        self.expand_bn.build(input_shape)

    def _gate(self, d, full, training):
        half = nearest_resize(self.half_scale_bn(self.half_scale(self.pool(_at_least_2(d))), training=training), d)
        a = self.expand_bn(self.expand(d / 3.0 + half / 3.0 + full / 3.0), training=training)
        return ops.sigmoid(a) - 0.5

    def call(self, x, training=None):
        t = self.num_segments
        y = self.squeeze_bn(self.squeeze(x), training=training)
        shape = ops.shape(y)
        clips = ops.reshape(y, (-1, t) + tuple(shape[1:]))
        aligned = ops.reshape(self.align(y), (-1, t) + tuple(shape[1:]))
        zero = ops.zeros_like(clips[:, :1])
        d_fwd = ops.reshape(ops.concatenate([aligned[:, 1:] - clips[:, :-1], zero], axis=1), shape)
        d_bwd = ops.reshape(ops.concatenate([zero, aligned[:, :-1] - clips[:, 1:]], axis=1), shape)
        full_fwd = self.full_scale_bn(self.full_scale(d_fwd), training=training)
        # The 2020 code fed the forward branch's output here (see the docstring).
        full_bwd = self.full_scale_bn(self.full_scale(d_bwd if self.revision == "2021" else full_fwd), training=training)
        gate = 0.5 * self._gate(d_fwd, full_fwd, training) + 0.5 * self._gate(d_bwd, full_bwd, training)
        return x + x * gate

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_segments": self.num_segments, "reduction": self.reduction,
                "revision": self.revision}

    @classmethod
    def from_config(cls, config):
        return cls(**{"revision": "2020", **config})


@keras.saving.register_keras_serializable(package="tfvideo")
class LearnableTemporalShift(keras.layers.Layer):
    """TDN's learnable shift (the authors' `ShiftModule`, mode "shift"): a depthwise
    temporal conv of kernel 3 (zero padded at the clip ends), initialised as TSM's shift.

    Input `[B * T, H, W, C]`; `kernel` `[3, C]` weights frames t-1, t, t+1. At init the
    first C / fold_div channels read frame t+1, the next C / fold_div frame t-1, the rest t.
    """

    def __init__(self, num_segments, fold_div=8, **kwargs):
        super().__init__(**kwargs)
        self.num_segments = int(num_segments)
        self.fold_div = int(fold_div)

    def build(self, input_shape):
        c = int(input_shape[-1])
        fold = c // self.fold_div

        def shift_init(shape, dtype=None):
            k = np.zeros(shape, "float32")
            k[2, :fold] = 1.0
            k[0, fold : 2 * fold] = 1.0
            k[1, 2 * fold :] = 1.0
            return ops.convert_to_tensor(k, dtype=dtype)

        self.kernel = self.add_weight(name="kernel", shape=(3, c), initializer=shift_init)

    def call(self, x):
        shape = ops.shape(x)
        clips = ops.reshape(x, (-1, self.num_segments) + tuple(shape[1:]))
        zero = ops.zeros_like(clips[:, :1])
        before = ops.concatenate([zero, clips[:, :-1]], axis=1)
        after = ops.concatenate([clips[:, 1:], zero], axis=1)
        k = ops.cast(self.kernel, x.dtype)
        y = before * k[0] + clips * k[1] + after * k[2]
        return ops.reshape(y, shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_segments": self.num_segments, "fold_div": self.fold_div}
