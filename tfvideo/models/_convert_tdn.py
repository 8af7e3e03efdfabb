"""The TDN authors' checkpoints (MCG-NJU/TDN) -> `tfvideo.models.TDN` weights.

Format `tdn`: a `torch.save` of `{"state_dict": ...}` (or a bare state_dict) of their `TSN`
wrapper, keys `module.base_model.<TDN_Net>` and `module.new_fc`. `read_tdn` returns
NumPy arrays; `map_tdn` returns {keras variable path: array in the variable's layout}.
The key-walking helpers it shares with the other mappers live in `tfvideo.models._convert`.

The model's `tdn_revision` decides which of the authors' networks the weights fill: "2021"
(their code since commit bcf28d9, behind the model zoo they have linked since 2021-03-05;
the default) or "2020" (their December 2020 release). The 2020 code registered the stem copy
twice (`conv1_temp` and `conv1_temp1`), so its checkpoints hold `conv1_temp1.*` keys that the
2021 code's do not: `map_tdn` warns when such a checkpoint fills a "2021" model.
"""

import re

import numpy as np
from absl import logging

from tfvideo.models._convert import (
    assign_checked,
    check_unused,
    conv_kernel,
    read_torch_checkpoint,
    strip_prefixes,
    variable_index,
)

# Registered by the authors' network but unused by its forward pass: a copy of the stem.
_TDN_UNUSED = re.compile(r"^conv1_temp1?\.")
_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def _keras_name(key):
    """TDN key (prefixes stripped) -> (keras layer path, torch parameter name) or None."""
    head, _, param = key.rpartition(".")
    m = re.fullmatch(r"(layer(\d)_bak|resnext_layer1)\.(\d+)\.(.+)", head)
    if m:
        stage = int(m.group(2)) + 1 if m.group(2) else 2
        block = f"{'stdm_' if m.group(1) == 'resnext_layer1' else ''}conv{stage}_block{int(m.group(3)) + 1}"
        rest = m.group(4)
        mse = {"mse.conv1": "squeeze", "mse.bn1": "squeeze_bn", "mse.conv2": "align", "mse.conv3": "expand",
               "mse.bn3": "expand_bn", "mse.conv3_smallscale4": "full_scale", "mse.bn3_smallscale4": "full_scale_bn",
               "mse.conv3_smallscale2": "half_scale", "mse.bn3_smallscale2": "half_scale_bn",
               "shift.conv": "kernel"}
        if rest in mse:
            return (f"{block}_shift" if rest == "shift.conv" else f"{block}_ltdm/{mse[rest]}"), param
        unit = {"downsample.0": "0_conv", "downsample.1": "0_bn"}.get(rest)
        if unit is None and re.fullmatch(r"(conv|bn)[123]", rest):
            unit = f"{rest[-1]}_{rest[:-1]}"
        return (f"{block}_{unit}", param) if unit else None
    plain = {"conv1": "conv1_conv", "bn1": "conv1_bn", "conv1_5.0": "stdm/conv", "conv1_5.1": "stdm/bn",
             "new_fc": "classifier", "fc": "classifier"}
    return (plain[head], param) if head in plain else None


def read_tdn(path):
    """The TDN authors' `.pth.tar` -> {key: np.ndarray}."""
    return read_torch_checkpoint(path)


def map_tdn(state, model):
    """{TDN authors' key: array} -> {keras variable path of `model` (a `tfvideo.models.TDN`): array}."""
    state, original = strip_prefixes(state, ("module.", "base_model."))
    variables = variable_index(model)
    out, used = {}, set()
    for key, value in state.items():
        source_shape = np.shape(value)
        if key.endswith("num_batches_tracked") or _TDN_UNUSED.search(key):
            continue
        named = _keras_name(key)
        if named is None:
            continue
        layer, param = named
        if layer.endswith("_shift"):
            path, value = f"{layer}/kernel", np.transpose(value[:, 0, :])
        elif layer.endswith("/align"):
            path, value = f"{layer}/kernel", np.transpose(value, (2, 3, 0, 1))
        elif layer == "classifier":
            path, value = f"classifier/{'kernel' if param == 'weight' else 'bias'}", (
                value.T if param == "weight" else value)
        elif param in _BN and ("bn" in layer.rsplit("/", 1)[-1] or layer.endswith("/bn")):
            path = f"{layer}/{_BN[param]}"
        elif param == "weight":
            path, value = f"{layer}/kernel", conv_kernel(value)
        else:
            path = f"{layer}/bias"
        if path not in variables:
            continue
        assign_checked(out, variables, path, value, original[key], source_shape)
        used.add(key)
    check_unused(state, used, "tdn", _TDN_UNUSED, original)
    if getattr(model, "tdn_revision", None) == "2021" and any(k.startswith("conv1_temp1.") for k in state):
        logging.warning("tdn: the checkpoint holds conv1_temp1.* keys, which only the authors' December 2020 "
                        "code writes; if it was trained with that code, convert with --tdn_revision=2020 "
                        "(TDN(revision='2020')): its long-term modules differ.")
    return out


def _register():
    from tfvideo.models._convert import register_checkpoint_format

    register_checkpoint_format("tdn", read_tdn, map_tdn, "TDN authors' checkpoint (MCG-NJU/TDN, module.base_model.*)")


_register()
