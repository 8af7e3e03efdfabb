"""Segment consensus (TSN): combine per-segment class scores into one video score."""

import keras
from keras import ops

from tfvideo.api._export import tf_export

_MODES = ("avg", "max", "weighted")


@tf_export("tfvideo.layers.SegmentConsensus")
@keras.saving.register_keras_serializable(package="tfvideo")
class SegmentConsensus(keras.layers.Layer):
    """`[B, T, K]` -> `[B, K]` by averaging, max, or a learned softmax-weighted average."""

    def __init__(self, mode="avg", **kwargs):
        super().__init__(**kwargs)
        if mode not in _MODES:
            raise ValueError(f"SegmentConsensus: mode={mode!r} must be one of {_MODES}.")
        self.mode = mode

    def build(self, input_shape):
        if self.mode == "weighted":
            if input_shape[1] is None:
                raise ValueError("SegmentConsensus(mode='weighted') needs a static number of segments.")
            self.segment_logits = self.add_weight(name="segment_logits", shape=(input_shape[1],), initializer="zeros")

    def call(self, scores):
        if self.mode == "avg":
            return ops.mean(scores, axis=1)
        if self.mode == "max":
            return ops.max(scores, axis=1)
        weights = ops.softmax(self.segment_logits)
        return ops.einsum("btk,t->bk", scores, weights)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
