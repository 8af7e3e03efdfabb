"""tfvideo: video understanding with TensorFlow and Keras 3.

Public namespaces: data, feature_columns, layers, models, online, metrics, export,
serving. Everything public is published with `tf_export`; implementation modules are
private.

A namespace loads on first use (`tfvideo.data.X`, `from tfvideo import data`), so that
importing one part of the library (the `tfvideo.api` export registry, say, which the
top-level `feature_columns` package needs) does not load all the others, and no import
order can leave a namespace half published. The namespaces that define Keras classes and
need nothing above them (layers, models, online) load with `import tfvideo`, so that
`keras.saving.load_model` restores a tfvideo model after a plain `import tfvideo`; a model
holding a `FeatureLayer` also needs `tfvideo.feature_columns` (or `feature_columns`) imported.

With the environment variable TFVIDEO_LIGHT_IMPORT=1 (set in tfvideo-prepare's worker
processes), `import tfvideo` and `import tfvideo.data` load no namespace: only the modules
imported by name (`from tfvideo.data import _prepare`), so no TensorFlow unless they need it.
"""

import importlib
import os as _os

__version__ = "0.1.0"

__all__ = ["data", "export", "feature_columns", "layers", "metrics", "models", "online", "serving"]


def __getattr__(name):  # PEP 562: `tfvideo.<namespace>` imports it on first access.
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


# After __getattr__: these import tfvideo.api and tfvideo.data, never feature_columns, export
# or serving, so importing any part of the library first cannot half-publish a namespace.
# Not in tfvideo-prepare's worker processes (TFVIDEO_LIGHT_IMPORT=1): they import only the
# modules they name, and no TensorFlow (see tfvideo/data/_prepare.py).
if _os.environ.get("TFVIDEO_LIGHT_IMPORT") != "1":
    from tfvideo import layers, models, online  # noqa: E402,F401 -- registers tfvideo's Keras classes.
