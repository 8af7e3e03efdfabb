"""Dataset preparation: video files + annotation list -> sharded SequenceExample TFRecords.

Each shard is written to a temporary name and renamed when complete, so a killed run
never leaves a partial shard under a final name, and a rerun skips finished shards.
Unreadable videos are reported by path and reason and skipped.
"""

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os

import cv2
import numpy as np
import tensorflow as tf
from absl import logging

from tfvideo.api._export import tf_export
from tfvideo.data import _tfrecord, _video_io


@tf_export("tfvideo.data.PrepareConfig")
@dataclasses.dataclass
class PrepareConfig:
    """Options of `prepare_tfrecords`.

    Attributes:
      resize_short: shorter side of stored frames (0 keeps the decoded size).
      fps: resample to this frame rate (0 keeps every frame).
      jpeg_quality: JPEG quality of stored frames.
      min_frames: videos with fewer frames are reported as too short and skipped.
    """

    resize_short: int = 256
    fps: float = 0.0
    jpeg_quality: int = 90
    min_frames: int = 1


def shard_paths(output_dir, name, num_shards):
    """`<output_dir>/<name>-00000-of-000NN.tfrecord` for every shard."""
    return [os.path.join(output_dir, f"{name}-{i:05d}-of-{num_shards:05d}.tfrecord") for i in range(num_shards)]


def _resize_short(frame, size):
    h, w = frame.shape[:2]
    if not size or min(h, w) == size:
        return frame
    scale = size / min(h, w)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    return cv2.resize(frame, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def encode_jpeg(frame_rgb, quality):
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def video_to_sequence_example(record, config, label_names=None):
    """Decodes one video and returns its SequenceExample (raises VideoDecodeError)."""
    info = _video_io.probe_video(record.path)
    indices = np.arange(info.num_frames)
    frame_rate = info.fps
    if config.fps and info.fps and config.fps != info.fps:
        count = max(1, int(np.floor(info.num_frames * config.fps / info.fps)))
        indices = np.minimum(np.floor(np.arange(count) * info.fps / config.fps).astype(np.int64), info.num_frames - 1)
        frame_rate = config.fps
    if len(indices) < config.min_frames:
        raise _video_io.VideoDecodeError(record.path, f"too short: {len(indices)} frames < min_frames={config.min_frames}")
    frames = _video_io.read_frames(record.path, indices)
    jpegs = [encode_jpeg(_resize_short(f, config.resize_short), config.jpeg_quality) for f in frames]
    label_string = label_names[record.label] if label_names and 0 <= record.label < len(label_names) else None
    return _tfrecord.make_sequence_example(jpegs, record.label, label_string, record.media_id, frame_rate)


def _write_shard(path, records, config, label_names):
    """Writes one shard atomically; returns the list of (path, reason) failures."""
    failures = []
    tmp = f"{path}.tmp-{os.getpid()}"
    with tf.io.TFRecordWriter(tmp) as writer:
        for record in records:
            try:
                example = video_to_sequence_example(record, config, label_names)
            except _video_io.VideoDecodeError as e:
                failures.append({"path": record.path, "reason": e.reason})
                continue
            writer.write(example.SerializeToString())
    os.replace(tmp, path)
    return failures


def _failures_path(shard):
    return shard + ".failures.json"


def _run_shard(args):
    path, records, config, label_names = args
    failures = _write_shard(path, records, config, label_names)
    # Written after the shard so that a shard's failures survive a rerun that skips it.
    with open(_failures_path(path), "w") as f:
        json.dump(failures, f)
    return path, len(records), failures


@tf_export("tfvideo.data.prepare_tfrecords")
def prepare_tfrecords(records, output_dir, name, num_shards=None, config=None, label_names=None, workers=None, progress=None):
    """Converts `VideoRecord`s into sharded TFRecords of SequenceExamples.

    Args:
      records: list of `VideoRecord` (see `read_annotations`).
      output_dir, name: shards are `<output_dir>/<name>-NNNNN-of-MMMMM.tfrecord`.
      num_shards: default: one per 100 videos.
      config: `PrepareConfig`.
      label_names: class names stored as `clip/label/string`.
      workers: processes converting shards in parallel (default: CPU count).
      progress: optional callable `(done_videos, total_videos)`.

    Returns:
      dict: `shards` (paths), `skipped_shards` (already complete), `failures`
      (list of {path, reason}), `written` (videos converted).
    """
    config = config or PrepareConfig()
    num_shards = num_shards or max(1, (len(records) + 99) // 100)
    os.makedirs(output_dir, exist_ok=True)
    paths = shard_paths(output_dir, name, num_shards)
    jobs, skipped, failures = [], [], []
    done = 0
    for i, path in enumerate(paths):
        shard_records = records[i::num_shards]
        if os.path.exists(path) and os.path.exists(_failures_path(path)):
            skipped.append(path)
            with open(_failures_path(path)) as f:
                failures.extend(json.load(f))
            done += len(shard_records)
            continue
        jobs.append((path, shard_records, config, label_names))
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    if progress:
        progress(done, len(records))
    if jobs:
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) if workers > 1 else _InlineExecutor() as pool:
            for path, count, shard_failures in pool.map(_run_shard, jobs):
                failures.extend(shard_failures)
                done += count
                logging.info("wrote %s", path)
                if progress:
                    progress(done, len(records))
    for failure in failures:
        logging.warning("skipped %s: %s", failure["path"], failure["reason"])
    return {"shards": paths, "skipped_shards": skipped, "failures": failures, "written": len(records) - len(failures)}


class _InlineExecutor:
    """`map` in this process (one worker: no process start-up cost)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items):
        return map(fn, items)
