"""Dataset preparation: video files + annotation list -> sharded SequenceExample TFRecords.

Each shard is written to a temporary name and renamed when complete, so a killed run
never leaves a partial shard under a final name, and a rerun skips finished shards.
Unreadable videos are reported by path and reason and skipped.

Videos are converted in worker processes (`workers` of them, one at least: the process
that calls `prepare_tfrecords` only coordinates) that never import TensorFlow: they
decode with PyAV, encode with OpenCV and write the records with `_record_io`, so a
worker holds ~100 MB of libraries instead of TensorFlow's ~885 MB, plus one decoded frame
and the JPEGs of the video being converted (benchmarks/prepare_memory.py: a 60 s 4K clip).

A shard set records what it was built from in `<name>-manifest.json` (a hash of the
records, the `PrepareConfig`, the label names and the shard count). A rerun with other
inputs, or one that finds another `-of-N` set of the same name, raises `ShardSetError`
saying what differs, unless `overwrite=True`, which removes the old shards first. Worker
processes exit when the process that started them dies, even by SIGKILL.

Optical flow (optional) is computed between consecutive stored frames (`flow_method`:
OpenCV's DIS by default, TV-L1 or Farneback; see `optical_flow`), clipped to
[-bound, bound] and quantized to 0..255 (as TSN/I3D store it), kept as one JPEG per
frame under `FLOW_KEY` with x in channel 0 and y in channel 1 (4:4:4 sampling, so the
channels do not bleed into each other). Flow frame i is the motion from frame i to
i + 1; the last frame repeats the previous flow so RGB and flow share frame indices.
"""

import concurrent.futures
import dataclasses
import glob
import hashlib
import json
import os
import pickle
import subprocess
import sys

import cv2
import numpy as np
from absl import logging

from tfvideo.api._export import export_constant, tf_export
from tfvideo.data import _lifeline, _rawframes, _record_io, _video_io

# What the coordinating side of this module needs from TensorFlow is imported where it is
# used (`_tf()`, `_tfrecord()`): the worker processes import this module and must not load it.


@tf_export("tfvideo.data.PrepareConfig")
@dataclasses.dataclass
class PrepareConfig:
    """Options of `prepare_tfrecords`.

    Attributes:
      resize_short: shorter side of stored frames (0 keeps the decoded size).
      fps: resample to this frame rate (0 keeps every frame).
      jpeg_quality: JPEG quality of stored frames.
      min_frames: videos with fewer frames are reported as too short and skipped.
      flow: also store optical flow under `FLOW_KEY`.
      flow_bound: flow is clipped to [-flow_bound, flow_bound] before quantizing.
      flow_method: "dis" (OpenCV's DIS, medium preset: the default, ~50x faster than
        TV-L1), "tvl1" (OpenCV contrib's Dual TV-L1, what TSN/I3D used) or "farneback".
        See `optical_flow` and benchmarks/flow_methods.py.
    """

    resize_short: int = 256
    fps: float = 0.0
    jpeg_quality: int = 90
    min_frames: int = 1
    flow: bool = False
    flow_bound: float = 20.0
    flow_method: str = "dis"

    def __post_init__(self):
        if self.flow_method not in FLOW_METHODS:
            raise ValueError(f"PrepareConfig.flow_method={self.flow_method!r} must be one of {', '.join(FLOW_METHODS)}.")
        checks = [("resize_short", self.resize_short >= 0, ">= 0 (0 keeps the decoded size)"),
                  ("fps", self.fps >= 0, ">= 0 (0 keeps every frame)"),
                  ("jpeg_quality", 1 <= self.jpeg_quality <= 100, "in [1, 100]"),
                  ("min_frames", self.min_frames >= 1, ">= 1"),
                  ("flow_bound", self.flow_bound > 0, "> 0")]
        for field, ok, rule in checks:
            if not ok:
                raise ValueError(f"PrepareConfig.{field}={getattr(self, field)} must be {rule}.")


