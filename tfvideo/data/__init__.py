"""tfvideo.data: video sources, samplers, transforms and tf.data pipelines."""

from tfvideo.api import _export
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
    _samplers,
    _sources,
    _synthetic,
    _tfrecord,
    _transforms,
    _video_io,
)

_export.publish(__name__, globals())
