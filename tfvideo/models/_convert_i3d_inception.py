"""DeepMind's kinetics-i3d TF1 checkpoints -> `tfvideo.models.I3D(backbone="inception_v1")`.

Format `kinetics_i3d`: a TF1 name-based checkpoint (read with `tf.train.load_checkpoint`)
with Sonnet variable names `RGB/inception_i3d/Conv3d_1a_7x7/conv_3d/w`,
`.../batch_norm/{beta,moving_mean,moving_variance}` (BN has no scale),
`.../Mixed_3b/Branch_1/Conv3d_0b_3x3/...` and `.../Logits/Conv3d_0c_1x1/conv_3d/{w,b}`
(`Flow/...` for the flow stream). Conv kernels are already [t, h, w, in, out].
"""

import re

import numpy as np

from tfvideo.models._convert import assign_checked, check_unused, variable_index

_SCOPE = "inception_i3d/"
_STEM = {"Conv3d_1a_7x7": "Conv2d_1a_7x7", "Conv3d_2b_1x1": "Conv2d_2b_1x1", "Conv3d_2c_3x3": "Conv2d_2c_3x3"}
_BRANCH = {("Branch_0", "Conv3d_0a_1x1"): "Branch_0_1x1", ("Branch_1", "Conv3d_0a_1x1"): "Branch_1_1x1",
           ("Branch_1", "Conv3d_0b_3x3"): "Branch_1_3x3", ("Branch_2", "Conv3d_0a_1x1"): "Branch_2_1x1",
           ("Branch_2", "Conv3d_0b_3x3"): "Branch_2_3x3", ("Branch_3", "Conv3d_0b_1x1"): "Branch_3_1x1"}
_BN = {"beta": "beta", "moving_mean": "moving_mean", "moving_variance": "moving_variance"}


def read_kinetics_i3d(path):
    """A TF1 checkpoint prefix (e.g. `data/checkpoints/rgb_imagenet/model.ckpt`) -> {name: array}."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(path)
    except Exception as e:
        raise ValueError(f"{path}: not a readable TensorFlow checkpoint ({type(e).__name__}).") from e
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def _keras_path(name):
    """Name below `inception_i3d/` -> keras variable path (or None)."""
    m = re.fullmatch(r"Logits/Conv3d_0c_1x1/conv_3d/([wb])", name)
    if m:
        return "classifier/kernel" if m.group(1) == "w" else "classifier/bias"
    parts = name.split("/")
    if len(parts) == 3 and parts[0] in _STEM:
        unit, (kind, param) = _STEM[parts[0]], parts[1:]
    elif len(parts) == 5 and parts[0].startswith("Mixed_") and tuple(parts[1:3]) in _BRANCH:
        unit, (kind, param) = f"{parts[0]}_{_BRANCH[tuple(parts[1:3])]}", parts[3:]
    else:
        return None
    if kind == "conv_3d" and param == "w":
        return f"{unit}_conv/kernel"
    if kind == "batch_norm" and param in _BN:
        return f"{unit}_bn/{_BN[param]}"
    return None


def map_kinetics_i3d(state, model):
    """{DeepMind variable name: array} -> {keras variable path of `model`: array}."""
    scopes = sorted({k[: k.index(_SCOPE)] for k in state if _SCOPE in k})
    if not scopes:
        raise ValueError(f"kinetics_i3d checkpoint: no variable under '*/{_SCOPE}' (first key: "
                         f"{next(iter(state), None)!r}).")
    if len(scopes) > 1:
        raise ValueError(f"kinetics_i3d checkpoint holds several streams {scopes}; convert one (RGB or Flow).")
    prefix = scopes[0] + _SCOPE
    inner = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    original = {k[len(prefix):]: k for k in state if k.startswith(prefix)}
    variables = variable_index(model)
    out, used = {}, set()
    for name, value in inner.items():
        path = _keras_path(name)
        if path is None or path not in variables:
            continue
        source_shape = np.shape(value)
        want = tuple(variables[path].shape)
        if path == "classifier/kernel":
            value = value.reshape(value.shape[-2:])
        elif len(want) == 1:
            value = value.reshape(-1)
        assign_checked(out, variables, path, np.asarray(value), original[name], source_shape)
        used.add(name)
    check_unused(inner, used, "kinetics_i3d", re.compile(r"^global_step$"), original)
    out.update(_input_range(scopes[0].rstrip("/"), variables))
    return out


def _input_range(stream, variables):
    """`input_range` values taking tfvideo's clips to DeepMind's input.

    RGB: their network reads RGB in [-1, 1] (2 x - 1 of [0, 1] values) and tfvideo's clips are
    (x - mean) / std with ImageNet's mean/std: 2 x - 1 = (2 std) x_normalised + (2 mean - 1).
    Flow: tfvideo's flow is already flow / bound in [-1, 1], their range (TV-L1 truncated to
    +-20, i.e. `bound=20`): identity.
    """
    from tfvideo.data._transforms import IMAGENET_MEAN, IMAGENET_STD

    if "input_range/scale" not in variables:
        return {}
    channels = int(variables["input_range/scale"].shape[0])
    if stream.split("/")[-1].lower() != "flow" and channels == 3:
        scale = 2.0 * np.asarray(IMAGENET_STD, np.float32)
        offset = 2.0 * np.asarray(IMAGENET_MEAN, np.float32) - 1.0
    else:
        scale, offset = np.ones(channels, np.float32), np.zeros(channels, np.float32)
    return {variables["input_range/scale"].path: scale, variables["input_range/offset"].path: offset}


def _register():
    from tfvideo.models._convert import register_checkpoint_format

    register_checkpoint_format(
        "kinetics_i3d", read_kinetics_i3d, map_kinetics_i3d,
        "DeepMind kinetics-i3d TF1 checkpoint prefix (RGB/inception_i3d/...); the model's input_range maps "
        "tfvideo's ImageNet-normalised clips to the [-1, 1] RGB it was trained on")


_register()
