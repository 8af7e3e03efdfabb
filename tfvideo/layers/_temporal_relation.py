"""Temporal Relation module (TRN, Zhou et al. 2018): multi-scale relations of ordered frames."""

import itertools

import keras
import numpy as np
from keras import layers, ops

from tfvideo.api._export import tf_export


def relation_subsets(num_segments, scales=None, subsets_per_scale=3):
    """The ordered frame subsets used at each scale: `{scale: [(t0 < t1 < ...), ...]}`.

    The largest scale uses all frames; smaller scales take `subsets_per_scale` of the
    ordered combinations, evenly spaced over their lexicographic list. (TRN draws them at
    random per forward pass; a fixed choice keeps inference deterministic and exportable.)
    """
    scales = tuple(scales) if scales else tuple(range(num_segments, 1, -1))
    out = {}
    for scale in scales:
        if not 1 <= scale <= num_segments:
            raise ValueError(f"relation_subsets: scale {scale} must be in [1, num_segments={num_segments}].")
        combos = list(itertools.combinations(range(num_segments), scale))
        count = min(len(combos), 1 if scale == num_segments else subsets_per_scale)
        picks = np.unique(np.round(np.linspace(0, len(combos) - 1, count)).astype(int))
        out[scale] = [combos[i] for i in picks]
    return out


@tf_export("tfvideo.layers.TemporalRelation")
@keras.saving.register_keras_serializable(package="tfvideo")
class TemporalRelation(keras.layers.Layer):
    """Multi-scale temporal relations: `[B, T, D]` frame features -> `[B, units]`.

    For every scale k an MLP g_k (ReLU, Dense(bottleneck), ReLU, Dense(units)) reads
    the concatenated features of an ordered subset of k frames; the outputs of all
    subsets of all scales are summed (TRN's multi-scale relation).
    """

    def __init__(self, num_segments, units, bottleneck=256, scales=None, subsets_per_scale=3, **kwargs):
        super().__init__(**kwargs)
        self.num_segments = int(num_segments)
        self.units = int(units)
        self.bottleneck = int(bottleneck)
        self.scales = tuple(int(s) for s in scales) if scales else None
        self.subsets_per_scale = int(subsets_per_scale)
        self.subsets = relation_subsets(self.num_segments, self.scales, self.subsets_per_scale)
        self._scale_list = list(self.subsets)
        self.hidden = [layers.Dense(self.bottleneck, name=f"scale{k}_hidden", dtype=self.dtype_policy) for k in self._scale_list]
        self.out = [layers.Dense(self.units, name=f"scale{k}_out", dtype=self.dtype_policy) for k in self._scale_list]

    def build(self, input_shape):
        if input_shape[1] is not None and input_shape[1] != self.num_segments:
            raise ValueError(f"{self.name}: input {input_shape} must have num_segments={self.num_segments} frames.")
        features = input_shape[-1]
        for i, k in enumerate(self._scale_list):
            self.hidden[i].build((None, k * features))
            self.out[i].build((None, self.bottleneck))

    def call(self, x):
        total = None
        for i, k in enumerate(self._scale_list):
            for subset in self.subsets[k]:
                rel = ops.concatenate([x[:, t] for t in subset], axis=-1)
                y = self.out[i](ops.relu(self.hidden[i](ops.relu(rel))))
                total = y if total is None else total + y
        return total

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "num_segments": self.num_segments,
            "units": self.units,
            "bottleneck": self.bottleneck,
            "scales": self.scales,
            "subsets_per_scale": self.subsets_per_scale,
        }
