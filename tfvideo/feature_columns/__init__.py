"""tfvideo.feature_columns: the feature-column API, implemented in the top-level
`feature_columns` package."""

import feature_columns as _implementation  # noqa: F401 -- importing registers the public symbols.
from tfvideo.api import _export

_export.publish(__name__, globals())
