"""tfvideo.export: SavedModel export for TF Serving (signatures, versions, warm-up, streaming).

The programs over it (tfvideo-export/serve/predict) live in the top-level `export` package.
"""

from tfvideo.api import _export
from tfvideo.export import (  # noqa: F401 -- importing registers the public symbols.
    _saved_model,
    _signatures,
    _stream_recognizer,
    _streaming,
    _two_stream,
    _versions,
    _warmup,
)

_export.publish(__name__, globals())