def check_count(what, value):
    """`value` (None: the default) as an int >= 1; ValueError naming `what` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{what}={value!r} must be an integer >= 1 (or None for the default).")
    return int(value)


def shard_paths(output_dir, name, num_shards):
    """`<output_dir>/<name>-00000-of-000NN.tfrecord` for every shard."""
    return [os.path.join(output_dir, f"{name}-{i:05d}-of-{num_shards:05d}.tfrecord") for i in range(num_shards)]


def _resize_short(frame, size):
    """The frame with its shorter side scaled down to `size`; a shorter side already below it is kept
    (never upscaled: the training clip spec resizes as it needs)."""
    h, w = frame.shape[:2]
    if not size or min(h, w) <= size:
        return frame
    scale = size / min(h, w)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    return cv2.resize(frame, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def encode_jpeg(frame_rgb, quality, full_chroma=False):
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if full_chroma:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


@tf_export("tfvideo.data.quantize_flow")
def quantize_flow(flow, bound=20.0):
    """float flow [..., 2] -> uint8: clip to [-bound, bound], map linearly to 0..255."""
    flow = np.clip(np.asarray(flow, np.float32), -bound, bound)
    return np.round((flow + bound) * (255.0 / (2.0 * bound))).astype(np.uint8)


@tf_export("tfvideo.data.dequantize_flow")
def dequantize_flow(quantized, bound=20.0):
    """Inverse of `quantize_flow` (up to the 2 * bound / 255 step): float32 flow."""
    return np.asarray(quantized, np.float32) * (2.0 * bound / 255.0) - bound


def _farneback():
    class Farneback:  # OpenCV's defaults of the samples (pyramid 0.5 x 3, window 15, 3 iterations).
        def calc(self, prev, nxt, flow):
            return cv2.calcOpticalFlowFarneback(prev, nxt, flow, 0.5, 3, 15, 3, 5, 1.2, 0)

    return Farneback()


# name -> a factory of objects with `calc(prev_gray, next_gray, None) -> float32 [H, W, 2]`.
_FLOW_ALGORITHMS = {
    "dis": lambda: cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM),
    "tvl1": lambda: cv2.optflow.DualTVL1OpticalFlow_create(),
    "farneback": _farneback,
}
FLOW_METHODS = export_constant("tfvideo.data.FLOW_METHODS", tuple(_FLOW_ALGORITHMS))


@tf_export("tfvideo.data.optical_flow")
def optical_flow(frames_rgb, method="dis"):
    """Optical flow between consecutive frames: float32 [N, H, W, 2] (x, y in pixels) for N frames.

    Flow i moves frame i to frame i + 1; the last entry repeats the one before it
    (zeros for a one-frame video), so flow and RGB share frame indices.

    Args:
      frames_rgb: uint8 [N, H, W, 3] (or a list of frames).
      method: one of `FLOW_METHODS`: "dis" (OpenCV's DIS optical flow, medium preset),
        "tvl1" (OpenCV contrib's Dual TV-L1, TSN's and I3D's choice; ~1 s a 340x256 pair
        on one core) or "farneback". Speed and end-point error of each:
        benchmarks/flow_methods.py.
    """
    if method not in _FLOW_ALGORITHMS:
        raise ValueError(f"optical_flow: method={method!r} must be one of {', '.join(FLOW_METHODS)}.")
    pairs = _PairwiseFlow(method)
    flows = [flow for flow in map(pairs.add, frames_rgb) if flow is not None]
    flows.append(pairs.last())
    return np.stack(flows).astype(np.float32)


class _PairwiseFlow:
    """Flow between consecutive frames given one at a time, holding only the previous frame (grey)."""

    def __init__(self, method):
        self._algorithm = _FLOW_ALGORITHMS[method]()
        self._previous = self._last = None

    def add(self, frame_rgb):
        """float32 [H, W, 2]: the flow from the previous frame to this one; None for the first frame."""
        gray = cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2GRAY)
        flow = None
        if self._previous is not None:
            flow = self._last = self._algorithm.calc(self._previous, gray, None).astype(np.float32)
        self._previous = gray
        return flow

    def last(self):
        """The entry of the last frame: it repeats the one before (zeros for a one-frame video)."""
        return self._last if self._last is not None else np.zeros(self._previous.shape + (2,), np.float32)


@tf_export("tfvideo.data.tvl1_flow")
def tvl1_flow(frames_rgb):
    """TV-L1 optical flow between consecutive frames: `optical_flow(frames_rgb, "tvl1")`."""
    return optical_flow(frames_rgb, "tvl1")


def flow_image(flow, bound):
    """uint8 [H, W, 3] image of a flow field as prepare stores it: quantized x, y (`quantize_flow`) and zeros."""
    quantized = quantize_flow(flow, bound)
    return np.concatenate([quantized, np.zeros(quantized.shape[:-1] + (1,), np.uint8)], -1)


class _FlowEncoder:
    """Flow JPEGs of a frame stream (`config.flow_method`), as `optical_flow` + `quantize_flow` give
    for all frames at once, holding only the previous frame."""

    def __init__(self, config):
        self._config = config
        self._pairs = _PairwiseFlow(config.flow_method)
        self.jpegs = []

    def _encode(self, flow):
        return encode_jpeg(flow_image(flow, self._config.flow_bound), self._config.jpeg_quality, full_chroma=True)

    def add(self, frame_rgb):
        flow = self._pairs.add(frame_rgb)
        if flow is not None:
            self.jpegs.append(self._encode(flow))

    def finish(self):
        """The flow JPEGs, one per frame: the last repeats the one before (zeros for one frame)."""
        self.jpegs.append(self.jpegs[-1] if self.jpegs else self._encode(self._pairs.last()))
        return self.jpegs


def resample_indices(frame_times, duration, fps):
    """Display indices of the frames shown at times 0, 1/fps, 2/fps, ... < duration.

    By timestamps, so variable-frame-rate files are resampled by time, not as if their
    frames were evenly spaced: the frame shown at time t is the last one starting at or
    before it. `frame_times` [N] seconds from the first frame; `duration` to the end of
    the last frame.
    """
    count = max(1, int(np.floor(duration * fps + 1e-6)))
    targets = np.arange(count) / fps + 1e-6  # A tolerance for times that coincide up to rounding.
    return np.maximum(np.searchsorted(np.asarray(frame_times), targets, side="right") - 1, 0).astype(np.int64)


def _folder_frames(record, count):
    """A frame folder's frames one at a time (uint8 [H, W, 3]), as `VideoReader.iter_frames` gives a video's."""
    for index in range(count):
        yield _rawframes.read_frame_folder(record.path, [index], record.frame_template, record.start_index, count)[0]


def video_to_sequence_example(record, config, label_names=None, decode_threads=None, kept_size=None):
    """Decodes one video (file or frame folder) and returns its SequenceExample (raises VideoDecodeError).

    The example is a `_record_io.EncodedExample`: its `pieces` (or `SerializeToString()`)
    are the bytes `make_sequence_example(...).SerializeToString(deterministic=True)` gives.
    Frames stream: each is decoded, resized and JPEG-encoded before the next is decoded,
    so memory does not grow with the video's length (only its JPEGs are kept).
    `decode_threads`: FFmpeg decoding threads (None: one per core).
    kept_size: optional list; the video's path is appended when its shorter side was
    already below `config.resize_short` (its frames are stored at their size).
    """
    if _rawframes.is_frame_record(record):  # A folder has no timestamps: --fps does not apply (rate 0: unknown).
        count = _rawframes.probe_record(record).num_frames
        frames = _folder_frames(record, count)
        return _encode_frames(record, config, label_names, np.arange(count), 0.0, frames, kept_size)
    with _video_io.VideoReader(record.path, num_threads=decode_threads) as video:
        indices = np.arange(video.num_frames)
        frame_rate = video.info.fps
        if config.fps:
            indices = resample_indices(video.frame_times, video.duration, config.fps)
            frame_rate = config.fps
        return _encode_frames(record, config, label_names, indices, frame_rate, video.iter_frames(indices), kept_size)


def _encode_frames(record, config, label_names, indices, frame_rate, frames, kept_size):
    """The `EncodedExample` of `frames` (an iterator over the frames at `indices`): the JPEGs
    become pieces of the serialized record as they are (no copy of them is made)."""
    if len(indices) < config.min_frames:
        raise _video_io.VideoDecodeError(record.path, f"too short: {len(indices)} frames < min_frames={config.min_frames}")
    labels = list(record.labels) if record.labels is not None else record.label  # A multi-label entry: all its labels.
    ids = _record_io.as_list(labels)
    names = [label_names[k] for k in ids if label_names and 0 <= k < len(label_names)]
    label_string = None
    if names and len(names) == len(ids):
        label_string = names if record.labels is not None else names[0]
    jpegs = []
    flow = _FlowEncoder(config) if config.flow else None
    for position, frame in enumerate(frames):
        if position == 0 and kept_size is not None and config.resize_short and min(frame.shape[:2]) < config.resize_short:
            kept_size.append(record.path)
        frame = _resize_short(frame, config.resize_short)
        jpegs.append(encode_jpeg(frame, config.jpeg_quality))
        if flow is not None:
            flow.add(frame)
        del frame
    return _record_io.video_example(jpegs, labels, label_string, record.media_id, frame_rate,
                                    flow.finish() if flow is not None else None)


def _write_shard(path, records, config, label_names, decode_threads=None, kept_size=None):
    """Writes one shard atomically; returns the list of (path, reason) failures.

    kept_size: optional list collecting the videos stored at their own (smaller) size.
    """
    failures = []
    tmp = f"{path}{_TMP_MARK}{os.getpid()}"
    try:
        with _record_io.TFRecordFileWriter(tmp) as writer:
            for record in records:
                try:
                    example = video_to_sequence_example(record, config, label_names, decode_threads, kept_size)
                except _video_io.VideoDecodeError as e:
                    failures.append({"path": record.path, "reason": e.reason})
                    continue
                except Exception as e:  # noqa: BLE001 -- one bad video must not stop the run.
                    failures.append({"path": record.path, "reason": f"{type(e).__name__}: {e}"})
                    continue
                writer.write(example.pieces)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return failures


_MAX_DECODE_THREADS = 4
_TMP_MARK = _record_io.TMP_MARK  # One marker: match_shards must recognise what this writes.


def _failures_path(shard):
    return shard + ".failures.json"


def _tf():
    import tensorflow as tf  # noqa: PLC0415 -- coordinator only: workers must not load TensorFlow.

    return tf


def _tfrecord():
    from tfvideo.data import _tfrecord  # noqa: PLC0415 -- imports TensorFlow: coordinator only.

    return _tfrecord


def _run_shard(args):
    path, records, config, label_names, decode_threads = args
    kept_size = []
    failures = _write_shard(path, records, config, label_names, decode_threads, kept_size)
    # Written after the shard, atomically: its presence marks the shard complete, and it
    # keeps the shard's failures for a rerun that skips it.
    tmp = _failures_path(path) + _TMP_MARK + str(os.getpid())
    with open(tmp, "w") as f:
        json.dump(failures, f)
    os.replace(tmp, _failures_path(path))
    return path, len(records), failures, kept_size


def _remove_stale_temporaries(paths):
    """Deletes the half-written files a killed run left behind."""
    for path in paths:
        for stale in glob.glob(glob.escape(path) + _TMP_MARK + "*") + glob.glob(glob.escape(_failures_path(path)) + _TMP_MARK + "*"):
            logging.info("removing %s left by an interrupted run", stale)
            os.remove(stale)


def remove_completion_marker(path):
    """Forgets that shard `path` was completed by `prepare_tfrecords` (another writer replaced it)."""
    if os.path.exists(_failures_path(path)):
        os.remove(_failures_path(path))


def is_shard_complete(path):
    """A shard counts as finished once both it and its failures file exist."""
    return os.path.exists(path) and os.path.exists(_failures_path(path))


MANIFEST_SUFFIX = "-manifest.json"


def manifest_path(output_dir, name):
    """`<output_dir>/<name>-manifest.json`: what the shard set `name` was built from."""
    return os.path.join(output_dir, f"{name}{MANIFEST_SUFFIX}")


def _manifest_config(config):
    """The config as recorded; `flow_method` only with flow (a set without flow made before it existed matches)."""
    values = dataclasses.asdict(config)
    if not values["flow"]:
        values.pop("flow_method")
    return values


def build_manifest(records, num_shards, config, label_names):
    """The inputs of a preparation run as a JSON-able dict (records by content hash).

    A multi-label list (records with `labels`) is marked `"multi_label": true`: its records
    store all their labels, and tfvideo-train reads the shards as multi-label.
    """
    listing = json.dumps([[r.path, list(r.labels) if r.labels is not None else int(r.label), r.media_id]
                          for r in records], separators=(",", ":"))
    multi = {"multi_label": True} if any(r.labels is not None for r in records) else {}
    return {
        "version": 1,
        "videos": len(records),
        "records_sha256": hashlib.sha256(listing.encode()).hexdigest(),
        "config": _manifest_config(config),
        "label_names": list(label_names) if label_names else None,
        "num_shards": num_shards,
        **multi,
    }


def _label_map_difference(old, new):
    old, new = old or [], new or []
    if len(old) != len(new):
        return f"label map: {len(old)} classes before, {len(new)} now"
    i = next(i for i, (a, b) in enumerate(zip(old, new)) if a != b)
    return f"label map: class {i} was {old[i]!r}, now {new[i]!r}"


def manifest_differences(old, new):
    """What differs between two manifests, in words (empty when they match)."""
    diffs = []
    if old.get("records_sha256") != new["records_sha256"]:
        digest = str(old.get("records_sha256"))[:12]
        diffs.append(f"annotation list: {old.get('videos')} videos (sha256 {digest}...) before, "
                     f"{new['videos']} videos (sha256 {new['records_sha256'][:12]}...) now")
    old_config = old.get("config") or {}
    for key, value in new["config"].items():
        if old_config.get(key) != value:
            diffs.append(f"{key}: {old_config.get(key)!r} before, {value!r} now")
    if old.get("label_names") != new["label_names"]:
        diffs.append(_label_map_difference(old.get("label_names"), new["label_names"]))
    if old.get("num_shards") != new["num_shards"]:
        diffs.append(f"num_shards: {old.get('num_shards')} before, {new['num_shards']} now")
    return diffs


def shard_set_manifest(pattern):
    """The manifest of the shard set `pattern` matches (see `match_shards`); None if it has none."""
    tfrecord = _tfrecord()
    files = tfrecord.match_shards(pattern)
    key = tfrecord.shard_set_key(files[0]) if files else None
    path = key[0] + MANIFEST_SUFFIX if key else None
    return _read_manifest(path) if path and _tf().io.gfile.exists(path) else None


def _existing_sets(output_dir, name):
    """{set key: files} of the `<name>-NNNNN-of-MMMMM.tfrecord` shards in output_dir, any M."""
    prefix = os.path.join(output_dir, name)
    found = _tf().io.gfile.glob(glob.escape(prefix) + "-*-of-*.tfrecord")
    sets = _tfrecord().group_shard_sets([f for f in found if _TMP_MARK not in f])
    return {key: files for key, files in sets.items() if key is not None and key[0] == prefix}


def _read_manifest(path):
    tf = _tf()
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    except (OSError, ValueError, tf.errors.OpError):
        return None


def _remove_shard_sets(sets, output_dir, name):
    tf = _tf()
    for key, files in sets.items():
        for shard in files:
            for path in [shard, _failures_path(shard)]:
                if tf.io.gfile.exists(path):
                    tf.io.gfile.remove(path)
        logging.info("overwrite: removed %s", _tfrecord().describe_shard_set(key, files))
    for path in tf.io.gfile.glob(glob.escape(os.path.join(output_dir, name)) + "-*-of-*" + _TMP_MARK + "*"):
        tf.io.gfile.remove(path)


def claim_shard_set(output_dir, name, manifest, overwrite=False):
    """Makes `output_dir/name` the shard set of `manifest`, or raises `ShardSetError`.

    Without `overwrite`, shards of `name` built from the same inputs stay (a rerun skips
    the complete ones) and shards built from other inputs (another manifest, none
    recorded, or another shard count) are refused with a message naming what differs.
    With `overwrite`, every existing shard of `name` is removed (a forced rebuild, e.g.
    after re-encoding videos: their contents are not part of the manifest). Writes the
    manifest before any shard, so a killed run's shards are accounted for.
    """
    tf, tfrecord = _tf(), _tfrecord()
    sets = _existing_sets(output_dir, name)
    path = manifest_path(output_dir, name)
    problems = []
    if sets:
        old = _read_manifest(path) if tf.io.gfile.exists(path) else None
        if old is None:
            problems.append(f"no readable {os.path.basename(path)} records what they were built from")
        else:
            problems += manifest_differences(old, manifest)
        others = [key for key in sets if key[1] != manifest["num_shards"]]
        if others:
            problems.append("shard set" + ("s " if len(others) > 1 else " ")
                            + ", ".join(tfrecord.describe_shard_set(key, sets[key]) for key in others)
                            + " would be left beside the new one")
    where = os.path.join(output_dir, name)
    if problems and not overwrite:
        raise tfrecord.ShardSetError(
            f"{where}-*: the shards there do not match this run ({'; '.join(problems)}); rerun with --overwrite "
            "(overwrite=True) to replace them, or use another --name or --output_dir.")
    if sets and overwrite:
        logging.warning("%s-*: overwrite: removing the shards there (%s)", where, "; ".join(problems) or "same inputs")
        _remove_shard_sets(sets, output_dir, name)
    tf.io.gfile.makedirs(output_dir)
    tmp = path + _TMP_MARK + str(os.getpid())
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _default_num_shards(num_records, config, workers):
    """One shard per 100 videos; with flow (the costly part) at least one per worker, so that
    every worker process extracts flow (shards are the unit of parallel work)."""
    count = max(1, (num_records + 99) // 100)
    if config.flow:
        count = max(count, min(workers or os.cpu_count() or 1, num_records))
    return count


@tf_export("tfvideo.data.prepare_tfrecords")
def prepare_tfrecords(records, output_dir, name, num_shards=None, config=None, label_names=None, workers=None,
                      progress=None, overwrite=False):
    """Converts `VideoRecord`s into sharded TFRecords of SequenceExamples.

    A rerun with the same inputs skips the shards already complete. Shards of `name`
    built from other inputs (records, config, label names, shard count; see
    `<name>-manifest.json`; video contents are not compared) raise `ShardSetError`
    saying what differs, or with `overwrite=True` are removed and rebuilt, so no stale
    set is left for a `name-*` pattern to pick up.

    Args:
      records: list of `VideoRecord` (see `read_annotations`).
      output_dir, name: shards are `<output_dir>/<name>-NNNNN-of-MMMMM.tfrecord`.
      num_shards: default: one per 100 videos (with flow: at least one per worker).
      config: `PrepareConfig`.
      label_names: class names stored as `clip/label/string`.
      workers: processes converting shards in parallel (default: CPU count).
      progress: optional callable `(done_videos, total_videos)`, called after each shard.
      overwrite: remove every existing shard of `name` and rebuild, instead of skipping
        complete shards (same inputs) or refusing (other inputs).

    Returns:
      dict: `shards` (paths), `skipped_shards` (already complete), `failures`
      (list of {path, reason}), `written` (videos converted), `kept_size` (videos of this
      run whose shorter side was already below `resize_short`: stored at their size,
      never upscaled), `worker_peak_rss_mb` (the largest peak resident memory of the
      worker processes of this run, in MB; None if no shard was converted or it is unknown).
    """
    config = config or PrepareConfig()
    records = list(records)
    workers = check_count("workers", workers)
    num_shards = check_count("num_shards", num_shards) or _default_num_shards(len(records), config, workers)
    os.makedirs(output_dir, exist_ok=True)
    claim_shard_set(output_dir, name, build_manifest(records, num_shards, config, label_names), overwrite)
    paths = shard_paths(output_dir, name, num_shards)
    _remove_stale_temporaries(paths)
    jobs, skipped, failures, kept_size, worker_peak = [], [], [], [], None
    done = 0
    for i, path in enumerate(paths):
        shard_records = records[i::num_shards]
        if is_shard_complete(path):
            skipped.append(path)
            with open(_failures_path(path)) as f:
                failures.extend(json.load(f))
            done += len(shard_records)
            continue
        jobs.append([path, shard_records, config, label_names])
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    # The cores shared among the workers: FFmpeg's default, a thread per core in every worker,
    # holds a frame in flight per thread (4K: ~12 MB each) and oversubscribes the cores.
    decode_threads = max(1, min(_MAX_DECODE_THREADS, (os.cpu_count() or 1) // workers))
    jobs = [(*job, decode_threads) for job in jobs]
    if progress:
        progress(done, len(records))
    if jobs:
        # A thread per worker process: each waits for its process (started from it: see _lifeline).
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="prepare-worker") as pool:
            for path, count, shard_failures, shard_kept, peak_mb in pool.map(_run_in_worker, jobs):
                failures.extend(shard_failures)
                kept_size.extend(shard_kept)
                done += count
                worker_peak = max(worker_peak or 0, peak_mb) if peak_mb is not None else worker_peak
                logging.info("wrote %s", path)
                if progress:
                    progress(done, len(records))
    for failure in failures:
        logging.warning("skipped %s: %s", failure["path"], failure["reason"])
    return {"shards": paths, "skipped_shards": skipped, "failures": failures, "written": len(records) - len(failures),
            "kept_size": kept_size, "worker_peak_rss_mb": worker_peak}


# Set in the worker processes: `import tfvideo` and `tfvideo.data` then load no namespace
# (see tfvideo/__init__.py), so that importing this module does not load TensorFlow.
LIGHT_IMPORT_ENV = "TFVIDEO_LIGHT_IMPORT"
# A worker reads its sys.path, then its job, from stdin; it writes its result to stdout.
_WORKER_MAIN = ("import pickle, sys; sys.path[:] = pickle.load(sys.stdin.buffer); "
                "from tfvideo.data import _prepare; _prepare._worker_main()")


def _run_in_worker(job):
    """`_run_shard(job)` in a new worker process (without TensorFlow); raises what it raised."""
    payload = pickle.dumps(sys.path) + pickle.dumps((os.getpid(), job))
    env = {**os.environ, LIGHT_IMPORT_ENV: "1"}
    done = subprocess.run([sys.executable, "-c", _WORKER_MAIN], input=payload, stdout=subprocess.PIPE, env=env,
                          check=False)
    try:
        status, value, peak_mb = pickle.loads(done.stdout)
    except Exception:  # noqa: BLE001 -- no result: the process died (killed, out of memory, crashed).
        raise RuntimeError(f"the worker process converting {job[0]} ended with status {done.returncode} "
                           "before returning its result") from None
    if status == "error":
        raise value
    return (*value, peak_mb)


def _peak_rss_mb():
    """This process's peak resident memory (VmHWM) in MB; None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


def _worker_main():
    """A worker process: runs the job on stdin, writes `("ok", result, peak RSS)` or `("error", exception, peak RSS)`
    to stdout."""
    result = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # Whatever a library prints goes to stderr: stdout carries the result only.
    parent, job = pickle.load(sys.stdin.buffer)
    _lifeline.exit_with_parent(parent)
    try:
        answer = pickle.dumps(("ok", _run_shard(job), _peak_rss_mb()))
    except Exception as e:  # noqa: BLE001 -- handed to the coordinator, which raises it.
        try:
            answer = pickle.dumps(("error", e, _peak_rss_mb()))
        except Exception:  # noqa: BLE001 -- an exception that does not pickle: its words.
            answer = pickle.dumps(("error", RuntimeError(f"{type(e).__name__}: {e}"), _peak_rss_mb()))
    result.write(answer)
    result.close()
