"""2D ResNet backbones with configurable depth/width and hooks for temporal modules.

Layer names follow `keras.applications.ResNet50` (`conv1_conv`, `conv2_block1_1_conv`,
...) so ImageNet weights transfer by name. Strided convolutions pad explicitly and
symmetrically (as torchvision and keras.applications do), which keeps every padding
amount static: the I3D inflation relies on it.
"""

import keras
from keras import layers

from tfvideo.layers._batch_normalization import FusedBatchNormalization

_BLOCKS = {10: ("basic", (1, 1, 1, 1)), 18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
           50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}
_HOOK_POSITIONS = ("block_input", "after_first_conv")


def _conv_bn(x, filters, kernel, stride, name, relu=True, bias=False):
    if stride > 1 and kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    padding = "valid" if stride > 1 else "same"
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=bias, name=f"{name}_conv")(x)
    x = FusedBatchNormalization(epsilon=1e-5, momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _block(x, kind, filters, stride, name, hook, hook_position, stride_in_1x1, bias=False):
    out_filters = filters * (4 if kind == "bottleneck" else 1)
    shortcut = x
    if stride != 1 or x.shape[-1] != out_filters:
        shortcut = _conv_bn(x, out_filters, 1, stride, f"{name}_0", relu=False, bias=bias)
    y = hook(x, name) if hook and hook_position == "block_input" else x
    if kind == "bottleneck":
        y = _conv_bn(y, filters, 1, stride if stride_in_1x1 else 1, f"{name}_1", bias=bias)
        y = hook(y, name) if hook and hook_position == "after_first_conv" else y
        y = _conv_bn(y, filters, 3, 1 if stride_in_1x1 else stride, f"{name}_2", bias=bias)
        y = _conv_bn(y, out_filters, 1, 1, f"{name}_3", relu=False, bias=bias)
    else:
        y = _conv_bn(y, filters, 3, stride, f"{name}_1", bias=bias)
        y = hook(y, name) if hook and hook_position == "after_first_conv" else y
        y = _conv_bn(y, filters, 3, 1, f"{name}_2", relu=False, bias=bias)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def resnet(depth=50, width=64, input_channels=3, residual_hook=None, hook_position="block_input",
           stem_input=None, stem_fusion=None, stride_in_1x1=False, name=None):
    """A ResNet feature extractor `[N, H, W, C] -> [N, H/32, W/32, F]` (no pooling, no head).

    Args:
      depth: 10, 18, 34, 50 or 101.
      width: channels of the first stage (64 in the standard networks).
      residual_hook: `f(x, block_name) -> x` in every residual branch: at its input
        (`hook_position="block_input"`, TSM's residual shift) or after its first conv
        (`"after_first_conv"`, where TANet puts TAM).
      stem_input: `f(inputs) -> image` fed to the stem (TDN: the centre frame).
      stem_fusion: `f(inputs, stem_features) -> stem_features` before the stem pool.
      stride_in_1x1: stride the first 1x1 conv of a bottleneck (ResNet v1, as
        keras.applications) instead of the 3x3 (v1.5, torchvision; the default).
    """
    if depth not in _BLOCKS:
        raise ValueError(f"resnet: depth={depth} must be one of {sorted(_BLOCKS)}.")
    if hook_position not in _HOOK_POSITIONS:
        raise ValueError(f"resnet: hook_position={hook_position!r} must be one of {_HOOK_POSITIONS}.")
    kind, counts = _BLOCKS[depth]
    inputs = keras.Input((None, None, input_channels), name="frames")
    x = stem_input(inputs) if stem_input else inputs
    x = _conv_bn(x, width, 7, 2, "conv1")
    if stem_fusion:
        x = stem_fusion(inputs, x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, count in enumerate(counts):
        for b in range(count):
            stride = 2 if (b == 0 and stage > 0) else 1
            x = _block(x, kind, width * 2**stage, stride, f"conv{stage + 2}_block{b + 1}", residual_hook, hook_position,
                       stride_in_1x1)
    return keras.Model(inputs, x, name=name or f"resnet{depth}")
