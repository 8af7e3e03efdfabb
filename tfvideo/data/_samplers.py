"""Frame samplers: which frame indices a clip is made of.

A sampler maps `(num_frames, rng)` to an int64 array `[views, T]` of frame indices in
display order. Training samplers are random (one view); test samplers are deterministic
and may return several views (clips) that the model averages.
"""

import numbers

import numpy as np
import tensorflow as tf

from tfvideo.api._export import tf_export
from tfvideo.api._registry import Registry

_SHORT_POLICIES = ("loop", "repeat_last")


def _fit_short(indices, num_frames, policy):
    """Maps indices beyond the video's end back into it."""
    if policy == "loop":
        return np.mod(indices, num_frames)
    return np.minimum(indices, num_frames - 1)


def _tf_fit_short(indices, num_frames, policy):
    if policy == "loop":
        return tf.math.floormod(indices, num_frames)
    return tf.minimum(indices, num_frames - 1)


def _is_count(value):
    whole = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    return whole and not isinstance(value, bool) and value >= 1


def _check_arguments(sampler, training, short_policy, **counts):
    """The constructor checks every sampler shares: counts >= 1, one clip in training, policy."""
    name = type(sampler).__name__
    bad = [f"{key}={value!r}" for key, value in counts.items() if not _is_count(value)]
    if bad:
        raise ValueError(f"{name}: {', '.join(bad)}: {', '.join(counts)} must be integers >= 1.")
    if training and counts.get("num_clips", 1) != 1:
        raise ValueError(f"{name}: num_clips={counts['num_clips']} > 1 is a test-time option (training=True).")
    if short_policy not in _SHORT_POLICIES:
        raise ValueError(f"{name}: short_policy={short_policy!r} must be one of {_SHORT_POLICIES}.")


class _Sampler:
    training = False

    def __call__(self, num_frames, rng=None):
        num_frames = int(num_frames)
        if num_frames <= 0:
            raise ValueError(f"{type(self).__name__}: video has no frames (num_frames={num_frames}).")
        if self.training and rng is None:
            rng = np.random.default_rng()
        return self._sample(num_frames, rng).astype(np.int64)

    @property
    def num_views(self):
        return 1

    @property
    def clip_length(self):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    def tf_indices(self, num_frames):
        """The test-time indices computed with TensorFlow ops (for exported graphs).

        Equal to `self(num_frames)` for a sampler with `training=False`; int64 [views, T].
        """
        if self.training:
            raise ValueError(f"{type(self).__name__}.tf_indices is for test-time (training=False) samplers.")
        n = tf.cast(num_frames, tf.int64)
        tf.debugging.assert_positive(n, message=f"{type(self).__name__}: video has no frames")
        return self._tf_sample(n)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@tf_export("tfvideo.data.SegmentSampler")
class SegmentSampler(_Sampler):
    """TSN segment sampling: split the video into K equal segments, one snippet each.

    Training picks a uniformly random snippet start inside each segment; test takes the
    snippet at the segment's centre. `num_clips > 1` (test only) shifts the centre
    grid by `k / num_clips` of a segment for clip k, giving several views.
    Output shape: `[views, num_segments * new_length]`.
    """

    def __init__(self, num_segments=8, new_length=1, training=False, num_clips=1, short_policy="repeat_last"):
        _check_arguments(self, training, short_policy, num_segments=num_segments, new_length=new_length, num_clips=num_clips)
        self.num_segments = int(num_segments)
        self.new_length = int(new_length)
        self.training = bool(training)
        self.num_clips = int(num_clips)
        self.short_policy = short_policy

    @property
    def num_views(self):
        return self.num_clips

    @property
    def clip_length(self):
        return self.num_segments * self.new_length

    def _sample(self, n, rng):
        k, length = self.num_segments, self.new_length
        usable = max(n - length + 1, 1)  # Snippet starts that keep the snippet inside.
        segment = usable / k
        if self.training:
            lo = np.floor(np.arange(k) * segment)
            hi = np.maximum(np.floor(np.arange(1, k + 1) * segment), lo + 1)
            starts = lo + np.floor(rng.random(k) * (hi - lo))
            starts = starts[None]
        else:
            shifts = (np.arange(self.num_clips) + 0.5) / self.num_clips
            starts = np.floor((np.arange(k)[None] + shifts[:, None]) * segment)
        indices = starts[..., None] + np.arange(length)
        return _fit_short(indices.reshape(starts.shape[0], -1), n, self.short_policy)

    def _tf_sample(self, n):
        k, length = self.num_segments, self.new_length
        segment = tf.cast(tf.maximum(n - length + 1, 1), tf.float64) / k
        shifts = (np.arange(self.num_clips) + 0.5) / self.num_clips
        grid = tf.constant(np.arange(k)[None] + shifts[:, None], tf.float64)
        starts = tf.cast(tf.floor(grid * segment), tf.int64)
        indices = starts[..., None] + tf.range(length, dtype=tf.int64)
        return _tf_fit_short(tf.reshape(indices, [self.num_clips, k * length]), n, self.short_policy)

    def get_config(self):
        return {
            "num_segments": self.num_segments,
            "new_length": self.new_length,
            "training": self.training,
            "num_clips": self.num_clips,
            "short_policy": self.short_policy,
        }


