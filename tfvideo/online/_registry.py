"""Online detector registry: build a detector by name (the trainers' --model for the task)."""

from tfvideo.api._export import tf_export
from tfvideo.online._baselines import ChunkClassifier, GRUDetector
from tfvideo.online._idn import IDN
from tfvideo.online._oadtr import OadTR
from tfvideo.online._trn import TemporalRecurrentNetwork

# name -> (class, default kwargs). A registry: the only global state.
_DETECTORS = {
    "trn": (TemporalRecurrentNetwork, {}),
    "idn": (IDN, {}),
    "oadtr": (OadTR, {}),
    "gru": (GRUDetector, {}),
    "chunk_mlp": (ChunkClassifier, {}),
    # Small widths that train on a CPU in seconds (tests, demos, the learning check).
    "trn_tiny": (TemporalRecurrentNetwork, {"embed_dim": 32, "hidden_dim": 32, "decoder_steps": 4}),
    "idn_tiny": (IDN, {"history": 8, "embed_dim": 32, "units": 32}),
    "oadtr_tiny": (OadTR, {"history": 8, "embed_dim": 32, "encoder_layers": 1, "decoder_layers": 1,
                           "encoder_heads": 4, "decoder_heads": 4, "decoder_queries": 4, "mlp_dim": 64}),
    "gru_tiny": (GRUDetector, {"embed_dim": 32, "units": 32}),
    "chunk_mlp_tiny": (ChunkClassifier, {"hidden_dim": 32}),
}


@tf_export("tfvideo.online.list_detectors")
def list_detectors():
    """Sorted detector names accepted by `get_detector`."""
    return sorted(_DETECTORS)


@tf_export("tfvideo.online.get_detector")
def get_detector(name, feature_dim, num_classes, **overrides):
    """Builds (and builds the weights of) detector `name`; kwargs override its defaults."""
    if name not in _DETECTORS:
        raise ValueError(f"Unknown online detector {name!r}; available: {', '.join(list_detectors())}.")
    cls, defaults = _DETECTORS[name]
    model = cls(feature_dim=feature_dim, num_classes=num_classes, **{**defaults, **overrides})
    model.build((None, None, feature_dim))
    return model
