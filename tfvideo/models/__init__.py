"""tfvideo.models: video recognition models, backbones, inflation and the preset registry."""

from tfvideo.api import _export
from tfvideo.models import (  # noqa: F401 -- importing registers the public symbols.
    _backbones,
    _clip_specs,
    _convert,
    _convert_i3d_inception,
    _convert_resnet,
    _convert_tdn,
    _describe,
    _i3d,
    _imagenet,
    _inflate,
    _online_tsm,
    _presets,
    _recipes,
    _recognizer2d,
    _registry,
    _two_stream,
)

_export.publish(__name__, globals())
