"""Running a detector over a whole recorded video, with the scores streaming would give."""

import numpy as np
from keras import ops

from tfvideo.api._export import tf_export


def _pad_to(x, length):
    return np.concatenate([x, np.zeros((length - len(x),) + x.shape[1:], x.dtype)]) if len(x) < length else x


@tf_export("tfvideo.online.score_sequence")
def score_sequence(model, features, block_size=256):
    """Class probabilities [T, K] of every chunk of one video, using only its past.

    Windowed detectors (with a `history`) run over blocks of `block_size` chunks, each
    preceded by the `history - 1` chunks it may look at; recurrent ones run over the whole
    video. Inputs are zero padded at the end to a few fixed lengths so the compiled
    prediction function is reused; causality makes the padding harmless.

    Args:
      model: an `OnlineDetector`.
      features: float [T, D].
    """
    features = np.asarray(features, np.float32)
    t = len(features)
    history = getattr(model, "history_length", None)
    if history is None:
        length = -(-t // block_size) * block_size
        logits = model.predict_on_batch(_pad_to(features, length)[None])["scores"][0, :t]
    else:
        context = history - 1
        parts = []
        for start in range(0, t, block_size):
            lo = max(0, start - context)
            block = _pad_to(features[lo : start + block_size], block_size + (start - lo))
            parts.append(model.predict_on_batch(block[None])["scores"][0, start - lo : start - lo + block_size])
        logits = np.concatenate(parts)[:t]
    return np.asarray(ops.softmax(logits, axis=-1))
