"""Temporal Relation module (TRN, Zhou et al. 2018): multi-scale relations of ordered frames."""

import itertools

import keras
import numpy as np
from keras import layers, ops

from tfvideo.api._export import tf_export
from tfvideo.layers import _initializers


def relation_subsets(num_segments, scales=None, subsets_per_scale=3):
    """The ordered frame subsets used at each scale at inference: `{scale: [(t0 < t1 < ...), ...]}`.

    The largest scale uses all frames; smaller scales take `subsets_per_scale` of the
    ordered combinations, evenly spaced over their lexicographic list. (The authors' code
    draws them at random on every forward pass; `TemporalRelation` does so in training and
    uses this fixed choice at inference, which keeps predictions deterministic.)
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

    Which subsets: the largest scale reads all frames; each smaller scale reads
    `subsets_per_scale` of its ordered k-frame combinations. In training they are drawn
    at random, without repetition, on every call (one draw for the batch), as in the
    authors' `RelationModuleMultiScale`: each g_k sees every frame pairing over training.
    At inference they are the fixed `relation_subsets`. The MLPs start as PyTorch's
    `nn.Linear` does (kernel uniform in +-1/sqrt(fan_in)): the 19 summed outputs of an
    8-frame module then start at PyTorch's scale, not Glorot's larger one.
    """

    def __init__(self, num_segments, units, bottleneck=256, scales=None, subsets_per_scale=3, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_segments = int(num_segments)
        self.units = int(units)
        self.bottleneck = int(bottleneck)
        self.scales = tuple(int(s) for s in scales) if scales else None
        self.subsets_per_scale = int(subsets_per_scale)
        self.subsets = relation_subsets(self.num_segments, self.scales, self.subsets_per_scale)
        self._scale_list = list(self.subsets)
        # [n, k] frame indices per scale k: the fixed subsets (inference) and every ordered
        # combination (the draws in training).
        self._fixed = {k: np.asarray(self.subsets[k], "int32") for k in self._scale_list}
        self._combinations = {k: np.asarray(list(itertools.combinations(range(self.num_segments), k)), "int32")
                              for k in self._scale_list}
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.hidden = [layers.Dense(self.bottleneck, kernel_initializer=_initializers.torch_default(), name=f"scale{k}_hidden",
                                    dtype=self.dtype_policy) for k in self._scale_list]
        self.out = [layers.Dense(self.units, kernel_initializer=_initializers.torch_default(), name=f"scale{k}_out",
                                 dtype=self.dtype_policy) for k in self._scale_list]

    def build(self, input_shape):
        if input_shape[1] is not None and input_shape[1] != self.num_segments:
            raise ValueError(f"{self.name}: input {input_shape} must have num_segments={self.num_segments} frames.")
        features = input_shape[-1]
        for i, k in enumerate(self._scale_list):
            self.hidden[i].build((None, k * features))
            self.out[i].build((None, self.bottleneck))

    def _drawn(self, k):
        """[m, k] frame indices: as many random ordered combinations of scale k as it has fixed subsets."""
        combos, count = self._combinations[k], len(self._fixed[k])
        if count == len(combos):
            return combos
        order = keras.random.shuffle(ops.arange(len(combos)), seed=self.seed_generator)
        return ops.take(combos, order[:count], axis=0)

    def call(self, x, training=None):
        total = None
        features = x.shape[-1]
        for i, k in enumerate(self._scale_list):
            subsets = self._drawn(k) if training else self._fixed[k]
            count = len(self._fixed[k])
            rel = ops.reshape(ops.take(x, ops.reshape(subsets, (-1,)), axis=1), (-1, count, k * features))
            y = ops.sum(self.out[i](ops.relu(self.hidden[i](ops.relu(rel)))), axis=1)
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
            "seed": self.seed,
        }
