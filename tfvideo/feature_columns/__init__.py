"""tfvideo.feature_columns: the feature-column API, implemented in the top-level
`feature_columns` package."""

from feature_columns import (  # noqa: F401 -- importing registers the public symbols.
    _base,
    _categorical,
    _crossed,
    _dense,
    _feature_layer,
    _numeric,
    _video,
)
from tfvideo.api import _export

_export.publish(__name__, globals())
