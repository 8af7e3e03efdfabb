"""tfvideo.feature_columns: the feature-column API, implemented in the top-level
`feature_columns` package, and the video columns (`_video`, built on tfvideo.data)."""

from feature_columns import (  # noqa: F401 -- importing registers the public symbols.
    _base,
    _categorical,
    _crossed,
    _dense,
    _feature_layer,
    _numeric,
)
from tfvideo.api import _export
from tfvideo.feature_columns import _video  # noqa: F401 -- registers the video columns.

_export.publish(__name__, globals())
