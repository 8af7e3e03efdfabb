"""Checkpoint formats of the ResNet family: torchvision, MMAction2 1.x, the TSM authors'.

All three name a ResNet the torchvision way (`layer{1-4}.{block}.conv{1-3}`, a
`downsample` shortcut); they differ in the prefixes, in how a BatchNorm is named next
to its conv, and in the head:

  torchvision  conv1.weight, bn1.*, layer1.0.conv1.weight, layer1.0.bn1.*,
               layer1.0.downsample.{0,1}.*, fc.*
  mmaction2    backbone.conv1.{conv,bn}.*, backbone.layer1.0.conv1.{conv,bn}.*
               (TSM wraps the shifted conv: conv1.conv.net.weight),
               backbone.layer1.0.downsample.{conv,bn}.*, cls_head.fc_cls.*,
               I3D non-local: backbone.layer2.1.non_local_block.{theta,phi,g,conv_out}.*
  tsm          module.base_model.<torchvision names> (shifted convs: conv1.net.weight),
               module.new_fc.* (module.base_model.fc.* when trained without dropout)

Keras layers are named as in `tfvideo.models._resnet`: conv1_conv/conv1_bn and
conv{stage + 1}_block{block + 1}_{i}_{conv,bn} (i = 0: the shortcut).
"""

import re

import numpy as np

from tfvideo.models._convert import (
    CheckpointError,
    conv_kernel,
    dense_kernel,
    read_torch_checkpoint,
    register_checkpoint_format,
)

_LAYER = re.compile(r"conv(\d)_block(\d+)_(\d)_(conv|bn)$")


def _torch_module(name):
    """Keras layer name -> (torch module path, "conv" | "bn", index of the conv in its block) or None."""
    if name in ("conv1_conv", "conv1_bn"):
        return "conv1", ("conv" if name.endswith("_conv") else "bn"), 1
    match = _LAYER.match(name)
    if not match:
        return None
    stage, block, i, kind = int(match[1]), int(match[2]), int(match[3]), match[4]
    base = f"layer{stage - 1}.{block - 1}"
    return (f"{base}.downsample" if i == 0 else f"{base}.conv{i}"), kind, i


def _first(state, candidates):
    for key in candidates:
        if key in state:
            return state[key]
    return None


def _bn_values(state, prefix, layer):
    if isinstance(prefix, (list, tuple)):  # Candidates: the first present.
        prefix = next((p for p in prefix if f"{p}.weight" in state), prefix[0])
    out = {}
    for ours, theirs in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                         ("moving_variance", "running_var")):
        if f"{prefix}.{theirs}" in state:
            out[getattr(layer, ours).path] = state[f"{prefix}.{theirs}"]
    return out


def map_resnet_backbone(state, backbone, conv_keys, bn_prefix, prefix=""):
    """The mapping of a (2D or inflated 3D) ResNet backbone.

    conv_keys(module, kind_index) -> candidate keys of the conv weight;
    bn_prefix(module, index) -> the prefix of its BatchNorm's entries;
    prefix: maps only the layers named `prefix + <ResNet layer name>` (a copy of a stage).
    """
    out = {}
    for layer in backbone.layers:
        if not layer.name.startswith(prefix):
            continue
        found = _torch_module(layer.name[len(prefix):])
        if found is None:
            continue
        module, kind, index = found
        if kind == "conv":
            weight = _first(state, conv_keys(module, index))
            if weight is not None:
                out[layer.kernel.path] = conv_kernel(weight)
        else:
            out.update(_bn_values(state, bn_prefix(module, index), layer))
    return out


def map_dense(state, layer, prefixes):
    """A Dense layer from the first `{prefix}.weight/bias` present."""
    for prefix in prefixes:
        if f"{prefix}.weight" in state:
            out = {layer.kernel.path: dense_kernel(state[f"{prefix}.weight"])}
            if f"{prefix}.bias" in state and layer.use_bias:
                out[layer.bias.path] = state[f"{prefix}.bias"]
            return out
    return {}


