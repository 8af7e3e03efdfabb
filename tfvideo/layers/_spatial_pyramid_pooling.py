"""Spatial (and temporal) pyramid pooling: fixed-length features from any grid size."""

import math

import keras
from keras import ops

from tfvideo.api._export import tf_export


def _bin_edges(size, bins):
    """Adaptive pooling cells: [floor(i * size / bins), ceil((i + 1) * size / bins))."""
    return [(math.floor(i * size / bins), math.ceil((i + 1) * size / bins)) for i in range(bins)]


@tf_export("tfvideo.layers.SpatialPyramidPooling")
@keras.saving.register_keras_serializable(package="tfvideo")
class SpatialPyramidPooling(keras.layers.Layer):
    """`[B, H, W, C]` or `[B, T, H, W, C]` -> `[B, cells * C]`.

    For each spatial level b in `bins` the map is cut into b x b adaptive cells; with
    a 5D input each level is also cut into each of `temporal_bins` time cells (all
    time when None). Every cell is max or average pooled; the output concatenates
    the levels in order (temporal level outer, spatial level inner), each level's
    cells in row-major (t, y, x) order, channels last. Needs static H, W (and T).
    """

    def __init__(self, bins=(1, 2, 4), temporal_bins=None, pooling="max", **kwargs):
        super().__init__(**kwargs)
        if pooling not in ("max", "avg"):
            raise ValueError(f"SpatialPyramidPooling: pooling={pooling!r} must be 'max' or 'avg'.")
        self.bins = tuple(int(b) for b in bins)
        self.temporal_bins = tuple(int(b) for b in temporal_bins) if temporal_bins else None
        self.pooling = pooling

    def _levels(self, shape):
        spatial = shape[-3:-1]
        if any(s is None for s in spatial) or (len(shape) == 5 and shape[1] is None):
            raise ValueError(f"{self.name}: needs static spatial (and time) sizes, got input shape {shape}.")
        if len(shape) == 4:
            if self.temporal_bins:
                raise ValueError(f"{self.name}: temporal_bins needs a [B, T, H, W, C] input, got {shape}.")
            time_levels = [None]
        elif len(shape) == 5:
            time_levels = list(self.temporal_bins or (1,))
        else:
            raise ValueError(f"{self.name}: input must be 4D or 5D, got {shape}.")
        return time_levels, spatial

    def call(self, x):
        time_levels, (h, w) = self._levels(x.shape)
        reduce = ops.max if self.pooling == "max" else ops.mean
        cells = []
        for tb in time_levels:
            t_edges = [(None, None)] if tb is None else _bin_edges(x.shape[1], tb)
            for b in self.bins:
                for t0, t1 in t_edges:
                    for y0, y1 in _bin_edges(h, b):
                        for x0, x1 in _bin_edges(w, b):
                            if tb is None:
                                cells.append(reduce(x[:, y0:y1, x0:x1], axis=(1, 2)))
                            else:
                                cells.append(reduce(x[:, t0:t1, y0:y1, x0:x1], axis=(1, 2, 3)))
        return ops.concatenate(cells, axis=-1)

    def compute_output_shape(self, input_shape):
        time_levels, _ = self._levels(input_shape)
        count = sum((tb or 1) * b * b for tb in time_levels for b in self.bins)
        return (input_shape[0], count * input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "bins": self.bins, "temporal_bins": self.temporal_bins, "pooling": self.pooling}
