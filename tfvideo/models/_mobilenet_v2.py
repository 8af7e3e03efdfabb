"""MobileNetV2 backbone (Sandler et al. 2018) with a hook in its residual blocks.

Layer names and hyper-parameters follow `keras.applications.MobileNetV2` so its
ImageNet weights transfer by name.
"""

import keras
from keras import layers

# (expansion t, output channels c, repeats n, first stride s) per stage.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value, divisor=8):
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


_STYLES = ("keras", "torch")


def _bn(name, style="keras"):
    if style == "torch":  # PyTorch's BatchNorm2d defaults (torchvision, MMAction2).
        return layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name)
    return layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name=name)


def _strided(x, stride, style, name):
    """Padding before a 3x3 conv: symmetric 1 for strided convs in the torch style (TF "same" pads
    (0, 1) on even sizes). Returns (x, padding of the conv)."""
    if style == "torch" and stride > 1:
        return layers.ZeroPadding2D(1, name=f"{name}_pad")(x), "valid"
    return x, "same"


def _inverted_residual(x, expansion, filters, stride, prefix, hook, style="keras"):
    in_channels = x.shape[-1]
    residual = stride == 1 and in_channels == filters
    y = hook(x, prefix.rstrip("_")) if hook and residual else x
    if expansion != 1:
        y = layers.Conv2D(expansion * in_channels, 1, use_bias=False, name=f"{prefix}expand")(y)
        y = layers.ReLU(6.0, name=f"{prefix}expand_relu")(_bn(f"{prefix}expand_BN", style)(y))
    y, padding = _strided(y, stride, style, f"{prefix}depthwise")
    y = layers.DepthwiseConv2D(3, strides=stride, padding=padding, use_bias=False, name=f"{prefix}depthwise")(y)
    y = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(_bn(f"{prefix}depthwise_BN", style)(y))
    y = layers.Conv2D(filters, 1, use_bias=False, name=f"{prefix}project")(y)
    y = _bn(f"{prefix}project_BN", style)(y)
    return layers.Add(name=f"{prefix}add")([x, y]) if residual else y


def mobilenet_v2(alpha=1.0, input_channels=3, residual_hook=None, name=None, style="keras"):
    """`[N, H, W, C] -> [N, H/32, W/32, 1280]` (width multiplier `alpha`).

    `residual_hook(x, block_name)` runs at the start of the residual branch of every
    block that has a residual connection (where TSM shifts in MobileNetV2).
    `style="keras"` is keras.applications' network (BN epsilon 1e-3, TF "same" padding);
    `"torch"` is torchvision's and MMAction2's (BN epsilon 1e-5, strided convs padded 1 on
    every side), which their checkpoints need.
    """
    if style not in _STYLES:
        raise ValueError(f"mobilenet_v2: style={style!r} must be one of {_STYLES}.")
    inputs = keras.Input((None, None, input_channels), name="frames")
    x, padding = _strided(inputs, 2, style, "Conv1")
    x = layers.Conv2D(make_divisible(32 * alpha), 3, strides=2, padding=padding, use_bias=False, name="Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(_bn("bn_Conv1", style)(x))
    block = 0
    for t, c, n, s in _SETTINGS:
        for i in range(n):
            prefix = "expanded_conv_" if block == 0 else f"block_{block}_"
            x = _inverted_residual(x, t, make_divisible(c * alpha), s if i == 0 else 1, prefix, residual_hook, style)
            block += 1
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = layers.Conv2D(last, 1, use_bias=False, name="Conv_1")(x)
    x = layers.ReLU(6.0, name="out_relu")(_bn("Conv_1_bn", style)(x))
    return keras.Model(inputs, x, name=name or "mobilenetv2")
