"""Learning check: temporal models learn motion direction, TSN cannot.

Generates the synthetic motion-direction videos (real mp4 files whose 4 classes differ
only in the direction a square moves), trains each tiny preset briefly on the CPU and
prints its validation top-1 next to chance (25%). Expected: the temporal models
(TSM, TRN, TDN, TAM, I3D) >= 90%; TSN, which averages per-frame scores and so cannot
see order, near chance on the direction pairs (left/right, up/down).

    PYTHONPATH=$PWD python benchmarks/learning_check.py --epochs=15
"""

import os
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras
import numpy as np
from absl import app, flags

from tfvideo import data, models

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["tsm_tiny", "trn_tiny", "tdn_tiny", "tam_tiny", "i3d_tiny", "tsn_tiny"], "Presets to train.")
flags.DEFINE_integer("epochs", 15, "Training epochs per model.")
flags.DEFINE_integer("train_per_class", 24, "Training videos per class.")
flags.DEFINE_integer("val_per_class", 12, "Validation videos per class.")
flags.DEFINE_integer("batch_size", 8, "Clips per batch.")
flags.DEFINE_float("learning_rate", 2e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Seed of the data and of the training.")
flags.DEFINE_string("workdir", None, "Where the videos are written (default: a temporary directory).")


def sampler_for(model, training):
    """Segment sampling for the 2D recognizers, dense 8 x 3 for I3D."""
    if isinstance(model, models.I3D):
        return data.DenseSampler(clip_len=model.num_frames, frame_interval=3, training=training)
    return data.SegmentSampler(model.num_segments, new_length=model.frames_per_segment, training=training)


def datasets(lists, model, batch_size, seed):
    config = data.PreprocessConfig(crop_size=56, resize_short=64, flip=False)
    train = data.video_dataset(lists["train"], sampler_for(model, True), config, batch_size=batch_size, seed=seed)
    val = data.video_dataset(lists["val"], sampler_for(model, False), config, batch_size=batch_size)
    # Training clips are one view: [B, 1, T, H, W, C] -> [B, T, H, W, C].
    train = data.to_supervised(train).map(lambda v, y: (v[:, 0], y))
    return train, data.to_supervised(val)


def evaluate(model, val):
    correct = total = 0
    confusion = np.zeros((4, 4), int)
    for video, label in val:
        pred = np.argmax(keras.ops.convert_to_numpy(model(video, training=False)), axis=-1)
        label = label.numpy()
        correct += int((pred == label).sum())
        total += len(label)
        np.add.at(confusion, (label, pred), 1)
    return correct / total, confusion


def run_one(name, lists, args):
    keras.utils.set_random_seed(args.seed)
    model = models.get(name, num_classes=len(data.MOVING_SHAPES_CLASSES))
    train, val = datasets(lists, model, args.batch_size, args.seed)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(train, epochs=args.epochs, verbose=0)
    seconds = time.perf_counter() - start
    top1, confusion = evaluate(model, val)
    return top1, seconds, confusion


def main(argv):
    del argv
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")  # shuffle/steps notes of fit on tf.data
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="moving_shapes_")
    lists = data.make_moving_shapes_dataset(workdir, videos_per_class=(FLAGS.train_per_class, FLAGS.val_per_class),
                                            seed=FLAGS.seed)
    print(f"data: {workdir} ({FLAGS.train_per_class} train / {FLAGS.val_per_class} val videos per class, "
          f"4 classes, chance 25%)")
    print(f"{'model':<16}{'top-1':>8}{'train s':>10}  confusion (rows: {', '.join(data.MOVING_SHAPES_CLASSES)})")
    for name in FLAGS.models:
        top1, seconds, confusion = run_one(name, lists, FLAGS)
        rows = " ".join("".join(str(v) for v in row) if confusion.max() < 10 else "/".join(map(str, row))
                        for row in confusion)
        print(f"{name:<16}{100 * top1:>7.1f}%{seconds:>10.1f}  {rows}", flush=True)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