def _check_backbone(model, fmt, mobilenet=False):
    name = str(getattr(model, "backbone_name", ""))
    if mobilenet and name == "mobilenetv2":
        if getattr(model, "backbone_style", "keras") != "torch":
            raise CheckpointError(f"the {fmt!r} format's MobileNetV2 needs backbone_style='torch' (PyTorch's BN "
                                  f"epsilon and padding); {model.name!r} has {model.backbone_style!r}.")
        return
    if not name.startswith("resnet"):
        raise CheckpointError(f"the {fmt!r} format converts ResNet{' and MobileNetV2' if mobilenet else ''} models; "
                              f"{model.name!r} has backbone {name!r}.")


# ---------------------------------------------------------------- torchvision


def _torchvision_conv(module, index):
    return [f"{module}.0.weight"] if module.endswith("downsample") else [f"{module}.weight"]


def _torchvision_bn(module, index):
    if module.endswith("downsample"):
        return f"{module}.1"
    if module == "conv1":
        return "bn1"
    return module.rsplit(".conv", 1)[0] + f".bn{index}"


def map_torchvision(state, model):
    """torchvision ResNet state_dict -> a tfvideo ResNet model (2D recognizer, or I3D by inflation).

    The fc layer fills the classifier (a 1-segment TSN with 1000 classes is then exactly
    torchvision's ResNet); into an I3D the 2D kernels are inflated (repeated over time,
    divided by its extent). Into a TDN, the short-term path is initialised as the authors
    do (`_tdn_short_term`).
    """
    _check_backbone(model, "torchvision")
    out = map_resnet_backbone(state, model.backbone, _torchvision_conv, _torchvision_bn)
    if getattr(model, "temporal_module", None) == "tdn":
        out.update(_tdn_short_term(state, model.backbone))
    for path, value in list(out.items()):
        want = _variable_shape(model, path)
        if value.ndim == 4 and want is not None and len(want) == 5:
            out[path] = _inflate(value, want[0])
    classifier = getattr(model, "classifier", None)
    if classifier is not None and getattr(model, "head", "consensus") == "consensus":
        out.update(map_dense(state, classifier, ["fc"]))
    return out


def _tdn_short_term(state, backbone):
    """TDN's short-term path from ImageNet weights, as the authors' `tdn_net` builds it from a
    second ImageNet ResNet (MCG-NJU/TDN ops/tdn_net.py): its copy of the first stage
    (`stdm_conv2_block*`, their `resnext_layer1`) takes `layer1`'s weights like the RGB path's,
    and the difference stem's conv (`stdm/conv`, their `conv1_5`) takes `conv1`'s kernel averaged
    over RGB, repeated for each of the stacked difference channels. The stem's BatchNorm stays
    freshly initialised (theirs too). Without the short-term module (1 frame a segment): {}.
    """
    if "stdm" not in {layer.name for layer in backbone.layers} or "conv1.weight" not in state:
        return {}
    out = map_resnet_backbone(state, backbone, _torchvision_conv, _torchvision_bn, prefix="stdm_")
    conv = backbone.get_layer("stdm").conv
    stem = state["conv1.weight"]  # [64, 3, 7, 7]
    repeated = np.repeat(stem.mean(axis=1, keepdims=True), conv.kernel.shape[-2], axis=1)
    out[conv.kernel.path] = conv_kernel(repeated)
    return out


def _variable_shape(model, path):
    for v in model.weights:
        if v.path == path:
            return tuple(v.shape)
    return None


def _inflate(kernel, t):
    return kernel[None].repeat(t, axis=0) / t


# ---------------------------------------------------------------- mmaction2


def _mm_modules(module):
    """`layer1.0.conv1` -> its names in ResNet/ResNetTSM/ResNet3d and in TANet (`layer1.0.block.conv1`)."""
    if module == "conv1":
        return ["backbone.conv1"]
    block, _, rest = module.rpartition(".")
    return [f"backbone.{module}", f"backbone.{block}.block.{rest}"]


def _mm_conv(module, index):
    return [f"{m}.conv{net}.weight" for m in _mm_modules(module) for net in ("", ".net")]


def _mm_bn(module, index):
    return [f"{m}.bn" for m in _mm_modules(module)]


