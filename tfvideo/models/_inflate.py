"""Inflating a 2D Keras model into a 3D one (I3D, Carreira & Zisserman 2017).

Every k x k kernel becomes t x k x k: the 2D weights are repeated t times along time
and divided by t, so a "boring video" (one frame repeated) gives the 2D network's
activations at every time step. BatchNorm, Dense and shape-agnostic layers are copied.
"""

import keras
import numpy as np
from keras import layers, ops

from tfvideo.api._export import tf_export

_TIME_PADDING = ("zeros", "replicate", "symmetric")


def _same_padding(size, kernel, stride):
    """TensorFlow "same" padding (before, after) for a static `size`."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@tf_export("tfvideo.models.InflatedConv3D")
@keras.saving.register_keras_serializable(package="tfvideo")
class InflatedConv3D(keras.layers.Conv3D):
    """A Conv3D whose time and space padding are explicit.

    Time is padded "same" with zeros (as I3D) or by repeating the end frames
    (`time_padding="replicate"`, which keeps a boring video boring at the clip ends
    too); `time_padding="symmetric"` pads `(kt - 1) // 2` zeros at both ends also for time
    strides > 1 (PyTorch's Conv3d padding, as MMAction2's I3D ResNet). Space follows
    `spatial_padding`: "same" is TensorFlow's SAME (with stride 2 a 7x7 kernel pads (2, 3)
    on even sizes, as DeepMind's I3D), "valid" none (the I3D ResNets pad their strided
    layers explicitly before them, as PyTorch). Needs a static number of frames when the
    time stride is > 1.
    """

    def __init__(self, filters, kernel_size, spatial_padding="valid", time_padding="zeros", **kwargs):
        kwargs["padding"] = "valid"
        super().__init__(filters, kernel_size, **kwargs)
        if time_padding not in _TIME_PADDING:
            raise ValueError(f"InflatedConv3D: time_padding={time_padding!r} must be one of {_TIME_PADDING}.")
        if spatial_padding not in ("same", "valid"):
            raise ValueError(f"InflatedConv3D: spatial_padding={spatial_padding!r} must be 'same' or 'valid'.")
        self.spatial_padding = spatial_padding
        self.time_padding = time_padding

    def _pads(self, input_shape):
        kt, kh, kw = self.kernel_size
        st = self.strides[0]
        if st == 1:
            t_pad = ((kt - 1) // 2, kt - 1 - (kt - 1) // 2)
        elif self.time_padding == "symmetric":  # PyTorch's padding=(kt - 1) // 2 on both ends (MMAction2's I3D).
            t_pad = ((kt - 1) // 2, (kt - 1) // 2)
        elif input_shape[1] is None:
            raise ValueError(f"InflatedConv3D {self.name}: time stride {st} needs a static number of frames, "
                             f"got input shape {input_shape}.")
        else:
            t_pad = _same_padding(input_shape[1], kt, st)
        if self.spatial_padding == "same":
            h_pad, w_pad = (self._same(input_shape[axis], k, s)
                            for axis, k, s in ((2, kh, self.strides[1]), (3, kw, self.strides[2])))
        else:
            h_pad = w_pad = (0, 0)
        return t_pad, h_pad, w_pad

    @staticmethod
    def _same(size, kernel, stride):
        """TF SAME (before, after); None when it depends on a size unknown until call time."""
        if stride == 1:
            return (kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2
        return None if size is None else _same_padding(size, kernel, stride)

    def _dynamic_same(self, x, axis):
        n = ops.shape(x)[axis]
        k, s = self.kernel_size[axis - 1], self.strides[axis - 1]
        total = ops.maximum(((n + s - 1) // s - 1) * s + k - n, 0)
        return total // 2, total - total // 2

    def _pad(self, x):
        (t0, t1), h_pad, w_pad = self._pads(x.shape)
        h_pad = self._dynamic_same(x, 2) if h_pad is None else h_pad
        w_pad = self._dynamic_same(x, 3) if w_pad is None else w_pad
        if self.time_padding == "replicate" and (t0 or t1):
            parts = [ops.repeat(x[:, :1], t0, axis=1)] if t0 else []
            parts.append(x)
            if t1:
                parts.append(ops.repeat(x[:, -1:], t1, axis=1))
            x = ops.concatenate(parts, axis=1)
            t0 = t1 = 0
        static = all(isinstance(p, int) for p in h_pad + w_pad)
        if t0 or t1 or not static or any(h_pad) or any(w_pad):
            x = ops.pad(x, [(0, 0), (t0, t1), h_pad, w_pad, (0, 0)])
        return x

    def call(self, inputs):
        return super().call(self._pad(inputs))

    def compute_output_shape(self, input_shape):
        pads = self._pads(input_shape)
        shape = list(input_shape)
        for axis, pad in zip((1, 2, 3), pads):
            if shape[axis] is not None and pad is not None:
                shape[axis] += pad[0] + pad[1]
        return super().compute_output_shape(tuple(shape))

    def get_config(self):
        config = super().get_config()
        config.pop("padding", None)
        return {**config, "spatial_padding": self.spatial_padding, "time_padding": self.time_padding}


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _inflate_layer(layer, time_kernels, time_strides, time_padding):
    """A 3D counterpart of a 2D layer (weights copied later), or None to reuse its config."""
    name = layer.name
    cfg = layer.get_config()
    if isinstance(layer, layers.DepthwiseConv2D):
        raise TypeError(f"inflate: depthwise layer {name!r} is not supported.")
    if isinstance(layer, layers.Conv2D):
        k = _pair(cfg["kernel_size"])
        t = time_kernels.get(name, k[0])
        s = _pair(cfg["strides"])
        if tuple(_pair(cfg["dilation_rate"])) != (1, 1) or cfg.get("groups", 1) != 1:
            raise ValueError(f"inflate: conv {name!r} uses dilation or groups, which inflation does not support.")
        return InflatedConv3D(cfg["filters"], (t,) + k, strides=(time_strides.get(name, 1),) + s,
                              spatial_padding=cfg["padding"], time_padding=time_padding, use_bias=cfg["use_bias"],
                              activation=cfg["activation"], name=name, dtype=layer.dtype_policy)
    if isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
        cls = layers.MaxPooling3D if isinstance(layer, layers.MaxPooling2D) else layers.AveragePooling3D
        p, s = _pair(cfg["pool_size"]), _pair(cfg["strides"] or cfg["pool_size"])
        return cls((time_kernels.get(name, 1),) + p, strides=(time_strides.get(name, 1),) + s, padding=cfg["padding"],
                   name=name, dtype=layer.dtype_policy)
    if isinstance(layer, layers.ZeroPadding2D):
        return layers.ZeroPadding3D(((0, 0),) + tuple(tuple(p) for p in cfg["padding"]), name=name,
                                    dtype=layer.dtype_policy)
    if isinstance(layer, layers.GlobalAveragePooling2D):
        return layers.GlobalAveragePooling3D(keepdims=cfg.get("keepdims", False), name=name, dtype=layer.dtype_policy)
    if isinstance(layer, layers.GlobalMaxPooling2D):
        return layers.GlobalMaxPooling3D(keepdims=cfg.get("keepdims", False), name=name, dtype=layer.dtype_policy)
    if isinstance(layer, (layers.BatchNormalization, layers.Dense, layers.ReLU, layers.Activation, layers.Add,
                          layers.Concatenate, layers.Dropout, layers.Multiply)):
        return layer.__class__.from_config(cfg)
    if layer.weights:
        raise ValueError(f"inflate: layer {name!r} ({type(layer).__name__}) has weights and no 3D counterpart.")
    return layer.__class__.from_config(cfg)


@tf_export("tfvideo.models.inflate")
def inflate(model, num_frames=None, time_kernels=None, time_strides=None, time_padding="zeros", after_layer=None,
            copy_weights=True, name=None):
    """Inflates a functional 2D model `[N, H, W, C] -> ...` into `[N, T, H, W, C] -> ...`.

    Args:
      model: a functional keras.Model of 2D layers (Conv2D, BN, pools, padding, Dense, ...).
      num_frames: static T of the 3D input (needed when a conv has a time stride > 1).
      time_kernels: layer name -> temporal extent t. Default: a conv's spatial kernel
        size (k x k -> k x k x k), 1 for pools.
      time_strides: layer name -> temporal stride (default 1).
      time_padding: "zeros" (I3D), "replicate" or "symmetric" (see `InflatedConv3D`).
      after_layer: optional `f(layer_name, tensor) -> tensor` applied to every inflated
        layer's output (to insert non-local blocks, for example).
      copy_weights: inflate the 2D weights (False keeps the 3D layers' own random
        initialization: inflated random kernels would be symmetric in time).

    Returns:
      The 3D keras.Model. Conv kernels are the 2D kernels repeated t times along time
      and divided by t; other weights are copied unchanged.
    """
    time_kernels, time_strides = dict(time_kernels or {}), dict(time_strides or {})
    unknown = (set(time_kernels) | set(time_strides)) - {layer.name for layer in model.layers}
    if unknown:
        raise ValueError(f"inflate: time_kernels/time_strides name unknown layers {sorted(unknown)} of {model.name!r}.")
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ValueError(f"inflate: {model.name!r} must take one [N, H, W, C] input, got {model.inputs}.")
    pairs = []

    def clone(layer):
        new = _inflate_layer(layer, time_kernels, time_strides, time_padding)
        pairs.append((layer, new))
        return new

    def call(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        return after_layer(layer.name, out) if after_layer else out

    h, w, c = model.inputs[0].shape[1:]
    inputs = keras.Input((num_frames, h, w, c), name=model.inputs[0].name)
    inflated = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone, call_function=call)
    if copy_weights:
        copy_inflated_weights(model, inflated, [new.name for old, new in pairs if old.weights])
    if name:
        inflated.name = name
    return inflated


@tf_export("tfvideo.models.copy_inflated_weights")
def copy_inflated_weights(model_2d, model_3d, layer_names=None):
    """Copies a 2D model's weights into its inflation, matching layers by name.

    `InflatedConv3D` kernels get the 2D kernel repeated t times along time and divided
    by t; other layers (BN, Dense) are copied. Use it to start an I3D from ImageNet
    weights loaded into the 2D backbone. Returns the number of layers copied.
    """
    source = {layer.name: layer for layer in model_2d.layers if layer.weights}
    targets = {layer.name: layer for layer in model_3d.layers if layer.weights}
    names = layer_names if layer_names is not None else [n for n in source if n in targets]
    missing = [n for n in names if n not in source or n not in targets]
    if missing:
        raise ValueError(f"copy_inflated_weights: layers {missing} are not in both {model_2d.name!r} and {model_3d.name!r}.")
    for n in names:
        values = [np.asarray(keras.ops.convert_to_numpy(v)) for v in source[n].weights]
        new = targets[n]
        if isinstance(new, InflatedConv3D):
            t = new.kernel_size[0]
            values[0] = np.repeat(values[0][None], t, axis=0) / t
        new.set_weights(values)
    return len(names)
