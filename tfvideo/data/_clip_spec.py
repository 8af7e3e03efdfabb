"""`tfvideo.data.ClipSpec`: how a clip is made from a video, in one serialisable object.

A clip spec is the sampler configuration (segment or dense sampling, test-time clips),
the spatial preprocessing (`PreprocessConfig`, test-time crops included) and the
modality. The same object drives the training pipeline (`spec.sampler(training=True)`,
`spec.preprocess`), evaluation, the SavedModel signatures and `video_column`; its JSON is
written in a model_dir's config.json (`clip`) and inside the export (the `clip_spec`
signature and `assets.extra/clip_spec.json`), so predictors read how to sample instead
of guessing.
"""

import dataclasses
import json

import tensorflow as tf

from tfvideo.api._export import tf_export
from tfvideo.data import _decode, _preprocess, _samplers

# The in-graph test-time path takes encoded frames of these modalities; channels per frame.
_GRAPH_CHANNELS = {"rgb": 3, "flow": 2}
_TUPLE_FIELDS = ("mean", "std", "flip_label_map")


def _sampler_config(sampler):
    """A sampler, or its config dict -> the normalised dict without `training` (set per use)."""
    if isinstance(sampler, dict):
        config = dict(sampler)
        kind = config.get("type", "segment")
        if kind not in _samplers.list_samplers():
            raise ValueError(f"ClipSpec.sampler: type={kind!r} is not one of {_samplers.list_samplers()}.")
        known = {"type", *_samplers.sampler_class(kind)().get_config()}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"ClipSpec.sampler: {kind} sampler has no field {', '.join(unknown)} "
                             f"(fields: {', '.join(sorted(known - {'type'}))}).")
        try:
            config = _samplers.sampler_to_config(_samplers.sampler_from_config({**config, "training": False}))
        except ValueError as e:
            raise ValueError(f"ClipSpec.sampler: {e}") from None
    elif hasattr(sampler, "tf_indices") and hasattr(sampler, "get_config"):
        try:
            config = _samplers.sampler_to_config(sampler)
        except ValueError as e:
            raise ValueError(f"ClipSpec.sampler: {e}") from None
    else:
        raise ValueError(f"ClipSpec.sampler: {sampler!r} is not a tfvideo.data sampler or its config dict.")
    config.pop("training", None)
    return config


def _preprocess_config(preprocess):
    if preprocess is None:
        return _preprocess.PreprocessConfig()
    if isinstance(preprocess, _preprocess.PreprocessConfig):
        return dataclasses.replace(preprocess)  # A copy: the spec never shares mutable state.
    if isinstance(preprocess, dict):
        fields = {f.name for f in dataclasses.fields(_preprocess.PreprocessConfig)}
        unknown = sorted(set(preprocess) - fields)
        if unknown:
            raise ValueError(f"ClipSpec.preprocess: PreprocessConfig has no field {', '.join(unknown)}.")
        values = {k: tuple(v) if k in _TUPLE_FIELDS and isinstance(v, list) else v for k, v in preprocess.items()}
        return _preprocess.PreprocessConfig(**values)
    raise ValueError(f"ClipSpec.preprocess: {preprocess!r} is not a tfvideo.data.PreprocessConfig or its dict.")


