"""2D ResNet backbones with configurable depth/width and hooks for temporal modules."""

import keras
from keras import layers

_BLOCKS = {10: ("basic", (1, 1, 1, 1)), 18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
           50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}


def _conv_bn(x, filters, kernel, stride, name, relu=True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _block(x, kind, filters, stride, name, residual_hook):
    out_filters = filters * (4 if kind == "bottleneck" else 1)
    shortcut = x
    if stride != 1 or x.shape[-1] != out_filters:
        shortcut = _conv_bn(x, out_filters, 1, stride, f"{name}_shortcut", relu=False)
    y = residual_hook(x, name) if residual_hook else x
    if kind == "bottleneck":
        y = _conv_bn(y, filters, 1, 1, f"{name}_1")
        y = _conv_bn(y, filters, 3, stride, f"{name}_2")
        y = _conv_bn(y, out_filters, 1, 1, f"{name}_3", relu=False)
    else:
        y = _conv_bn(y, filters, 3, stride, f"{name}_1")
        y = _conv_bn(y, filters, 3, 1, f"{name}_2", relu=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def resnet(depth=50, width=64, input_channels=3, residual_hook=None, name=None):
    """A ResNet feature extractor `[N, H, W, C] -> [N, h, w, F]` (no pooling, no head).

    Args:
      depth: 10, 18, 34, 50 or 101.
      width: channels of the first stage (64 in the standard networks).
      residual_hook: `f(x, block_name) -> x` applied at the start of every residual
        branch (TSM puts its temporal shift there: the "residual shift" placement).
    """
    if depth not in _BLOCKS:
        raise ValueError(f"resnet: depth={depth} must be one of {sorted(_BLOCKS)}.")
    kind, counts = _BLOCKS[depth]
    inputs = keras.Input((None, None, input_channels), name="frames")
    x = _conv_bn(inputs, width, 7, 2, "stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, count in enumerate(counts):
        for b in range(count):
            stride = 2 if (b == 0 and stage > 0) else 1
            x = _block(x, kind, width * 2**stage, stride, f"stage{stage + 1}_block{b + 1}", residual_hook)
    return keras.Model(inputs, x, name=name or f"resnet{depth}")
