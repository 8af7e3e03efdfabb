"""tfvideo: video understanding with TensorFlow and Keras 3.

Public namespaces: data, feature_columns, layers, models, online, metrics, export,
serving. Everything public is published with `tf_export`; implementation modules are
private.

A namespace loads on first use (`tfvideo.data.X`, `from tfvideo import data`), so that
importing one part of the library (the `tfvideo.api` export registry, say, which the
top-level `feature_columns` package needs) does not load all the others, and no import
order can leave a namespace half published. Keras restores tfvideo layers from a
`.keras` file once the namespace defining them is loaded (`tfvideo.models`, `tfvideo.online`).
"""

import importlib

__version__ = "0.1.0"

__all__ = ["data", "export", "feature_columns", "layers", "metrics", "models", "online", "serving"]


def __getattr__(name):  # PEP 562: `tfvideo.<namespace>` imports it on first access.
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
