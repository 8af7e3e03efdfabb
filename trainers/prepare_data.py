"""Converts videos + an annotation list into sharded SequenceExample TFRecords.

  tfvideo-prepare --annotations=train.txt --output_dir=tfrecords --name=train \
      --label_map=label_map.txt --num_shards=4 --resize_short=256 [--fps=12] [--flow]

A rerun with the same inputs skips the shards that are already complete. Shards of
--name built from other inputs (annotation list, label map, preparation flags or
--num_shards, as recorded in <output_dir>/<name>-manifest.json) are refused with a line
saying what differs, or replaced with --overwrite. `--beam` runs the same conversion
as an Apache Beam pipeline (`--beam_args="--runner=DataflowRunner ..."`; needs the
`beam` extra). Bad videos are reported by path and reason (and in
<output_dir>/<name>-report.json); the exit status is 0 when none were skipped, 3 when
some were, 2 for bad input (flags, the annotation list or label map, mismatching
shards), reported on one line.
"""

import json
import os
import shlex
import sys

from absl import app, flags
from tqdm import tqdm

from tfvideo import data
from trainers import _cli, _data_formats

FLAGS = flags.FLAGS
flags.DEFINE_string("annotations", None, "Annotation list: 'path label' lines or CSV with path,label, or a "
                    "dataset in its published layout (--format).")
_data_formats.define_flags()  # --format, --video_root, --split, --filename_tmpl, --start_index.
flags.DEFINE_enum("subset", "train", ["train", "test"], "HMDB51: which half of the split files to prepare.")
flags.DEFINE_string("label_map", None, "Class names, one per line (resolves class-name labels).")
flags.DEFINE_string("output_dir", None, "Where the shards are written.")
flags.DEFINE_string("name", "data", "Shard name prefix.")
flags.DEFINE_integer("num_shards", None, "Number of shards (default: one per 100 videos).", lower_bound=1)
flags.DEFINE_integer("resize_short", 256, "Shorter side of stored frames, scaled down to it; a video whose shorter "
                     "side is already smaller keeps its size (never upscaled); 0 keeps every size.", lower_bound=0)
flags.DEFINE_float("fps", 0.0, "Resample to this frame rate; 0 keeps every frame.", lower_bound=0.0)
flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality of stored frames.", lower_bound=1, upper_bound=100)
flags.DEFINE_integer("min_frames", 1, "Videos with fewer (stored) frames are reported as too short and skipped.",
                     lower_bound=1)
flags.DEFINE_boolean("flow", False, "Also store optical flow (--flow_method) as quantized x/y JPEG frames.")
flags.DEFINE_float("flow_bound", 20.0, "Flow is clipped to [-bound, bound] before quantizing to 0..255.")
flags.DEFINE_enum("flow_method", "dis", ["dis", "tvl1", "farneback"],
                  "Optical flow algorithm (OpenCV): dis (DIS, medium preset; ~50x faster than tvl1), tvl1 (Dual TV-L1, "
                  "TSN's and I3D's; about 1 s a 340x256 frame pair on one core) or farneback. With --flow and no "
                  "--num_shards there is at least one shard per worker, so --workers processes extract flow in parallel.")
flags.DEFINE_integer("workers", None, "Parallel worker processes of the local run (default: CPU count; with --beam "
                     "use --beam_args, e.g. --direct_num_workers).", lower_bound=1)
flags.DEFINE_boolean("overwrite", False, "Remove every existing shard of --name and rebuild (without it, shards "
                     "from the same inputs are kept and skipped, shards from other inputs or another --num_shards "
                     "refused). Video contents are not compared: use it after re-encoding videos.")
flags.DEFINE_boolean("progress", True, "Show a progress bar on stderr.")
flags.DEFINE_boolean("beam", False, "Run the conversion as an Apache Beam pipeline (the `beam` extra); same examples.")
flags.DEFINE_string("beam_args", "--runner=DirectRunner", "Beam pipeline options, shell-quoted (with --beam), e.g. "
                    "'--runner=DataflowRunner --project=p --region=r --temp_location=gs://b/tmp'.")

