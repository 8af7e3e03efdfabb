"""`tfvideo.serving.LocalPredictor`: classify video files in-process, without a server.

From an exported SavedModel (a version directory, or a model base path whose highest
version is used) through its `jpeg_frames` or `frames` signature, or from a training
model_dir (config.json + model.keras) through the evaluation path. Frames are sampled as
the model expects, read from what the export or model_dir records:

* model_dir: the run's test-time sampler and preprocessing from config.json.
* SavedModel: the clip spec its `clip_spec` signature returns (written by
  `tfvideo-export`); an older export's `assets.extra/tfvideo_export.json` sampler. Exports
  made before either existed carry only the signature's frame count; a `SegmentSampler`
  filling it with `num_clips` clips is used then, and `fallback_reason` says so.
"""

import json
import os

import numpy as np
import tensorflow as tf

from tfvideo.api._export import tf_export
from tfvideo.data import _clip_spec, _samplers
from tfvideo.serving import _client, _fused

EXPORT_RECORD = os.path.join("assets.extra", "tfvideo_export.json")
LABELS_ASSET = os.path.join("assets", "labels.txt")
SIGNATURES = ("jpeg_frames", "frames")


def resolve_saved_model(path):
    """A SavedModel version directory, or the highest version under a model base path."""
    from tfvideo.export import _versions

    if not os.path.isdir(path):
        raise FileNotFoundError(f"--saved_model={path}: no such directory")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = _versions.list_versions(path)
    if not versions:
        raise FileNotFoundError(
            f"--saved_model={path}: neither a SavedModel (no saved_model.pb) nor a model base path with "
            "numeric version sub-directories holding one"
        )
    return os.path.join(path, str(versions[-1]))


def _check_num_clips(num_clips):
    if num_clips is not None and (int(num_clips) != num_clips or int(num_clips) < 1):
        raise ValueError(f"num_clips={num_clips} must be an integer >= 1")


@tf_export("tfvideo.serving.LocalPredictor")
class LocalPredictor:
    """Top-k classes of video files computed in this process.

    Build with `LocalPredictor.from_saved_model(path)` or `LocalPredictor.from_model_dir(dir)`;
    then `predict_video(path, top_k)` / `predict_videos(paths, top_k)` return
    `tfvideo.serving.VideoPrediction`s, as the server clients do.

    Attributes:
      source: the SavedModel version directory or the model_dir used.
      sampler: the test-time sampler picking each video's frames (None for a two-stream export,
        whose `fused` holds each stream's clip spec: see `tfvideo.serving._fused`).
      labels: class names (index k = class k).
      fallback_reason: None, or why the sampler was derived from the signature shape.
    """

    def __init__(self, source, sampler, labels, run, jpeg_quality=None, fallback_reason=None):
        self.source = source
        self.sampler = sampler
        self.labels = list(labels)
        self._run = run  # uint8 [V*T, H, W, 3] -> probabilities [K].
        self._jpeg_quality = jpeg_quality
        self.fallback_reason = fallback_reason
        self.fused = None  # A two-stream export's `_fused.FusedSpec` (then `sampler` is None).
        self._predict_path = None

    # --- constructors ----------------------------------------------------------------
    @classmethod
    def from_saved_model(cls, path, signature_name="jpeg_frames", num_clips=None, jpeg_quality=95):
        """An exported SavedModel's `jpeg_frames` (frames JPEG-encoded as a client sends them,
        so the numbers equal the served ones) or `frames` (decoded pixels as they are) signature.

        `num_clips`: None takes the export's; a number must equal the export's record (or,
        for an export without one, divide the signature's frame count).
        """
        _check_num_clips(num_clips)
        if signature_name not in SIGNATURES:
            raise ValueError(f"signature '{signature_name}': offline prediction uses {' or '.join(SIGNATURES)}")
        version_dir = resolve_saved_model(path)
        try:
            loaded = tf.saved_model.load(version_dir)
        except Exception as e:  # noqa: BLE001 -- protobuf, OS and TF errors alike; name the directory.
            raise ValueError(f"{version_dir}: cannot load the SavedModel: {type(e).__name__}: {e}") from e
        if signature_name not in loaded.signatures:
            raise ValueError(f"{version_dir} has no signature '{signature_name}'; it has "
                             f"{', '.join(sorted(loaded.signatures))}")
        function = loaded.signatures[signature_name]
        fused = _saved_fused_spec(loaded, version_dir)
        if fused is not None:
            return cls._fused(version_dir, loaded, function, signature_name, fused, num_clips)
        (name, spec), = function.structured_input_signature[1].items()
        total = spec.shape[1] if spec.shape.rank and spec.shape.rank >= 2 else None
        if not total:
            raise ValueError(f"{version_dir}: signature '{signature_name}' input '{name}' has no fixed frame count "
                             f"({spec.shape})")
        sampler, fallback = _recorded_sampler(version_dir, total, num_clips, _saved_clip_spec(loaded, version_dir))
        labels = _saved_model_labels(version_dir)

        def run(frames, _loaded=loaded):  # The default keeps the SavedModel's variables alive.
            if signature_name == "jpeg_frames":
                batch = tf.constant(np.array([_client.encode_jpeg_frames(frames, jpeg_quality)], dtype=object))
            else:
                batch = tf.constant(np.asarray(frames, np.uint8)[None])
            outputs = function(**{name: batch})
            return outputs["probabilities"].numpy()[0]

        return cls(version_dir, sampler, labels, run, jpeg_quality, fallback)

    @classmethod
    def _fused(cls, version_dir, loaded, function, signature_name, fused, num_clips):
        """A two-stream export: both streams' inputs made from each video (`_fused.video_inputs`)."""
        for name, spec in fused.specs.items():
            if num_clips is not None and int(num_clips) != spec.num_clips:
                raise ValueError(f"num_clips={num_clips}, but the export's {name} stream was made with "
                                 f"{spec.num_clips} clip(s) ({version_dir}: signature '{_client.CLIP_SPEC_SIGNATURE}')")
        labels = _saved_model_labels(version_dir)

        def predict_path(path, _loaded=loaded):  # The default keeps the SavedModel's variables alive.
            inputs = _fused.video_inputs(path, fused, signature_name)
            return function(**{k: tf.constant(v) for k, v in inputs.items()})["probabilities"].numpy()[0]

        predictor = cls(version_dir, None, labels, None)
        predictor._predict_path = predict_path
        predictor.fused = fused
        return predictor

    @classmethod
    def from_model_dir(cls, model_dir, num_clips=None, num_crops=1):
        """A training run's model.keras through the evaluation path: the run's test-time
        sampler and `preprocess_eval`, views averaged by the model (equal to the `frames`
        signature of its export)."""
        _check_num_clips(num_clips)
        from tfvideo import _experiment
        from tfvideo.data import _preprocess

        model, config = _experiment.load_trained_model(model_dir)
        if config.task != "recognition":
            raise ValueError(f"--model_dir={model_dir}: a {config.task} model; offline prediction classifies "
                             "whole videos with recognition models")
        sampler = config.build_sampler(training=False, num_clips=num_clips or 1)
        preprocess = config.build_preprocess(num_crops=num_crops)
        labels = list(config.labels or [])
        labels += [f"class_{k}" for k in range(len(labels), config.num_classes)]

        def run(frames):
            clips = np.asarray(frames).reshape((sampler.num_views, sampler.clip_length) + frames.shape[1:])
            video = _preprocess.preprocess_eval(tf.constant(clips), preprocess)
            logits = tf.cast(model(video[None], training=False), tf.float32)
            return tf.nn.softmax(logits, axis=-1).numpy()[0]

        return cls(model_dir, sampler, labels[: config.num_classes], run)

    # --- prediction ------------------------------------------------------------------
    def predict_video(self, path, top_k=5):
        """`VideoPrediction` of one file; `tfvideo.data.VideoDecodeError` if it cannot be read."""
        if int(top_k) < 1:
            raise ValueError(f"top_k={top_k} must be >= 1")
        if self._predict_path is not None:  # A two-stream export makes its inputs from the file itself.
            probabilities = self._predict_path(path)
        else:
            probabilities = self._run(_client.sample_video(path, self.sampler))
        return _client.top_k_prediction(path, probabilities, self.labels, min(int(top_k), len(self.labels)))

    def predict_videos(self, paths, top_k=5):
        return [self.predict_video(p, top_k) for p in paths]


