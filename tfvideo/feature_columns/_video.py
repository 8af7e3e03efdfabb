"""Video columns: raw frames -> normalized clip tensor; per-chunk feature sequences."""

import dataclasses

import tensorflow as tf

from feature_columns import _base
from tfvideo import data as tfv_data
from tfvideo.api._export import tf_export
from tfvideo.data import _samplers

_MODALITIES = {"rgb": 3, "flow": 2}


def _sampler_arg(key, sampler):
    if isinstance(sampler, dict):
        sampler = tfv_data.sampler_from_config(sampler)
    if not hasattr(sampler, "tf_indices"):
        raise _base.FeatureColumnError(f"video_column {key!r}: sampler {sampler!r} is not a tfvideo.data sampler.")
    if sampler.training:
        # In-graph sampling is the deterministic test-time rule; random training sampling
        # and augmentation belong to tfvideo.data.video_dataset.
        config = _samplers.sampler_to_config(sampler)
        config["training"] = False
        sampler = tfv_data.sampler_from_config(config)
    return sampler


def _preprocess_arg(size, preprocess):
    if preprocess is None:
        return tfv_data.PreprocessConfig(crop_size=size, resize_short=round(size * 8 / 7))
    if isinstance(preprocess, dict):
        preprocess = tfv_data.PreprocessConfig(**preprocess)
    return dataclasses.replace(preprocess, crop_size=size)


def _spec_args(key, clip_spec, sampler, preprocess, size):
    """(sampler, preprocess, size) of a `clip_spec=` argument; one that also has sampler= or
    preprocess=, or a size other than the spec's crop size, is refused."""
    if sampler is not None or preprocess is not None:
        raise _base.FeatureColumnError(f"video_column {key!r}: give clip_spec= or sampler=/preprocess=, not both.")
    try:
        spec = tfv_data.ClipSpec.from_config(clip_spec)
    except ValueError as e:
        raise _base.FeatureColumnError(f"video_column {key!r}: {e}") from None
    if size is not None and int(size) != spec.crop_size:
        raise _base.FeatureColumnError(f"video_column {key!r}: size={size} differs from the clip spec's "
                                       f"crop_size={spec.crop_size}.")
    return spec.sampler(training=False), spec.preprocess, spec.crop_size