def map_mmaction2(state, model):
    """MMAction2 1.x recognizer state_dict (`backbone.*`, `cls_head.*`) -> a tfvideo model.

    Covers MMAction2's ResNet (TSN), ResNetTSM (TSM), TANet (TAM blocks) and ResNet3d
    (I3D, with NonLocal3d blocks) backbones, the TSN/TSM/I3D heads (`cls_head.fc_cls`)
    and TRNHead (`fc_cls` to the relation features, multi-scale `consensus`).
    """
    _check_backbone(model, "mmaction2", mobilenet=True)
    if model.backbone_name == "mobilenetv2":
        out = _map_mm_mobilenet_v2(state, model.backbone)
        out.update(map_dense(state, model.classifier, ["cls_head.fc_cls"]))
        return out
    out = map_resnet_backbone(state, model.backbone, _mm_conv, _mm_bn)
    out.update(_map_mm_non_local(state, model.backbone))
    out.update(_map_mm_tam(state, model.backbone))
    out.update(map_dense(state, model.classifier, ["cls_head.fc_cls"]))
    if getattr(model, "head", None) == "relation":
        out.update(_map_mm_relation(state, model.consensus))
    return out


_MOBILENET_REPEATS = (1, 2, 3, 4, 3, 3, 1)  # Blocks per stage (MobileNetV2's n).


def _map_mm_mobilenet_v2(state, backbone):
    """MMAction2's MobileNetV2 (and MobileNetV2TSM, whose shifted ConvModules are `conv.0.net`):
    conv1, layer{stage}.{i}.conv.{k} (expand, depthwise, project; no expand in the first block),
    conv2 -> keras.applications-named layers."""
    torch_names = {"Conv1": "backbone.conv1", "Conv_1": "backbone.conv2"}
    block = 0
    for stage, repeats in enumerate(_MOBILENET_REPEATS):
        for i in range(repeats):
            prefix = "expanded_conv_" if block == 0 else f"block_{block}_"
            parts = ("depthwise", "project") if block == 0 else ("expand", "depthwise", "project")
            for k, part in enumerate(parts):
                torch_names[f"{prefix}{part}"] = f"backbone.layer{stage + 1}.{i}.conv.{k}"
            block += 1
    bn_names = {"bn_Conv1": "Conv1", "Conv_1_bn": "Conv_1"}
    out = {}
    for layer in backbone.layers:
        conv = bn_names.get(layer.name, layer.name[: -len("_BN")] if layer.name.endswith("_BN") else None)
        if conv in torch_names and conv != layer.name:
            module = torch_names[conv]
            out.update(_bn_values(state, [f"{module}.bn", f"{module}.net.bn"], layer))
        elif layer.name in torch_names:
            module = torch_names[layer.name]
            weight = _first(state, [f"{module}.conv.weight", f"{module}.net.conv.weight"])
            if weight is None:
                continue
            if layer.name.endswith("depthwise"):  # [C, 1, 3, 3] -> [3, 3, C, 1]
                out[layer.kernel.path] = weight.transpose(2, 3, 0, 1)
            else:
                out[layer.kernel.path] = conv_kernel(weight)
    return out


def _mm_overrides(defaults):
    """MMAction2's MobileNetV2 is PyTorch's (BN epsilon 1e-5, symmetric padding)."""
    return {"backbone_style": "torch"} if defaults.get("backbone") == "mobilenetv2" else {}


_TAM = re.compile(r"conv(\d)_block(\d+)_tam$")


