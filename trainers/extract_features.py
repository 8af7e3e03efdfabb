"""Extracts per-chunk features of every video in a list with a trained recognizer.

  tfvideo-extract-features --model_dir=/tmp/run --data=train.txt --output_dir=/tmp/features \\
      --chunk_size=6

Writes `{media_id}.npy` (float32 [num_chunks, D]) per video and `manifest.csv`
(media_id, label, num_frames, num_chunks, path) under --output_dir; the online detection
task trains on these.
"""

import csv
import os

import numpy as np
from absl import app, flags, logging

from tfvideo import _experiment, data
from tfvideo.data import _rawframes
from trainers import _cli, _data_formats, _features, _flags

FLAGS = flags.FLAGS
_flags.define(flags.DEFINE_string, "model_dir", None, "A model_dir written by tfvideo-train.")
_flags.define(flags.DEFINE_string, "data", None, "Annotation list of the videos (path label lines or CSV, or a --format layout).")
_data_formats.define_flags()  # --format, --video_root, --filename_tmpl, --start_index, --split.
_flags.define(flags.DEFINE_string, "output_dir", None, "Where the .npy files and manifest.csv go.")
_flags.define(flags.DEFINE_integer, "chunk_size", 6, "Consecutive frames per chunk.")
_flags.define(flags.DEFINE_integer, "frames_per_chunk", None,
              "Frames fed per chunk (default: the model's segments, which TSM's shift needs).")
_flags.define(flags.DEFINE_integer, "chunks_per_batch", 16, "Chunks per forward pass.")


def extract_all():
    """Returns the manifest rows written."""
    for name in ("model_dir", "data", "output_dir"):
        if not getattr(FLAGS, name):
            raise ValueError(f"--{name} is required.")
    _flags.check_ranges(FLAGS, {"chunk_size": ">=1", "frames_per_chunk": ">=1", "chunks_per_batch": ">=1"})
    model, config = _experiment.load_trained_model(FLAGS.model_dir)
    source, _ = _data_formats.resolve(FLAGS.data, "test", label_map=config.labels or None)
    records = data.read_dataset(source, label_map=config.labels or None).records
    frames_per_chunk = FLAGS.frames_per_chunk or config.build_sampler(training=False).clip_length
    extract = _features.feature_extractor(model)
    preprocess = config.build_preprocess(num_crops=1)
    rows = []
    for k, record in enumerate(records):
        frames = _rawframes.read_record_frames(record, np.arange(_rawframes.record_num_frames(record)))
        feats = _features.chunk_features(extract, frames, preprocess, FLAGS.chunk_size, frames_per_chunk,
                                         FLAGS.chunks_per_batch)
        path = os.path.join(FLAGS.output_dir, f"{record.media_id}.npy")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path, feats)
        rows.append([record.media_id, record.label, len(frames), len(feats), path])
        logging.info("[%d/%d] %s: %s", k + 1, len(records), record.media_id, feats.shape)
    with open(os.path.join(FLAGS.output_dir, "manifest.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["media_id", "label", "num_frames", "num_chunks", "path"])
        writer.writerows(rows)
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        rows = extract_all()
    except (ValueError, FileNotFoundError) as e:
        _cli.report("tfvideo-extract-features", e)
        return 2
    print(f"features of {len(rows)} videos in {FLAGS.output_dir}")
    return 0


def run():
    _cli.run(main, "tfvideo-extract-features")


if __name__ == "__main__":
    run()
