"""tfvideo.layers: temporal layers for video models (keras.ops only)."""

from tfvideo.api import _export
from tfvideo.layers import (  # noqa: F401 -- importing registers the public symbols.
    _dilated_temporal_conv,
    _non_local,
    _segment_consensus,
    _spatial_pyramid_pooling,
    _temporal_adaptive,
    _temporal_difference,
    _temporal_relation,
    _temporal_shift,
)

_export.publish(__name__, globals())
