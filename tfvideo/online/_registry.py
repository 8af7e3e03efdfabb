"""Online detector registry: build a detector by name (the trainers' --model for the task)."""

from tfvideo.api._export import tf_export
from tfvideo.api._registry import Registry
from tfvideo.online._baselines import ChunkClassifier, GRUDetector
from tfvideo.online._idn import IDN
from tfvideo.online._oadtr import OadTR
from tfvideo.online._trn import TemporalRecurrentNetwork

# name -> detector class, meta: default kwargs. A registry: the only global state.
_DETECTORS = Registry("online detector")


@tf_export("tfvideo.online.register_detector")
def register_detector(name, cls, *, overwrite=False, **defaults):
    """Registers detector `name`: `get_detector(name, ...)` builds `cls(feature_dim=..., num_classes=..., **defaults)`.

    `cls` is a Keras model class reading per-chunk features `[B, T, feature_dim]`, like
    `tfvideo.online.TemporalRecurrentNetwork`; a taken name is refused unless `overwrite=True`.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_detector({name!r}): {cls!r} is not a class.")
    _DETECTORS.register(name, cls, overwrite=overwrite, defaults=dict(defaults))


register_detector("trn", TemporalRecurrentNetwork)
register_detector("idn", IDN)
register_detector("oadtr", OadTR)
register_detector("gru", GRUDetector)
register_detector("chunk_mlp", ChunkClassifier)
# Small widths that train on a CPU in seconds (tests, demos, the learning check).
register_detector("trn_tiny", TemporalRecurrentNetwork, embed_dim=32, hidden_dim=32, decoder_steps=4)
register_detector("idn_tiny", IDN, history=8, embed_dim=32, units=32)
register_detector("oadtr_tiny", OadTR, history=8, embed_dim=32, encoder_layers=1, decoder_layers=1,
                  encoder_heads=4, decoder_heads=4, decoder_queries=4, mlp_dim=64)
register_detector("gru_tiny", GRUDetector, embed_dim=32, units=32)
register_detector("chunk_mlp_tiny", ChunkClassifier, hidden_dim=32)


@tf_export("tfvideo.online.list_detectors")
def list_detectors():
    """Sorted detector names accepted by `get_detector`."""
    return _DETECTORS.names()


@tf_export("tfvideo.online.detector_class")
def detector_class(name):
    """The class detector `name` builds."""
    return _DETECTORS.get(name)


@tf_export("tfvideo.online.detector_config")
def detector_config(name):
    """The default keyword arguments of detector `name` (besides feature_dim and num_classes)."""
    return dict(_DETECTORS.meta(name)["defaults"])


@tf_export("tfvideo.online.get_detector")
def get_detector(name, feature_dim, num_classes, **overrides):
    """Builds (and builds the weights of) detector `name`; kwargs override its defaults."""
    cls = detector_class(name)
    model = cls(feature_dim=feature_dim, num_classes=num_classes, **{**detector_config(name), **overrides})
    model.build((None, None, feature_dim))
    return model
