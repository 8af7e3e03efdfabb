"""tfvideo.layers: temporal layers for video models (keras.ops only)."""

from tfvideo.api import _export
from tfvideo.layers import _segment_consensus, _temporal_shift  # noqa: F401

_export.publish(__name__, globals())
