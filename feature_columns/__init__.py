"""The feature-column API on Keras 3 (published as `tfvideo.feature_columns`).

Implementation modules are private; `tfvideo.feature_columns` is the public namespace (it
adds the video columns, which are built on `tfvideo.data`). This package needs nothing from
tfvideo but the export registry, `tfvideo.api`.
"""

from feature_columns import (  # noqa: F401 -- importing registers the public symbols.
    _base,
    _categorical,
    _crossed,
    _dense,
    _feature_layer,
    _numeric,
)