def _map_mm_tam(state, backbone):
    """MMAction2's TAM: G = Linear(T, aT) BN1d ReLU Linear(aT, K) Softmax; L = Conv1d(C, C/b, 3) BN1d
    ReLU Conv1d(C/b, C, 1) Sigmoid."""
    out = {}
    for layer in backbone.layers:
        match = _TAM.match(layer.name)
        if not match:
            continue
        prefix = f"backbone.layer{int(match[1]) - 1}.{int(match[2]) - 1}.tam"
        if f"{prefix}.G.0.weight" not in state:
            continue
        out[layer.global_hidden.kernel.path] = dense_kernel(state[f"{prefix}.G.0.weight"])
        out.update(_bn_values(state, f"{prefix}.G.1", layer.global_bn))
        out[layer.global_out.kernel.path] = dense_kernel(state[f"{prefix}.G.3.weight"])
        out[layer.local_conv.kernel.path] = state[f"{prefix}.L.0.weight"].transpose(2, 1, 0)
        out.update(_bn_values(state, f"{prefix}.L.1", layer.local_bn))
        out[layer.local_out.kernel.path] = state[f"{prefix}.L.3.weight"].transpose(2, 1, 0)
    return out


def _map_mm_relation(state, relation):
    """TRNHead's RelationModuleMultiScale: fc_fusion_scales[i] (ReLU, Linear, ReLU, Linear) is
    the MLP of scale T - i."""
    out = {}
    for i, scale in enumerate(relation._scale_list):
        index = relation.num_segments - scale
        out.update(map_dense(state, relation.hidden[i], [f"cls_head.consensus.fc_fusion_scales.{index}.1"]))
        out.update(map_dense(state, relation.out[i], [f"cls_head.consensus.fc_fusion_scales.{index}.3"]))
    return out


_NON_LOCAL = re.compile(r"conv(\d)_block(\d+)_out_non_local$")


def _map_mm_non_local(state, backbone):
    """NonLocal3d (ConvModules theta/phi/g with bias, conv_out without bias + BN)."""
    out = {}
    for layer in backbone.layers:
        match = _NON_LOCAL.match(layer.name)
        if not match:
            continue
        prefix = f"backbone.layer{int(match[1]) - 1}.{int(match[2]) - 1}.non_local_block"
        for ours in ("theta", "phi", "g"):
            dense = getattr(layer, ours)
            for theirs in (f"{prefix}.{ours}.conv", f"{prefix}.{ours}.0.conv"):
                if f"{theirs}.weight" in state:
                    out[dense.kernel.path] = dense_kernel(state[f"{theirs}.weight"])
                    out[dense.bias.path] = state[f"{theirs}.bias"]
        if f"{prefix}.conv_out.conv.weight" in state:
            weight = state[f"{prefix}.conv_out.conv.weight"]
            out[layer.project.kernel.path] = dense_kernel(weight)
            bias = state.get(f"{prefix}.conv_out.conv.bias")
            out[layer.project.bias.path] = bias if bias is not None else np.zeros(weight.shape[0], "float32")
            out.update(_bn_values(state, f"{prefix}.conv_out.bn", layer.bn))
    return out


# ---------------------------------------------------------------- TSM authors


def _tsm_conv(module, index):
    if module.endswith("downsample"):
        return [f"module.base_model.{module}.0.weight"]
    return [f"module.base_model.{module}.weight", f"module.base_model.{module}.net.weight"]


def _tsm_bn(module, index):
    return "module.base_model." + _torchvision_bn(module, index)


def map_tsm(state, model):
    """The TSM authors' checkpoint (mit-han-lab/temporal-shift-module: `module.base_model.*`,
    `module.new_fc.*`) -> a tfvideo TSM/TSN ResNet."""
    _check_backbone(model, "tsm")
    out = map_resnet_backbone(state, model.backbone, _tsm_conv, _tsm_bn)
    out.update(map_dense(state, model.classifier, ["module.new_fc", "module.base_model.fc"]))
    return out


register_checkpoint_format("torchvision", read_torch_checkpoint, map_torchvision,
                           "torchvision ImageNet ResNet state_dict (resnet50-*.pth, resnet101-*.pth)")
register_checkpoint_format("mmaction2", read_torch_checkpoint, map_mmaction2,
                           "MMAction2 1.x checkpoint {meta, state_dict}: TSN/TSM/TANet/TRN/I3D(-NL) ResNet, "
                           "TSM MobileNetV2", model_overrides=_mm_overrides)
register_checkpoint_format("tsm", read_torch_checkpoint, map_tsm,
                           "TSM authors' checkpoint (module.base_model.*, module.new_fc.*)")
