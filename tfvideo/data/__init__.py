"""tfvideo.data: video sources, samplers, transforms and tf.data pipelines."""

import os as _os

from tfvideo.api import _export

if _os.environ.get("TFVIDEO_LIGHT_IMPORT") == "1":  # tfvideo-prepare's workers: only the modules they import.
    __all__ = []
else:
    from tfvideo.data import (  # noqa: F401 -- importing registers the public symbols.
        _annotations,
        _beam,
        _clip_spec,
        _decode,
        _errors,
        _features,
        _flip,
        _formats,
        _oad_layouts,
        _pipeline,
        _prepare,
        _preprocess,
        _probe,
        _rawframes,
        _record_io,
        _samplers,
        _sources,
        _synthetic,
        _tfrecord,
        _transforms,
        _video_io,
    )

    _export.publish(__name__, globals())