EXIT_SKIPPED = 3
EXIT_USAGE = 2


def _progress_bar(name):
    bar = None

    def update(done, total):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=name, unit="video", file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def summary_lines(name, result):
    """The human-readable summary: counts, then one line per skipped video."""
    head = (
        f"{name}: {result['written']} videos in {len(result['shards'])} shards "
        f"({len(result['skipped_shards'])} already complete), {len(result['failures'])} skipped"
    )
    lines = [head]
    kept = result.get("kept_size") or []
    if kept:
        lines.append(f"  {len(kept)} videos kept at their size (shorter side already below --resize_short="
                     f"{FLAGS.resize_short}; frames are never upscaled), e.g. {kept[0]}")
    lines += [f"  skipped {failure['path']}: {failure['reason']}" for failure in result["failures"]]
    missing = result.get("missing") or []
    if missing:
        lines.append(f"  {len(missing)} listed clips missing (not found under the video root; listed in the report):")
        lines += [f"  missing {m['path']} ({m['line']})" for m in missing[:20]]
        if len(missing) > 20:
            lines.append(f"  ... and {len(missing) - 20} more")
    return lines


class FlagError(ValueError):
    """A flag value that cannot work; the message names the flag."""


def _error(message):
    """A user error: one line on stderr, exit status 2."""
    print(f"tfvideo-prepare: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv):
    if not FLAGS.annotations:
        raise app.UsageError("--annotations is required")
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    del argv
    try:
        result = _prepare(data)
    except (FlagError, data.AnnotationError, data.ShardSetError) as e:
        return _error(str(e).replace("\n", " "))
    report = os.path.join(FLAGS.output_dir, f"{FLAGS.name}-report.json")
    with open(report, "w") as f:
        json.dump(result, f, indent=2)
    print("\n".join(summary_lines(FLAGS.name, result)))
    return EXIT_SKIPPED if result["failures"] else 0


def _prepare(data):
    """Reads the list and label map and runs the conversion; returns its result dict."""
    label_names = data.read_class_names(FLAGS.label_map) if FLAGS.label_map else None
    try:
        _, listing = _data_formats.resolve(FLAGS.annotations, FLAGS.subset, label_map=label_names)
    except data.AnnotationError:
        raise
    except ValueError as e:  # A frame template or option that cannot work.
        raise FlagError(str(e)) from None
    if listing is None:
        records, missing = data.read_annotations(FLAGS.annotations, FLAGS.video_root, label_names), []
    else:
        records, missing = listing.records, listing.missing
        label_names = label_names or listing.class_names
    try:
        config = data.PrepareConfig(
            resize_short=FLAGS.resize_short,
            fps=FLAGS.fps,
            jpeg_quality=FLAGS.jpeg_quality,
            min_frames=FLAGS.min_frames,
            flow=FLAGS.flow,
            flow_bound=FLAGS.flow_bound,
            flow_method=FLAGS.flow_method,
        )
    except ValueError as e:  # PrepareConfig's range checks, named by flag.
        raise FlagError(str(e).replace("PrepareConfig.", "--")) from None
    if FLAGS.beam:
        result = data.run_beam_prepare(records, FLAGS.output_dir, FLAGS.name, FLAGS.num_shards, config, label_names,
                                     shlex.split(FLAGS.beam_args), overwrite=FLAGS.overwrite)
    else:
        progress = _progress_bar(FLAGS.name) if FLAGS.progress else None
        result = data.prepare_tfrecords(records, FLAGS.output_dir, FLAGS.name, FLAGS.num_shards, config, label_names,
                                        FLAGS.workers, progress, overwrite=FLAGS.overwrite)
    # Listed clips not found (Kinetics: taken down from YouTube): counted and listed, not fatal.
    result["missing"] = [{"line": where, "path": path} for where, path in missing]
    return result


def run():
    _cli.run(main, "tfvideo-prepare", ranges={"num_shards": ">=1", "resize_short": ">=0", "fps": ">=0",
                                              "jpeg_quality": "[1,100]", "min_frames": ">=1", "flow_bound": ">0",
                                              "workers": ">=1"})


if __name__ == "__main__":
    run()
