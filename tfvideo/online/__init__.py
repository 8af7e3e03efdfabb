"""tfvideo.online: online action detectors (TRN, IDN, OadTR, baselines) with streaming state."""

from tfvideo.api import _export
from tfvideo.online import (  # noqa: F401 -- importing registers the public symbols.
    _base,
    _baselines,
    _convert,
    _idn,
    _inference,
    _losses,
    _oadtr,
    _registry,
    _synthetic,
    _trn,
)

_export.publish(__name__, globals())