@tf_export("tfvideo.data.ClipSpec")
class ClipSpec:
    """How a clip is made from a video: sampler + preprocessing + modality (immutable).

    Args:
      sampler: a `SegmentSampler` / `DenseSampler` or its config dict
        (`{"type": "segment"|"dense", ...}`); its `training` flag is ignored (set per use
        by `sampler(training)`), its `num_clips` is the test-time clip count.
      preprocess: a `PreprocessConfig` or its dict (default: its defaults); `num_crops` is
        the test-time crop count.
      modality: one of `tfvideo.data` modalities ("rgb", "rgb_diff", "flow", "rgb+flow").

    A test-time clip has `num_views = num_clips * num_crops` views of `clip_length` frames:
    float32 `[num_views, clip_length, crop_size, crop_size, channels]`.
    """

    __slots__ = ("_sampler", "_preprocess", "_modality")

    def __init__(self, sampler=None, preprocess=None, modality="rgb"):
        if modality not in _preprocess.MODALITIES:
            raise ValueError(f"ClipSpec.modality={modality!r} is not one of {', '.join(_preprocess.MODALITIES)}.")
        object.__setattr__(self, "_sampler", _sampler_config({"type": "segment"} if sampler is None else sampler))
        object.__setattr__(self, "_preprocess", _preprocess_config(preprocess))
        object.__setattr__(self, "_modality", modality)

    def __setattr__(self, name, value):
        raise AttributeError(f"ClipSpec is immutable (setting {name!r}); use spec.replace(...).")

    # --- what the spec holds ---------------------------------------------------------
    @property
    def sampler_config(self):
        """The sampler's config dict (`{"type": ..., ...}`, without `training`); a copy."""
        return dict(self._sampler)

    @property
    def preprocess(self):
        """The `PreprocessConfig` (a copy)."""
        return dataclasses.replace(self._preprocess)

    @property
    def modality(self):
        return self._modality

    @property
    def num_clips(self):
        """Test-time clips per video (a registered sampler without `num_clips`: its views)."""
        if "num_clips" in self._sampler:
            return self._sampler["num_clips"]
        return self.sampler(training=False).num_views

    @property
    def num_crops(self):
        return self._preprocess.num_crops

    @property
    def num_views(self):
        """Test-time views per video: clips x crops."""
        return self.num_clips * self.num_crops

    @property
    def clip_length(self):
        """Frames per clip (T)."""
        return self.sampler(training=False).clip_length

    @property
    def crop_size(self):
        return self._preprocess.crop_size

    def sampler(self, training, num_clips=None):
        """The sampler: random with `training=True` (one clip), else the test-time rule with
        `num_clips` clips (None: the spec's)."""
        config = dict(self._sampler, training=bool(training))
        if "num_clips" not in config:  # A registered sampler without clip counts: its own views.
            if num_clips not in (None, 1):
                raise ValueError(f"ClipSpec.sampler: {config['type']} sampler takes no num_clips (asked {num_clips}).")
        elif training:
            config["num_clips"] = 1
        elif num_clips is not None:
            config["num_clips"] = num_clips
        try:
            return _samplers.sampler_from_config(config)
        except ValueError as e:
            raise ValueError(f"ClipSpec.sampler: {e}") from None

    def replace(self, sampler=None, preprocess=None, modality=None, num_clips=None, num_crops=None, **fields):
        """A new spec with some parts changed.

        `sampler` / `preprocess` / `modality` replace those parts; `num_clips` and
        sampler fields given by name (`num_segments=16`, `frame_interval=1`) update the
        sampler; `num_crops` and PreprocessConfig fields by name (`crop_size=112`) update
        the preprocessing.
        """
        sampler_config = _sampler_config(sampler) if sampler is not None else dict(self._sampler)
        pre = dataclasses.asdict(_preprocess_config(preprocess) if preprocess is not None else self._preprocess)
        pre_fields = {f.name for f in dataclasses.fields(_preprocess.PreprocessConfig)}
        if num_clips is not None:
            sampler_config["num_clips"] = num_clips
        if num_crops is not None:
            pre["num_crops"] = num_crops
        for key, value in fields.items():
            if key in pre_fields:
                pre[key] = value
            else:
                sampler_config[key] = value  # Unknown names are reported by _sampler_config.
        return ClipSpec(sampler_config, pre, self._modality if modality is None else modality)

    # --- serialisation ---------------------------------------------------------------
    def get_config(self):
        """A JSON-ready dict: {"sampler": {...}, "preprocess": {...}, "modality": ...}."""
        pre = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self._preprocess).items()}
        return {"sampler": dict(self._sampler), "preprocess": pre, "modality": self._modality}

    @classmethod
    def from_config(cls, config):
        if isinstance(config, ClipSpec):
            return config
        if not isinstance(config, dict):
            raise ValueError(f"ClipSpec.from_config: expected a dict, got {type(config).__name__}.")
        unknown = sorted(set(config) - {"sampler", "preprocess", "modality"})
        if unknown:
            raise ValueError(f"ClipSpec.from_config: unknown field {', '.join(unknown)} "
                             "(fields: sampler, preprocess, modality).")
        return cls(config.get("sampler"), config.get("preprocess"), config.get("modality", "rgb"))

    def to_json(self):
        return json.dumps(self.get_config(), sort_keys=True)

    @classmethod
    def from_json(cls, text, where="clip spec"):
        """The spec of `to_json()`'s text; ValueError naming `where` when it is not one."""
        try:
            config = json.loads(text)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: not JSON: {e}") from None
        try:
            return cls.from_config(config)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def __eq__(self, other):
        return isinstance(other, ClipSpec) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(self.to_json())

    def __repr__(self):
        sampler = self.sampler(training=False)
        pre = self._preprocess
        return (f"ClipSpec({sampler!r}, crop_size={pre.crop_size}, resize_short={pre.resize_short}, "
                f"num_crops={pre.num_crops}, modality={self._modality!r})")

    def describe(self):
        """One line for logs: 'dense clip_len=8 frame_interval=2, 1 clip x 1 crop of 8 frames at 112 px'."""
        fields = " ".join(f"{k}={v}" for k, v in self._sampler.items() if k not in ("type", "num_clips"))
        return (f"{self._sampler['type']} {fields}, {self.num_clips} clip(s) x {self.num_crops} crop(s) of "
                f"{self.clip_length} frames at {self.crop_size} px ({self._modality}; short side "
                f"{self._preprocess.resize_short or 'kept'})")

    # --- the test-time path in the graph ---------------------------------------------
    def preprocess_frames(self, frames):
        """Sampled frames uint8 [views * T, H, W, C] (clip-major) or [views, T, H, W, C]
        -> float32 [views * num_crops, T, S, S, C'] with `tfvideo.data.preprocess_eval`."""
        channels = _GRAPH_CHANNELS.get(self._modality)
        if channels is None:
            raise ValueError(f"ClipSpec.modality={self._modality!r}: the in-graph test-time path takes "
                             f"{' or '.join(_GRAPH_CHANNELS)} frames.")
        shape = tf.shape(frames)
        clips = tf.reshape(frames, tf.concat([[self.num_clips, self.clip_length], shape[-3:]], 0))
        config = self._preprocess
        if channels == 2:  # Flow: x, y in the first two channels, normalised as in training.
            video = _preprocess.normalize_flow(_preprocess.eval_spatial(clips[..., :2], config), config)
            return tf.ensure_shape(video, [None, None, config.crop_size, config.crop_size, 2])
        return _preprocess.preprocess_eval(clips, config)

    def clip_from_encoded(self, encoded):
        """Encoded (JPEG/PNG) frames of a whole video string [N] -> float32 [views, T, S, S, C].

        Trailing "" entries are padding (a batch of videos of different lengths); the
        test-time sampler (`tf_indices`) picks the frames among the others, only those are
        decoded, then `preprocess_frames`.
        """
        num_frames = tf.reduce_sum(tf.cast(tf.strings.length(encoded) > 0, tf.int64))
        indices = self.sampler(training=False).tf_indices(num_frames)  # int64 [clips, T]
        return self.preprocess_frames(_decode.decode_encoded(encoded, indices, 3))

    def clip_from_frames(self, frames):
        """Decoded frames of a whole video uint8 [N, H, W, C] -> float32 [views, T, S, S, C]."""
        indices = self.sampler(training=False).tf_indices(tf.shape(frames, out_type=tf.int64)[0])
        return self.preprocess_frames(tf.gather(frames, tf.reshape(indices, [-1])))