@_base.register_column
class VideoColumn(_base.SequenceColumn):
    """See `video_column`."""

    def __init__(self, key, sampler=None, size=None, modality="rgb", preprocess=None, clip_spec=None):
        if not isinstance(key, str) or not key:
            raise _base.FeatureColumnError(f"video_column: key must be a non-empty string, got {key!r}.")
        if modality not in _MODALITIES:
            raise _base.FeatureColumnError(
                f"video_column {key!r}: modality {modality!r} is not one of {sorted(_MODALITIES)}."
            )
        if clip_spec is not None:
            sampler, preprocess, size = _spec_args(key, clip_spec, sampler, preprocess, size)
        elif sampler is None:
            raise _base.FeatureColumnError(f"video_column {key!r}: needs sampler= or clip_spec=.")
        self.key = key
        self.sampler = _sampler_arg(key, sampler)
        self.size = 224 if size is None else int(size)
        self.modality = modality
        self.preprocess = _preprocess_arg(self.size, preprocess)
        # The one in-graph test-time path (sample, gather, decode, preprocess_eval) is the spec's.
        self.clip_spec = tfv_data.ClipSpec(self.sampler, self.preprocess, modality)

    @property
    def name(self):
        return self.key

    @property
    def channels(self):
        return _MODALITIES[self.modality]

    @property
    def num_views(self):
        return self.sampler.num_views * self.preprocess.num_crops

    @property
    def output_shape(self):
        """Per example: [views, T, size, size, channels]."""
        return (self.num_views, self.sampler.clip_length, self.size, self.size, self.channels)

    def raw_specs(self, multivalent=()):
        # Serving takes encoded frames: string [B, T] (shorter videos padded with "").
        return {self.key: tf.TensorSpec([None, None], tf.string, name=self.key)}

    def _clip_from_jpegs(self, frames):
        """string [T] (trailing "" = padding) -> float32 [views, T', S, S, C]."""
        return self.clip_spec.clip_from_encoded(frames)

    def _clip_from_frames(self, frames):
        """uint8 [T, H, W, C] -> float32 [views, T', S, S, C]."""
        return self.clip_spec.clip_from_frames(frames)

    def transform_sequence(self, ctx):
        def run():
            raw = ctx.raw(self, self.key)
            if isinstance(raw, tf.SparseTensor):
                raw = tf.sparse.to_dense(raw)
            if isinstance(raw, tf.RaggedTensor):
                if raw.dtype != tf.string:
                    raise _base.FeatureColumnError(
                        f"video_column {self.key!r}: ragged input must be encoded frames (string)."
                    )
                raw = raw.to_tensor(default_value="")
            spec = tf.TensorSpec(self.output_shape, tf.float32)
            rank = raw.shape.rank
            if raw.dtype == tf.string and rank == 2:
                return tf.map_fn(self._clip_from_jpegs, raw, fn_output_signature=spec)
            if raw.dtype == tf.uint8 and rank == 5:
                return tf.map_fn(self._clip_from_frames, raw, fn_output_signature=spec)
            if raw.dtype.is_floating and rank == 6:
                # Already a preprocessed clip batch (tfvideo.data.video_dataset's "video").
                if tuple(raw.shape[2:]) != self.output_shape[1:] and None not in raw.shape[2:]:
                    raise _base.FeatureColumnError(
                        f"video_column {self.key!r}: preprocessed clips have shape {raw.shape}, "
                        f"expected [B, V, {', '.join(map(str, self.output_shape[1:]))}]."
                    )
                return tf.cast(raw, tf.float32)
            raise _base.FeatureColumnError(
                f"video_column {self.key!r}: raw feature {self.key!r} has dtype {raw.dtype.name} "
                f"and shape {raw.shape}; "
                "expected encoded JPEG frames string [B, T], uint8 frames [B, T, H, W, 3], "
                "or preprocessed float clips [B, V, T, S, S, C]."
            )

        return ctx.cached(self, "clip", run)

    def get_config(self):
        return {
            "key": self.key,
            "sampler": _samplers.sampler_to_config(self.sampler),
            "size": self.size,
            "modality": self.modality,
            "preprocess": dataclasses.asdict(self.preprocess),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        pre = config.get("preprocess")
        if isinstance(pre, dict):
            pre = dict(pre)
            for field in ("mean", "std", "flip_label_map"):
                if isinstance(pre.get(field), list):
                    pre[field] = tuple(pre[field])
            config["preprocess"] = pre
        return cls(**config)


@tf_export("tfvideo.feature_columns.video_column")
def video_column(key, sampler=None, size=None, modality="rgb", preprocess=None, clip_spec=None):
    """Raw video -> normalized clip tensor float32 `[B, views, T, size, size, C]`.

    Raw input per batch: encoded JPEG frames string `[B, T]` (shorter videos padded with
    trailing ""; also ragged), or decoded uint8 frames `[B, T, H, W, 3]`. The frames are
    sampled in the graph with the sampler's test-time rule (`tf_indices`; a training
    sampler is used with `training=False`), then `tfvideo.data.preprocess_eval`: resize the
    short side, centre (or 3/10) crop to `size`, normalize. A float input of rank 6 is taken
    as clips already preprocessed by `tfvideo.data.video_dataset` and passed through, so
    the same model trains on the tf.data pipeline and serves raw frames.

    Args:
      key: raw feature name.
      sampler: a `tfvideo.data` sampler or its config dict (`{"type": "segment", ...}`).
      size: crop side (default: the clip spec's crop size, else 224).
      modality: "rgb" (3 channels) or "flow" (x, y in the first two JPEG channels;
        normalized with the first two mean/std entries).
      preprocess: a `tfvideo.data.PreprocessConfig` (or dict); `crop_size` is set to
        `size`. Default: resize the short side to `round(size * 8 / 7)` (256 for 224).
      clip_spec: a `tfvideo.data.ClipSpec` (or its config dict), e.g. a preset's
        `tfvideo.models.default_clip_spec`, instead of `sampler` and `preprocess`.
    """
    return VideoColumn(key, sampler, size, modality, preprocess, clip_spec)


@_base.register_column
class FrameFeatureColumn(_base.SequenceColumn):
    """See `frame_feature_column`."""

    def __init__(self, key, dim, dtype="float32"):
        if not isinstance(key, str) or not key:
            raise _base.FeatureColumnError(f"frame_feature_column: key must be a non-empty string, got {key!r}.")
        dim = int(dim)
        if dim < 1:
            raise _base.FeatureColumnError(f"frame_feature_column {key!r}: dim must be >= 1.")
        self.key = key
        self.dim = dim
        self.dtype = tf.as_dtype(dtype).name

    @property
    def name(self):
        return self.key

    def raw_specs(self, multivalent=()):
        return {self.key: tf.TensorSpec([None, None, self.dim], self.dtype, name=self.key)}

    def transform_sequence(self, ctx):
        def run():
            raw = ctx.raw(self, self.key)
            if isinstance(raw, tf.RaggedTensor):
                raw = raw.to_tensor()
            if isinstance(raw, tf.SparseTensor):
                raise _base.FeatureColumnError(f"frame_feature_column {self.key!r}: sparse input is not supported.")
            _base.check_dtype(self, self.key, raw, "float")
            if raw.shape.rank != 3 or (raw.shape[-1] is not None and raw.shape[-1] != self.dim):
                raise _base.FeatureColumnError(
                    f"frame_feature_column {self.key!r}: raw feature {self.key!r} has shape {raw.shape}, "
                    f"expected [B, T, {self.dim}]."
                )
            return tf.cast(raw, tf.float32)

        return ctx.cached(self, "sequence", run)

    def get_config(self):
        return {"key": self.key, "dim": self.dim, "dtype": self.dtype}


@tf_export("tfvideo.feature_columns.frame_feature_column")
def frame_feature_column(key, dim, dtype="float32"):
    """Per-chunk feature sequences `[B, T, dim]` (e.g. extracted backbone features for online
    detection), passed to the model as float32 under the column's key."""
    return FrameFeatureColumn(key, dim, dtype)
