"""tfvideo.serving."""

from tfvideo.api import _export

_export.publish(__name__, globals())
