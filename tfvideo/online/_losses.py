"""Losses of online detectors: soft-target cross-entropy that skips the ambiguous class, and
IDN's contrastive loss on the early embeddings."""

import keras
from keras import ops

from tfvideo.api._export import tf_export
from tfvideo.online._base import sliding_windows


@tf_export("tfvideo.online.SoftTargetCrossEntropy")
@keras.saving.register_keras_serializable(package="tfvideo")
class SoftTargetCrossEntropy(keras.losses.Loss):
    """-sum_k y_k log softmax(z)_k over the last axis, the `ignore_index` column removed.

    Targets are one-hot or soft (multi-label rows are normalised to sum 1). The ignored
    (ambiguous) column takes no part in the softmax nor the target; a row with no target
    mass left (an ambiguous chunk, or the zero rows that pad anticipation targets past a
    video's end) adds zero loss. Works for [..., K] logits of any rank, e.g. the current
    scores [B, T, K] and the anticipation [B, T, S, K].
    """

    def __init__(self, ignore_index=None, name="soft_target_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_index = None if ignore_index is None else int(ignore_index)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        if self.ignore_index is not None:
            k = y_pred.shape[-1]
            keep = ops.cast(ops.not_equal(ops.arange(k), self.ignore_index), y_pred.dtype)
            y_true = y_true * keep
            y_pred = y_pred + (1.0 - keep) * -1e9
        total = ops.sum(y_true, axis=-1, keepdims=True)
        y_true = y_true / ops.maximum(total, 1e-12)
        log_probs = ops.log_softmax(y_pred, axis=-1)
        return -ops.sum(y_true * log_probs, axis=-1)

    def get_config(self):
        return {**super().get_config(), "ignore_index": self.ignore_index}


@tf_export("tfvideo.online.relevance_contrastive_loss")
def relevance_contrastive_loss(targets, embeddings, history, margin=1.0, ignore_index=None):
    """IDN's contrastive loss between each chunk's embedding and those of its past window.

    For every chunk t (the "current information" x0 of its window) and every past chunk s of
    the window (t - history < s < t), with d = ||e_t - e_s||_2:
      same action label:      d^2            (pulled together)
      different action label: max(0, margin - d)^2   (pushed at least `margin` apart)
    The label of a chunk is the argmax of its target row (ambiguous column removed). Pairs
    with a chunk that has no target mass (ambiguous chunks, zero padding) or that lies before
    the sequence start are left out. Returns the mean over the remaining pairs (0 if none, e.g. history 1).

    Args:
      targets: [B, T, K] one-hot or soft targets.
      embeddings: [B, T, E] early embeddings of the same chunks.
      history: window length H (the detector's), so each chunk is paired with H - 1 past ones.
    """
    history = int(history)
    if history < 1:
        raise ValueError(f"relevance_contrastive_loss: history must be >= 1, got {history}.")
    if len(targets.shape) != 3 or len(embeddings.shape) != 3:
        raise ValueError(f"relevance_contrastive_loss: targets [B, T, K] and embeddings [B, T, E] expected, "
                         f"got shapes {targets.shape} and {embeddings.shape}.")
    dtype = embeddings.dtype
    targets = ops.cast(targets, dtype)
    if ignore_index is not None:
        keep = ops.cast(ops.not_equal(ops.arange(targets.shape[-1]), int(ignore_index)), dtype)
        targets = targets * keep
    valid = ops.cast(ops.sum(targets, axis=-1, keepdims=True) > 0, dtype)  # [B, T, 1]
    label = ops.cast(ops.argmax(targets, axis=-1), dtype)[..., None]  # [B, T, 1]
    # Window t holds chunks t - H + 1 .. t (zero padded before the start: valid = 0 there).
    e_win = sliding_windows(embeddings, history)  # [B, T, H, E]
    valid_win = sliding_windows(valid, history)[..., 0]  # [B, T, H]
    label_win = sliding_windows(label, history)[..., 0]
    current, past = e_win[:, :, -1:], e_win[:, :, :-1]
    squared = ops.sum(ops.square(current - past), axis=-1)  # [B, T, H - 1]
    distance = ops.sqrt(ops.maximum(squared, 1e-12))  # Clamped: sqrt'(0) is infinite.
    same = ops.cast(ops.equal(label_win[:, :, :-1], label_win[:, :, -1:]), dtype)
    pair_loss = same * squared + (1.0 - same) * ops.square(ops.relu(margin - distance))
    pairs = valid_win[:, :, :-1] * valid_win[:, :, -1:]
    return ops.sum(pairs * pair_loss) / ops.maximum(ops.sum(pairs), 1.0)
