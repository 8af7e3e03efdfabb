"""Fine-tuning proof: a converted PyTorch checkpoint is a better start than random weights.

1. Pretrains, in PyTorch, the TSM authors' network layout (ResNet-10 of width 16 with the
   residual shift, tests/models/torch_references.py) on one synthetic motion-direction set.
2. Saves it as the authors save checkpoints and converts it with
   `tfvideo.models.convert_checkpoint("tsm", ..., "tsm_tiny")`.
3. Fine-tunes on a second, independently generated set (other videos, same 4 directions) from
   the converted weights and from scratch (same seed, data order and optimizer), evaluating
   every --eval_every steps, and prints the steps each needs to reach --target top-1.

    PYTHONPATH=$PWD python benchmarks/finetune_from_converted.py
Needs torch (`pip install "tfvideo[torch]"`).
"""

import os
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras
import numpy as np
import torch
from absl import app, flags

from tests.models import torch_references as refs
from tfvideo import data, models

FLAGS = flags.FLAGS
flags.DEFINE_integer("pretrain_epochs", 8, "PyTorch pretraining epochs on the first set.")
flags.DEFINE_integer("max_steps", 150, "Fine-tuning steps at most.")
flags.DEFINE_integer("eval_every", 10, "Evaluate every this many fine-tuning steps.")
flags.DEFINE_float("target", 0.9, "Validation top-1 to reach.")
flags.DEFINE_integer("batch_size", 8, "Clips per batch.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (both phases).")
flags.DEFINE_integer("crop_size", 32, "Network input side (videos are 64x64, resized to crop_size + 8).")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_string("workdir", None, "Where videos and checkpoints go (default: a temporary directory).")

_SEGMENTS = 8


def _datasets(lists, batch_size, seed):
    config = data.PreprocessConfig(crop_size=FLAGS.crop_size, resize_short=FLAGS.crop_size + 8, flip=False)
    train = data.video_dataset(lists["train"], data.SegmentSampler(_SEGMENTS, training=True), config,
                               batch_size=batch_size, seed=seed)
    val = data.video_dataset(lists["val"], data.SegmentSampler(_SEGMENTS, training=False), config,
                             batch_size=batch_size)
    return data.to_supervised(train).map(lambda v, y: (v[:, 0], y)), data.to_supervised(val)


def _pretrain_torch(lists, path):
    torch.manual_seed(FLAGS.seed)
    net = refs.TSMAuthors(len(data.MOVING_SHAPES_CLASSES), _SEGMENTS, depth=10, width=16)
    optimizer = torch.optim.Adam(net.parameters(), lr=FLAGS.learning_rate)
    train, _ = _datasets(lists, FLAGS.batch_size, FLAGS.seed)
    net.train()
    for _ in range(FLAGS.pretrain_epochs):
        for video, label in train:
            logits = net(refs.to_torch_clip(video.numpy()))
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(label.numpy().astype("int64")))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"epoch": FLAGS.pretrain_epochs, "arch": "resnet10", "state_dict": state}, path)


def _top1(model, val):
    correct = total = 0
    for video, label in val:
        pred = np.argmax(keras.ops.convert_to_numpy(model(video[:, 0] if video.ndim == 6 else video)), -1)
        correct += int((pred == label.numpy()).sum())
        total += len(label)
    return correct / total


def _steps_to_target(model, lists):
    model.compile(optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    train, val = _datasets(lists, FLAGS.batch_size, FLAGS.seed)
    history, step = [], 0
    for video, label in train.repeat():
        model.train_on_batch(video, label)
        step += 1
        if step % FLAGS.eval_every == 0:
            top1 = _top1(model, val)
            history.append((step, top1))
            if top1 >= FLAGS.target or step >= FLAGS.max_steps:
                break
    reached = next((s for s, t in history if t >= FLAGS.target), None)
    return reached, history


def main(argv):
    del argv
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="finetune_")
    pre = data.make_moving_shapes_dataset(os.path.join(workdir, "pretrain"), videos_per_class=(24, 4), num_frames=16,
                                          size=64, seed=FLAGS.seed + 1)
    fine = data.make_moving_shapes_dataset(os.path.join(workdir, "finetune"), videos_per_class=(8, 12), num_frames=16,
                                           size=64, seed=FLAGS.seed + 2)
    path = os.path.join(workdir, "tsm_authors_r10.pth")
    start = time.perf_counter()
    if not os.path.exists(path):
        _pretrain_torch(pre, path)
    print(f"pretrained in PyTorch ({FLAGS.pretrain_epochs} epochs) in {time.perf_counter() - start:.0f} s")
    results = {}
    for name in ("converted", "scratch"):
        keras.utils.set_random_seed(FLAGS.seed)
        if name == "converted":
            model, report = models.convert_checkpoint("tsm", path, "tsm_tiny", num_classes=4, num_segments=_SEGMENTS)
            print(report.summary())
        else:
            model = models.get("tsm_tiny", 4, num_segments=_SEGMENTS)
        start = time.perf_counter()
        reached, history = _steps_to_target(model, fine)
        results[name] = reached
        curve = ", ".join(f"{s}:{t:.2f}" for s, t in history)
        print(f"{name:9s} steps to top-1 >= {FLAGS.target:.2f}: {reached or f'> {FLAGS.max_steps}'} "
              f"({time.perf_counter() - start:.0f} s) curve {curve}")
    if results["converted"] and results["scratch"]:
        print(f"ratio converted/scratch: {results['converted'] / results['scratch']:.2f}")


if __name__ == "__main__":
    app.run(main)
