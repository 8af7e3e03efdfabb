"""tfvideo.export: SavedModel export for TF Serving, implemented in the top-level
`export` package."""

import export as _implementation  # noqa: F401 -- importing registers the public symbols.
from tfvideo.api import _export

_export.publish(__name__, globals())
