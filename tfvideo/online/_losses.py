"""Losses of online detectors: soft-target cross-entropy that skips the ambiguous class."""

import keras
from keras import ops

from tfvideo.api._export import tf_export


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
