"""ImageNet weights for the 2D backbones: torchvision's for ResNets, keras.applications' for MobileNetV2."""

import keras
import numpy as np
from absl import logging
from keras import ops

from tfvideo.api._export import tf_export


def _applications_model(backbone_name, width, weights):
    """The keras.applications counterpart of a backbone (no top), or raises."""
    apps = keras.applications
    if backbone_name == "resnet50":
        return apps.ResNet50(include_top=False, weights=weights, input_shape=(None, None, 3))
    if backbone_name == "resnet101":
        return apps.ResNet101(include_top=False, weights=weights, input_shape=(None, None, 3))
    if backbone_name == "mobilenetv2":
        alpha = (width or 32) / 32
        return apps.MobileNetV2(include_top=False, weights=weights, alpha=alpha, input_shape=(None, None, 3))
    raise ValueError(f"No keras.applications ImageNet weights for backbone {backbone_name!r}; "
                     "available for resnet50, resnet101 and mobilenetv2.")


@tf_export("tfvideo.models.transfer_weights")
def transfer_weights(source, target, strict=True):
    """Copies weights from `source` to `target` layers of the same name.

    A conv with a bias in `source` and none in `target` (keras.applications ResNets vs
    ours) has the bias folded into the following BatchNormalization named `*_bn`:
    `BN(conv + b)` with moving mean `m` equals `BN(conv)` with moving mean `m - b`.
    A first conv reading more channels than the source (stacked flow) gets the RGB
    kernel averaged over channels and replicated (TSN cross-modality init).

    Returns the names of the target layers set. With `strict`, every source layer with
    weights must find a target layer of the same name; shapes must always agree.
    """
    src = {layer.name: layer for layer in source.layers if layer.weights}
    dst = {layer.name: layer for layer in target.layers if layer.weights}
    missing = sorted(set(src) - set(dst))
    if strict and missing:
        raise ValueError(f"transfer_weights: layers {missing[:5]}... of {source.name!r} are not in {target.name!r}.")
    done, bias_fold = [], {}
    for name, layer in src.items():
        if name not in dst:
            continue
        values = [np.asarray(ops.convert_to_numpy(v)) for v in layer.weights]
        want = [tuple(w.shape) for w in dst[name].weights]
        if isinstance(layer, keras.layers.Conv2D) and len(values) == 2 and len(want) == 1:
            if not name.endswith("_conv"):
                raise ValueError(f"transfer_weights: conv {name!r} has a bias that {target.name!r} lacks and no "
                                 "'<name>_bn' BatchNormalization to fold it into.")
            bias_fold[name[: -len("_conv")] + "_bn"] = values.pop()
        if len(values) == 1 and values[0].ndim == 4 and values[0].shape[-2] != want[0][-2]:
            values[0] = np.repeat(values[0].mean(axis=-2, keepdims=True), want[0][-2], axis=-2)
        if [v.shape for v in values] != want:
            raise ValueError(f"transfer_weights: layer {name!r} has weights {want} in {target.name!r} and "
                             f"{[v.shape for v in values]} in {source.name!r}.")
        dst[name].set_weights(values)
        done.append(name)
    for bn_name, bias in bias_fold.items():
        if bn_name not in dst:
            raise ValueError(f"transfer_weights: no BatchNormalization {bn_name!r} in {target.name!r} to fold a bias into.")
        gamma, beta, mean, var = [np.asarray(ops.convert_to_numpy(v)) for v in dst[bn_name].weights]
        dst[bn_name].set_weights([gamma, beta, mean - bias, var])
    return done


@tf_export("tfvideo.models.load_imagenet_weights")
def load_imagenet_weights(model, weights):
    """Loads ImageNet weights into a recognizer's 2D backbone (or into an I3D by inflation).

    Args:
      model: a built `Recognizer2D` (TSN, TSM, TANet, TRN, ...) or `I3D` with a ResNet-50/101
        backbone, or one with a MobileNetV2 backbone.
      weights: for ResNets, the path of a torchvision ImageNet state_dict (`resnet50-*.pth`,
        what TSN, TSM, TANet, TDN and MMAction2 start from: ResNet v1.5, RGB, ImageNet
        mean/std; needs the `torch` extra to read). For MobileNetV2, "imagenet" (downloads)
        or the path of a keras.applications weights file.

    The ResNet route is exact: the backbone then computes torchvision's features on a clip
    normalised as tfvideo's pipelines do (tests/models/test_convert.py). The keras.applications
    ResNet weights are refused: they are ResNet v1 (stride in the 1x1) trained on BGR
    caffe-normalised input, and folding that preprocessing into the first conv is inexact at
    the zero-padded border, so they would not give the reference's features.
    Returns the number of layers loaded.
    """
    name = getattr(model, "backbone_name", None)
    if name is None:
        raise ValueError(f"load_imagenet_weights: {model.name!r} has no backbone_name; pass a tfvideo recognizer.")
    if name.startswith("resnet"):
        count = _load_torchvision(model, weights)
    else:
        app = _applications_model(name, getattr(model, "width", None), weights)
        if hasattr(model, "load_2d_weights"):
            template = model.backbone_2d()
            transfer_weights(app, template)
            count = model.load_2d_weights(template)
        else:
            count = len(transfer_weights(app, model.backbone))
    logging.info("Loaded %d layers of %s ImageNet weights (%s) into %s.", count, name, weights, model.name)
    return count


def _load_torchvision(model, weights):
    from tfvideo.models import _convert, _convert_resnet

    if not isinstance(weights, str) or not weights.endswith((".pth", ".pt")):
        raise ValueError(f"load_imagenet_weights: {model.name!r} has a ResNet backbone; pass the path of a torchvision "
                         f"ImageNet state_dict (.pth), got {weights!r}. keras.applications' ResNet weights are v1/BGR "
                         "caffe weights and do not give the reference features.")
    if not model.built:
        raise ValueError(f"load_imagenet_weights: build {model.name!r} first (model.build(input_shape)).")
    state = _convert._TrackedState(_convert.read_torch_checkpoint(weights))
    mapping = _convert_resnet.map_torchvision(state, model)
    head = _convert._head_variables(model)
    variables = _convert._model_variables(model)
    layers = set()
    for path, value in mapping.items():
        if path in head:
            continue
        want = tuple(variables[path].shape)
        if tuple(value.shape) != want:
            raise _convert.CheckpointError(f"{weights}: {_convert._where(value)} does not fit {path} {list(want)} of "
                                           f"{model.name!r}: another depth or width?")
        variables[path].assign(np.asarray(value, "float32"))
        layers.add(path.rsplit("/", 1)[0])
    backbone_convs = [layer for layer in model.backbone.layers if layer.name.endswith("_conv")]
    missing = [layer.name for layer in backbone_convs if layer.kernel.path.rsplit("/", 1)[0] not in layers]
    if missing:
        raise _convert.CheckpointError(f"{weights}: has no weights for {missing[0]} of {model.name!r} "
                                       f"({len(missing)} layers): another depth?")
    return len(layers)