def _saved_clip_spec(loaded, version_dir):
    """The `ClipSpec` the loaded SavedModel's `clip_spec` signature returns (None without one)."""
    if _client.CLIP_SPEC_SIGNATURE not in loaded.signatures:
        return None
    value = loaded.signatures[_client.CLIP_SPEC_SIGNATURE]()[_client.CLIP_SPEC_SIGNATURE].numpy()
    return _clip_spec.ClipSpec.from_json(value.decode("utf-8"),
                                         f"{version_dir}: signature '{_client.CLIP_SPEC_SIGNATURE}'")


def _saved_fused_spec(loaded, version_dir):
    """A two-stream export's `_fused.FusedSpec` (None for other exports)."""
    if _client.CLIP_SPEC_SIGNATURE not in loaded.signatures:
        return None
    value = loaded.signatures[_client.CLIP_SPEC_SIGNATURE]()[_client.CLIP_SPEC_SIGNATURE].numpy()
    return _fused.parse_json(value.decode("utf-8"), f"{version_dir}: signature '{_client.CLIP_SPEC_SIGNATURE}'")


def _recorded_sampler(version_dir, total, num_clips, spec=None):
    """(sampler, None) from the export's clip spec or record, or (fallback sampler, reason) without one."""
    record_path = os.path.join(version_dir, EXPORT_RECORD)
    if spec is not None:
        where = f"{version_dir}: signature '{_client.CLIP_SPEC_SIGNATURE}'"
        sampler = spec.sampler(training=False)
    elif os.path.exists(record_path):
        where = record_path
        try:
            with open(record_path) as f:
                config = json.load(f)["sampler"]
            sampler = _samplers.sampler_from_config(config)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{record_path}: unreadable export record: {e}") from e
    else:
        clips = 1 if num_clips is None else int(num_clips)
        if total % clips:
            raise ValueError(f"num_clips={clips} does not divide the signature's {total} frames")
        sampler = _samplers.SegmentSampler(num_segments=total // clips, num_clips=clips)
        reason = (f"{version_dir} records no clip spec (no '{_client.CLIP_SPEC_SIGNATURE}' signature, no "
                  f"{EXPORT_RECORD}: exported before they were written); using {sampler!r} from the signature's "
                  f"{total} frames")
        return sampler, reason
    if sampler.num_views * sampler.clip_length != total:
        raise ValueError(f"{where}: the recorded sampler gives {sampler.num_views}x{sampler.clip_length} "
                         f"frames but the signature takes {total}")
    if num_clips is not None and int(num_clips) != sampler.num_views:
        raise ValueError(f"num_clips={num_clips}, but the export was made with {sampler.num_views} clip(s) ({where})")
    return sampler, None


def _saved_model_labels(version_dir):
    """Class names from the export's labels asset (line k = class k)."""
    path = os.path.join(version_dir, LABELS_ASSET)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    raise FileNotFoundError(f"{version_dir}: no {LABELS_ASSET} (not a tfvideo export?)")
