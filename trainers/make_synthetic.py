"""Writes the synthetic motion-direction video set (real .mp4 files) used by the demo.

  tfvideo-make-synthetic --output_dir=/tmp/shapes --train_per_class=24 --val_per_class=8
"""

from absl import app, flags, logging

from tfvideo import data
from trainers import _cli, _flags

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Directory to write videos/, train.txt, val.txt, label_map.txt.")
flags.DEFINE_integer("train_per_class", 24, "Training videos per class.")
flags.DEFINE_integer("val_per_class", 8, "Validation videos per class.")
flags.DEFINE_integer("num_frames", 24, "Frames per video.")
flags.DEFINE_integer("size", 64, "Frame side in pixels.")
flags.DEFINE_integer("fps", 12, "Frame rate.")
flags.DEFINE_integer("seed", 0, "Random seed.")


def main(argv):
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    _flags.check_ranges(FLAGS, {"train_per_class": ">=1", "val_per_class": ">=0", "num_frames": ">=1", "size": ">=8",
                                "fps": ">=1"})
    del argv
    out = data.make_moving_shapes_dataset(
        FLAGS.output_dir,
        videos_per_class=(FLAGS.train_per_class, FLAGS.val_per_class),
        num_frames=FLAGS.num_frames,
        size=FLAGS.size,
        fps=FLAGS.fps,
        seed=FLAGS.seed,
    )
    logging.info("wrote %s", out)
    print(f"synthetic videos: train list {out['train']}, val list {out['val']}, label map {out['label_map']}")


def run():
    _cli.run(main, "tfvideo-make-synthetic")


if __name__ == "__main__":
    run()
