"""Inception backbones: BN-Inception (TSN, TRN) and Inception-v1 (the 2D parent of I3D).

BN-Inception's strided convolutions pad explicitly and symmetrically; Inception-v1's pad
TF SAME as DeepMind's I3D (the inflated conv computes the amounts, see `InflatedConv3D`).
"""

import keras
from keras import layers

# BN-Inception (Ioffe & Szegedy 2015, Fig. 5): #1x1, #3x3 reduce, #3x3, double #3x3 reduce,
# double #3x3, pool ("avg"/"max"), pool projection (0: pass through), stride.
_BN_INCEPTION = (
    ("3a", 64, 64, 64, 64, 96, "avg", 32, 1),
    ("3b", 64, 64, 96, 64, 96, "avg", 64, 1),
    ("3c", 0, 128, 160, 64, 96, "max", 0, 2),
    ("4a", 224, 64, 96, 96, 128, "avg", 128, 1),
    ("4b", 192, 96, 128, 96, 128, "avg", 128, 1),
    ("4c", 160, 128, 160, 128, 160, "avg", 128, 1),
    ("4d", 96, 128, 192, 160, 192, "avg", 128, 1),
    ("4e", 0, 128, 192, 192, 256, "max", 0, 2),
    ("5a", 352, 192, 320, 160, 224, "avg", 128, 1),
    ("5b", 352, 192, 320, 192, 224, "max", 128, 1),
)

# Inception-v1 as used by I3D (TF-slim layout: 3x3 convs in the second branch):
# #1x1, #3x3 reduce, #3x3, #"5x5" reduce, #"5x5" (a 3x3), pool projection.
_INCEPTION_V1 = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _conv_bn(x, filters, kernel, name, stride=1, epsilon=1e-5, scale=True, tf_same=False):
    """Conv (no bias) + BN + ReLU. Strided convs pad explicitly and symmetrically, or
    TF SAME (`tf_same`: (2, 3) for 7x7/2 on even sizes, as DeepMind's I3D)."""
    if stride > 1 and not tf_same:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    padding = "valid" if stride > 1 and not tf_same else "same"
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=epsilon, momentum=0.9, scale=scale, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _scaled(n, scale):
    return max(round(n * scale), 1) if n else 0


def bn_inception(width=64, input_channels=3, name=None):
    """BN-Inception `[N, H, W, C] -> [N, H/32, W/32, 1024 * width / 64]`."""
    s = width / 64
    inputs = keras.Input((None, None, input_channels), name="frames")
    x = _conv_bn(inputs, _scaled(64, s), 7, "conv1", stride=2)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = _conv_bn(x, _scaled(64, s), 1, "conv2_reduce")
    x = _conv_bn(x, _scaled(192, s), 3, "conv2")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    for tag, c1, c3r, c3, d3r, d3, pool, proj, stride in _BN_INCEPTION:
        p = f"inception_{tag}"
        branches = []
        if c1:
            branches.append(_conv_bn(x, _scaled(c1, s), 1, f"{p}_1x1"))
        b = _conv_bn(x, _scaled(c3r, s), 1, f"{p}_3x3_reduce")
        branches.append(_conv_bn(b, _scaled(c3, s), 3, f"{p}_3x3", stride=stride))
        b = _conv_bn(x, _scaled(d3r, s), 1, f"{p}_double_3x3_reduce")
        b = _conv_bn(b, _scaled(d3, s), 3, f"{p}_double_3x3_1")
        branches.append(_conv_bn(b, _scaled(d3, s), 3, f"{p}_double_3x3_2", stride=stride))
        pool_layer = layers.AveragePooling2D if pool == "avg" else layers.MaxPooling2D
        b = pool_layer(3, strides=stride, padding="same", name=f"{p}_pool")(x)
        branches.append(_conv_bn(b, _scaled(proj, s), 1, f"{p}_pool_proj") if proj else b)
        x = layers.Concatenate(name=f"{p}_output")(branches)
    return keras.Model(inputs, x, name=name or "bninception")


def inception_v1(width=64, input_channels=3, name=None):
    """Inception-v1 with BN `[N, H, W, C] -> [N, H/32, W/32, 1024 * width / 64]`.

    As DeepMind's I3D (kinetics-i3d `i3d.py`): BN without scale (Sonnet's default: offset
    only, epsilon 1e-3), every conv and pool TF SAME padded (the 7x7/2 stem pads (2, 3)).
    Layer names follow the I3D release (`Conv2d_1a_7x7`, `Mixed_3b`, ...). `MaxPool_*`
    are the pools I3D gives temporal extents to when it inflates the network.
    """
    s = width / 64
    inputs = keras.Input((None, None, input_channels), name="frames")
    x = _conv_bn(inputs, _scaled(64, s), 7, "Conv2d_1a_7x7", stride=2, epsilon=1e-3, scale=False, tf_same=True)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="MaxPool_2a_3x3")(x)
    x = _conv_bn(x, _scaled(64, s), 1, "Conv2d_2b_1x1", epsilon=1e-3, scale=False)
    x = _conv_bn(x, _scaled(192, s), 3, "Conv2d_2c_3x3", epsilon=1e-3, scale=False)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="MaxPool_3a_3x3")(x)
    for mixed, (c1, c3r, c3, c5r, c5, proj) in _INCEPTION_V1.items():
        if mixed == "Mixed_4b":
            x = layers.MaxPooling2D(3, strides=2, padding="same", name="MaxPool_4a_3x3")(x)
        if mixed == "Mixed_5b":
            x = layers.MaxPooling2D(2, strides=2, padding="same", name="MaxPool_5a_2x2")(x)
        b0 = _conv_bn(x, _scaled(c1, s), 1, f"{mixed}_Branch_0_1x1", epsilon=1e-3, scale=False)
        b1 = _conv_bn(x, _scaled(c3r, s), 1, f"{mixed}_Branch_1_1x1", epsilon=1e-3, scale=False)
        b1 = _conv_bn(b1, _scaled(c3, s), 3, f"{mixed}_Branch_1_3x3", epsilon=1e-3, scale=False)
        b2 = _conv_bn(x, _scaled(c5r, s), 1, f"{mixed}_Branch_2_1x1", epsilon=1e-3, scale=False)
        b2 = _conv_bn(b2, _scaled(c5, s), 3, f"{mixed}_Branch_2_3x3", epsilon=1e-3, scale=False)
        b3 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{mixed}_Branch_3_pool")(x)
        b3 = _conv_bn(b3, _scaled(proj, s), 1, f"{mixed}_Branch_3_1x1", epsilon=1e-3, scale=False)
        x = layers.Concatenate(name=f"{mixed}_concat")([b0, b1, b2, b3])
    return keras.Model(inputs, x, name=name or "inception_v1")