@tf_export("tfvideo.data.DenseSampler")
class DenseSampler(_Sampler):
    """Dense sampling: `clip_len` frames every `frame_interval` frames (I3D/SlowFast).

    Training starts the clip uniformly at random where it fits; test takes `num_clips`
    clips with starts evenly spaced (linspace) over the video.
    Output shape: `[views, clip_len]`.
    """

    def __init__(self, clip_len=32, frame_interval=2, training=False, num_clips=1, short_policy="loop"):
        _check_arguments(self, training, short_policy, clip_len=clip_len, frame_interval=frame_interval, num_clips=num_clips)
        self.clip_len = int(clip_len)
        self.frame_interval = int(frame_interval)
        self.training = bool(training)
        self.num_clips = int(num_clips)
        self.short_policy = short_policy

    @property
    def num_views(self):
        return self.num_clips

    @property
    def clip_length(self):
        return self.clip_len

    def _sample(self, n, rng):
        span = (self.clip_len - 1) * self.frame_interval + 1
        room = max(n - span, 0)  # Last start that keeps the whole clip inside.
        if self.training:
            starts = np.array([rng.integers(0, room + 1)])
        elif self.num_clips == 1:
            starts = np.array([room // 2])
        else:
            starts = np.round(np.linspace(0, room, self.num_clips))
        indices = starts[:, None] + np.arange(self.clip_len) * self.frame_interval
        return _fit_short(indices, n, self.short_policy)

    def _tf_sample(self, n):
        span = (self.clip_len - 1) * self.frame_interval + 1
        room = tf.maximum(n - span, 0)
        if self.num_clips == 1:
            starts = tf.reshape(room // 2, [1])
        else:
            # Same rounding as NumPy's np.round (half to even) on the linspace grid.
            grid = tf.cast(room, tf.float64) * np.linspace(0.0, 1.0, self.num_clips)
            starts = tf.cast(tf.math.round(grid), tf.int64)
        offsets = tf.range(self.clip_len, dtype=tf.int64) * self.frame_interval
        return _tf_fit_short(starts[:, None] + offsets, n, self.short_policy)

    def get_config(self):
        return {
            "clip_len": self.clip_len,
            "frame_interval": self.frame_interval,
            "training": self.training,
            "num_clips": self.num_clips,
            "short_policy": self.short_policy,
        }


# type name -> sampler class. A registry: the only global state.
_SAMPLERS = Registry("sampler type")
_PROTOCOL = ("__call__", "get_config", "tf_indices")


@tf_export("tfvideo.data.register_sampler")
def register_sampler(name, cls, *, overwrite=False):
    """Registers a sampler class under `name`: `sampler_from_config({"type": name, **kwargs})` builds `cls(**kwargs)`.

    `cls` follows the samplers' protocol: `sampler(num_frames, rng)` -> int64 `[views, T]`
    frame indices, the `training`, `num_views` and `clip_length` attributes, `get_config()`
    (the constructor's kwargs, JSON-serialisable) and `tf_indices(num_frames)` (the test-time
    indices with TensorFlow ops, for exported graphs). A taken name is refused unless
    `overwrite=True`.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_sampler({name!r}): {cls!r} is not a class.")
    # Looked up in the class's own MRO: `type` would answer `__call__` for any class.
    missing = [m for m in _PROTOCOL if not any(callable(vars(k).get(m)) for k in cls.__mro__[:-1])]
    if missing:
        raise TypeError(f"register_sampler({name!r}): {cls.__name__} lacks {', '.join(missing)} "
                        f"(a sampler defines {', '.join(_PROTOCOL)}).")
    _SAMPLERS.register(name, cls, overwrite=overwrite)


register_sampler("segment", SegmentSampler)
register_sampler("dense", DenseSampler)


@tf_export("tfvideo.data.list_samplers")
def list_samplers():
    """Sorted sampler type names accepted by `sampler_from_config`."""
    return _SAMPLERS.names()


def sampler_class(kind):
    """The class registered under `kind`; ValueError listing the registered types."""
    return _SAMPLERS.get(kind)


@tf_export("tfvideo.data.sampler_from_config")
def sampler_from_config(config):
    """Builds a sampler from `{"type": "segment"|"dense"|<registered>, **kwargs}` (type defaults to segment)."""
    config = dict(config)
    kind = config.pop("type", "segment")
    return _SAMPLERS.get(kind)(**config)


def sampler_to_config(sampler):
    """`{"type": name, **sampler.get_config()}`, the inverse of `sampler_from_config`."""
    for name, cls in _SAMPLERS.items():
        if type(sampler) is cls:
            return {"type": name, **sampler.get_config()}
    raise ValueError(f"{type(sampler).__name__} is not a registered sampler class (tfvideo.data.register_sampler); "
                     f"registered: {', '.join(list_samplers())}.")
