"""tfvideo.metrics: online detection (per-frame mAP, mcAP, action starts) and segmentation metrics."""

from tfvideo.api import _export
from tfvideo.metrics import _online_detection, _segmentation  # noqa: F401 -- importing registers the public symbols.

_export.publish(__name__, globals())
