"""Temporal Shift Module (TSM, Lin et al. 2019)."""

import keras
from keras import ops

from tfvideo.api._export import tf_export


@tf_export("tfvideo.layers.TemporalShift")
@keras.saving.register_keras_serializable(package="tfvideo")
class TemporalShift(keras.layers.Layer):
    """Shifts part of the channels along time, zero padded at the clip ends.

    Input `[B * T, H, W, C]` (frames of B clips of `num_segments` frames, as a 2D
    backbone sees them) or `[B, T, ..., C]` with `time_axis=1`. With the default
    bidirectional mode, channels `[0, C/fold_div)` take the next frame's values
    (shift left in time) and channels `[C/fold_div, 2C/fold_div)` the previous
    frame's (shift right); the rest are unchanged. `mode="left"` shifts only
    past -> present (the uni-directional online variant).
    """

    def __init__(self, num_segments, fold_div=8, mode="bidirectional", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("bidirectional", "left"):
            raise ValueError(f"TemporalShift: mode={mode!r} must be 'bidirectional' or 'left'.")
        self.num_segments = int(num_segments)
        self.fold_div = int(fold_div)
        self.mode = mode

    def call(self, x):
        shape = ops.shape(x)
        t = self.num_segments
        clips = ops.reshape(x, (-1, t) + tuple(shape[1:]))
        channels = x.shape[-1]
        if channels is None:
            return ops.reshape(self._shift_by_slicing(clips, shape[-1] // self.fold_div), shape)
        fold = channels // self.fold_div
        # Split/concat only (no strided slices): their gradients are plain concat/slice copies,
        # where a strided slice's gradient writes a zero-filled tensor of the whole clip.
        if self.mode == "bidirectional":
            future, past, rest = ops.split(clips, [fold, 2 * fold], axis=-1)
            # Channels [0, fold): frame t gets frame t + 1's values.
            first, later = ops.split(future, [1], axis=1)
            future = ops.concatenate([later, ops.zeros_like(first)], axis=1)
            # Channels [fold, 2 fold): frame t gets frame t - 1's values.
            earlier, last = ops.split(past, [t - 1], axis=1)
            parts = [future, ops.concatenate([ops.zeros_like(last), earlier], axis=1), rest]
        else:
            past, rest = ops.split(clips, [fold], axis=-1)
            earlier, last = ops.split(past, [t - 1], axis=1)
            parts = [ops.concatenate([ops.zeros_like(last), earlier], axis=1), rest]
        return ops.reshape(ops.concatenate(parts, axis=-1), shape)

    def _shift_by_slicing(self, clips, fold):
        """The same shift for inputs whose channel count is known only at run time."""
        pad = ops.zeros_like(clips[:, :1])
        if self.mode == "bidirectional":
            future = ops.concatenate([clips[:, 1:, ..., :fold], pad[..., :fold]], axis=1)
            past = ops.concatenate([pad[..., fold : 2 * fold], clips[:, :-1, ..., fold : 2 * fold]], axis=1)
            return ops.concatenate([future, past, clips[..., 2 * fold :]], axis=-1)
        past = ops.concatenate([pad[..., :fold], clips[:, :-1, ..., :fold]], axis=1)
        return ops.concatenate([past, clips[..., fold:]], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_segments": self.num_segments, "fold_div": self.fold_div, "mode": self.mode}


@tf_export("tfvideo.layers.OnlineTemporalShift")
@keras.saving.register_keras_serializable(package="tfvideo")
class OnlineTemporalShift(keras.layers.Layer):
    """Streaming uni-directional shift: one frame at a time with a shift buffer.

    `call(features, buffer)` with `features` `[B, H, W, C]` (one frame) and `buffer`
    `[B, H, W, C // fold_div]` (the previous frame's first channels; zeros at the
    start of a stream) returns `(shifted, new_buffer)`. Run frame by frame it gives
    exactly `TemporalShift(mode="left")` on the whole clip, without looking ahead.
    """

    def __init__(self, fold_div=8, **kwargs):
        super().__init__(**kwargs)
        self.fold_div = int(fold_div)

    def initial_buffer(self, features):
        """Zeros `[B, H, W, C // fold_div]` for the first frame of a stream."""
        fold = features.shape[-1] // self.fold_div
        return ops.zeros_like(features[..., :fold])

    def call(self, features, buffer):
        fold = features.shape[-1] // self.fold_div
        if buffer.shape[-1] is not None and buffer.shape[-1] != fold:
            raise ValueError(
                f"{self.name}: buffer has {buffer.shape[-1]} channels, expected {fold} "
                f"(features shape {features.shape}, fold_div={self.fold_div})."
            )
        shifted = ops.concatenate([ops.cast(buffer, features.dtype), features[..., fold:]], axis=-1)
        return shifted, features[..., :fold]

    def compute_output_shape(self, features_shape, buffer_shape):
        return tuple(features_shape), tuple(features_shape[:-1]) + (features_shape[-1] // self.fold_div,)

    def get_config(self):
        return {**super().get_config(), "fold_div": self.fold_div}
