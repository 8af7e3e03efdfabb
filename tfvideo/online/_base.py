"""The streaming contract shared by online detectors.

An online detector labels chunk t of a stream from chunks <= t only. Every detector has
two equivalent forms:

  call(features [B, T, D]) -> {"scores": logits [B, T, K], ...}
      the batch (windowed) pass over a sequence that starts at stream start;
  init_state(batch_size) -> state dict; step(chunk [B, D], state) -> (logits [B, K], state)
      one chunk at a time, as a live stream arrives.

Stepping through a sequence from `init_state` gives the same logits as `call` on it.
K counts every score column (column 0 background, an optional ambiguous column).
History before the stream start is zero embeddings, in both forms.
"""

import keras
from keras import ops

from tfvideo.api._export import tf_export
from tfvideo.models import _fast_build


@tf_export("tfvideo.online.OnlineDetector")
class OnlineDetector(keras.Model):
    """Base class: subclasses define `state_shapes()`, `step()`, `call()` and `build()`."""

    #: Whether `call` also returns "anticipation": logits of future chunks [B, T, S, K].
    anticipates = False

    def __init__(self, feature_dim, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)

    def state_shapes(self):
        """{state name: shape without the batch axis}."""
        raise NotImplementedError

    def init_state(self, batch_size=1):
        """Zero state for `batch_size` streams: {name: float32 [batch_size, ...]}."""
        return {name: ops.zeros((batch_size,) + tuple(shape), "float32") for name, shape in self.state_shapes().items()}

    def step(self, chunk, state, training=False):
        """One chunk [B, D] of each stream -> (logits [B, K], new state)."""
        raise NotImplementedError

    def _check_features(self, x, what="features"):
        if len(x.shape) != 3 or (x.shape[-1] is not None and x.shape[-1] != self.feature_dim):
            raise ValueError(f"{self.name}: {what} must be [B, T, {self.feature_dim}], got shape {x.shape}.")

    def get_config(self):
        return {**super().get_config(), "feature_dim": self.feature_dim, "num_classes": self.num_classes}

    def build_from_config(self, config):
        # keras.saving.load_model overwrites every variable next: no initial values drawn
        # (minutes for the authors' TRN, whose orthogonal LSTM kernels each need a QR).
        _fast_build.build_from_config_for_load(self, config, super().build_from_config)


def sliding_windows(x, history):
    """[B, T, E] -> [B, T, history, E]: window t holds x[t - history + 1 .. t], zero padded."""
    t = ops.shape(x)[1]
    padded = ops.concatenate([ops.zeros_like(x[:, :1]) * ops.zeros((1, history - 1, 1), x.dtype), x], axis=1)
    index = ops.arange(t)[:, None] + ops.arange(history)[None, :]
    return ops.take(padded, index, axis=1)


def push(buffer, item):
    """Appends item [B, E] to the window [B, H, E], dropping the oldest entry."""
    return ops.concatenate([buffer[:, 1:], item[:, None]], axis=1)
