"""TDN's backbone (Wang et al. CVPR 2021) as in the authors' code (MCG-NJU/TDN, ops/tdn_net.py).

A ResNet with conv biases (their `FBResNet`, stride in the 3x3) reads the centre frame of
each segment. The short-term module (S-TDM) turns the segment's frame differences into
stem features, fused into the RGB stem after its max pool; a second copy of the first
residual stage runs on them and is fused after the RGB first stage. Every residual block
of stages 3-5 carries the long-term module (L-TDM) then a learnable temporal shift after
its first conv. Fusions weigh RGB/difference 0.5/0.5 for 8 segments, 0.75/0.25 otherwise.
The long-term module follows the authors' current code (bcf28d9, "2021") unless
`revision="2020"` (their December 2020 release; see `TemporalDifference`).
"""

import keras
from keras import layers

from tfvideo.layers._temporal_difference import (
    DifferenceFusion,
    LearnableTemporalShift,
    ShortTermDifference,
    TemporalDifference,
)
from tfvideo.models import _resnet


@keras.saving.register_keras_serializable(package="tfvideo")
class SelectFrame(keras.layers.Layer):
    """`[N, H, W, L * C]` stacked frames -> frame `index` `[N, H, W, C]`."""

    def __init__(self, index, channels=3, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)
        self.channels = int(channels)

    def call(self, x):
        return x[..., self.index * self.channels : (self.index + 1) * self.channels]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.channels,)

    def get_config(self):
        return {**super().get_config(), "index": self.index, "channels": self.channels}


def fusion_weights(num_segments):
    """(RGB, difference) weights of the S-TDM fusions: the authors' rule."""
    return (0.5, 0.5) if num_segments == 8 else (0.75, 0.25)


def tdn_resnet(depth, width, num_segments, frames_per_segment, channels=3, name=None, revision="2021"):
    """TDN feature extractor `[B * T, H, W, L * C] -> [B * T, H/32, W/32, F]`.

    `frames_per_segment` L = 1 leaves out the short-term module (L-TDM only). `revision`:
    the authors' code the long-term modules follow ("2021" or "2020", `TemporalDifference`).
    """
    if depth not in _resnet._BLOCKS:
        raise ValueError(f"TDN: depth={depth} must be one of {sorted(_resnet._BLOCKS)}.")
    kind, counts = _resnet._BLOCKS[depth]
    lps = int(frames_per_segment)
    inputs = keras.Input((None, None, lps * channels), name="frames")
    x = SelectFrame(lps // 2, channels, name="centre_frame")(inputs) if lps > 1 else inputs
    x = _resnet._conv_bn(x, width, 7, 2, "conv1", bias=True)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    alpha, beta = fusion_weights(num_segments)
    diff = None
    if lps > 1:
        diff = ShortTermDifference(lps, channels, width, name="stdm")(inputs)
        x = DifferenceFusion(alpha, beta, name="stdm_fusion_stem")([x, diff])

    def long_term(y, block):
        y = TemporalDifference(num_segments, revision=revision, name=f"{block}_ltdm")(y)
        return LearnableTemporalShift(num_segments, name=f"{block}_shift")(y)

    for stage, count in enumerate(counts):
        for b in range(count):
            stride = 2 if (b == 0 and stage > 0) else 1
            x = _resnet._block(x, kind, width * 2**stage, stride, f"conv{stage + 2}_block{b + 1}",
                               long_term if stage > 0 else None, "after_first_conv", False, bias=True)
        if stage == 0 and diff is not None:
            for b in range(count):
                diff = _resnet._block(diff, kind, width, 1, f"stdm_conv2_block{b + 1}", None, "block_input", False,
                                      bias=True)
            x = DifferenceFusion(alpha, beta, name="stdm_fusion_conv2")([x, diff])
    return keras.Model(inputs, x, name=name or f"tdn_resnet{depth}")
