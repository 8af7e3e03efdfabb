"""2D backbones by name: ResNet-10/18/34/50/101, MobileNetV2, BN-Inception, Inception-v1."""

from tfvideo.api._export import tf_export
from tfvideo.models import _inception, _mobilenet_v2, _resnet

BACKBONES = ("resnet10", "resnet18", "resnet34", "resnet50", "resnet101", "mobilenetv2", "bninception", "inception_v1")
# Stem width of the standard networks; `width` scales every layer relative to it.
_STANDARD_WIDTH = {"mobilenetv2": 32, "bninception": 64, "inception_v1": 64}


def supports_hooks(name):
    """Whether temporal modules can be placed in the backbone's residual blocks."""
    return name.startswith("resnet") or name == "mobilenetv2"


@tf_export("tfvideo.models.backbone")
def backbone(name, width=None, input_channels=3, residual_hook=None, hook_position="block_input", stem_input=None,
             stem_fusion=None, stride_in_1x1=False, style="keras"):
    """A 2D feature extractor `[N, H, W, C] -> [N, h, w, F]` (a functional keras.Model).

    Args:
      name: one of `BACKBONES`.
      width: stem channels (64 for ResNet/Inception, 32 for MobileNetV2 in the standard
        networks); other layers scale with it. None: standard.
      residual_hook, hook_position, stem_input, stem_fusion, stride_in_1x1: see
        `resnet` (MobileNetV2 takes only `residual_hook`).
      style: MobileNetV2 only: "keras" (keras.applications' BN epsilon and padding) or
        "torch" (torchvision's and MMAction2's, for their checkpoints).
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; expected one of {BACKBONES}.")
    if name.startswith("resnet"):
        return _resnet.resnet(int(name[len("resnet"):]), width or 64, input_channels, residual_hook, hook_position,
                              stem_input, stem_fusion, stride_in_1x1)
    if stem_input or stem_fusion or (residual_hook and name != "mobilenetv2"):
        raise ValueError(f"backbone {name!r} has no residual blocks for temporal modules; use a ResNet or MobileNetV2.")
    if name == "mobilenetv2":
        return _mobilenet_v2.mobilenet_v2((width or 32) / 32, input_channels, residual_hook, style=style)
    build = _inception.bn_inception if name == "bninception" else _inception.inception_v1
    return build(width or _STANDARD_WIDTH[name], input_channels)
