"""tfvideo.models: video recognition models and their preset registry."""

from tfvideo.api import _export
from tfvideo.models import _presets, _recognizer2d, _registry  # noqa: F401

_export.publish(__name__, globals())
