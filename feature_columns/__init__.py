"""The feature-column API on Keras 3 (published as `tfvideo.feature_columns`).

Implementation modules are private; `tfvideo.feature_columns` is the public namespace.
"""

import tfvideo  # noqa: F401 -- first, so `tfvideo.feature_columns` registers these modules in order.
from feature_columns import (  # noqa: F401 -- importing registers the public symbols.
    _base,
    _categorical,
    _crossed,
    _dense,
    _feature_layer,
    _numeric,
)
