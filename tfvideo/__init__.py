"""tfvideo: video understanding with TensorFlow and Keras 3.

Public namespaces: data, feature_columns, layers, models, online, metrics, export,
serving. Everything public is published with `tf_export`; implementation modules are
private.
"""

__version__ = "0.1.0"

from tfvideo import data, export, feature_columns, layers, metrics, models, online, serving  # noqa: E402,F401

__all__ = ["data", "export", "feature_columns", "layers", "metrics", "models", "online", "serving"]
