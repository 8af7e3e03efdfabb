"""tfvideo.serving: TF Serving gRPC and REST clients, a development model server with both APIs, offline prediction."""

from tfvideo.api import _export
from tfvideo.serving import _client, _local, _rest, _server  # noqa: F401 -- importing registers the public symbols.

_export.publish(__name__, globals())
