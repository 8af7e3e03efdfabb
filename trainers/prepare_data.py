"""Converts videos + an annotation list into sharded SequenceExample TFRecords.

  tfvideo-prepare --annotations=train.txt --output_dir=tfrecords --name=train \
      --label_map=label_map.txt --num_shards=4 --resize_short=256

Bad videos are reported by path and reason (and in <output_dir>/<name>-report.json);
the exit status is 0 when none were skipped, 3 when some were.
"""

import json
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("annotations", None, "Annotation list: 'path label' lines or CSV with path,label.")
flags.DEFINE_string("video_root", None, "Directory relative video paths are resolved against (default: the list's).")
flags.DEFINE_string("label_map", None, "Class names, one per line (resolves class-name labels).")
flags.DEFINE_string("output_dir", None, "Where the shards are written.")
flags.DEFINE_string("name", "data", "Shard name prefix.")
flags.DEFINE_integer("num_shards", None, "Number of shards (default: one per 100 videos).")
flags.DEFINE_integer("resize_short", 256, "Shorter side of stored frames; 0 keeps the original size.")
flags.DEFINE_float("fps", 0.0, "Resample to this frame rate; 0 keeps every frame.")
flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality of stored frames.")
flags.DEFINE_integer("workers", None, "Parallel worker processes (default: CPU count).")
flags.mark_flags_as_required(["annotations", "output_dir"])

EXIT_SKIPPED = 3


def main(argv):
    del argv
    from tfvideo import data

    label_names = data.read_label_map(FLAGS.label_map) if FLAGS.label_map else None
    records = data.read_annotations(FLAGS.annotations, FLAGS.video_root, label_names)
    config = data.PrepareConfig(resize_short=FLAGS.resize_short, fps=FLAGS.fps, jpeg_quality=FLAGS.jpeg_quality)

    def progress(done, total):
        print(f"\r[{FLAGS.name}] {done}/{total} videos", end="" if done < total else "\n", file=sys.stderr, flush=True)

    result = data.prepare_tfrecords(records, FLAGS.output_dir, FLAGS.name, FLAGS.num_shards, config, label_names, FLAGS.workers, progress)
    report = os.path.join(FLAGS.output_dir, f"{FLAGS.name}-report.json")
    with open(report, "w") as f:
        json.dump(result, f, indent=2)
    print(f"{FLAGS.name}: {result['written']} videos in {len(result['shards'])} shards "
          f"({len(result['skipped_shards'])} already complete), {len(result['failures'])} skipped")
    for failure in result["failures"]:
        print(f"  skipped {failure['path']}: {failure['reason']}")
    return EXIT_SKIPPED if result["failures"] else 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
