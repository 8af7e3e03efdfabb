"""TSM-R50 8x224 forward and SGD train step: tfvideo (TensorFlow) vs MMAction2 1.2.0 (PyTorch).

Both sides are built as a new user builds them and run on the same number of threads
(`--threads`, default 2: TensorFlow intra-op = threads and inter-op = 1 set through
`tf.config.threading`, PyTorch `torch.set_num_threads(threads)` and
`torch.set_num_interop_threads(1)`):
- tfvideo: `tfvideo.models.get("tsm_r50", num_classes=400)`, compiled with
  `keras.optimizers.SGD(0.01, momentum=0.9)` and sparse cross-entropy on logits;
  forward = `predict_on_batch`, train step = `train_on_batch` (`--jit_compile` as
  `model.compile(jit_compile=...)`, "auto" being Keras' default: no XLA for this model).
- MMAction2: its `_base_/models/tsm_r50.py` config (Recognizer2D, ResNetTSM depth 50,
  8 segments, shift_div 8, TSMHead, 400 classes, dropout 0.5), `torch.optim.SGD(lr=0.01,
  momentum=0.9)`; forward = `model(x, mode="tensor", stage="head")` under `eval()` and
  `torch.no_grad()`, train step = `model(x, samples, mode="loss")` (TSMHead's
  cross-entropy), `backward()`, `step()` under `train()`.
Each side runs in its own process, so one side's idle thread pools do not compete with the
other's. Inputs are the same normalised random clips on both sides (NHWC for TensorFlow, NCHW for
PyTorch). Each round times, in turns, `--steps` forward calls of batch `--forward_batch`
and `--steps` train steps of batch `--batch` on each side (the side going first alternates
every round), after `--warmup` untimed calls of each. Printed: per-call medians, spread
(min-max over all timed calls), and tfvideo/PyTorch ratios of the medians (below 1: tfvideo
is faster) with the range of the per-round ratios, and the load average before and after.

    PYTHONPATH=$PWD python benchmarks/tsm_vs_pytorch.py                       # 8x224, 5 rounds
    PYTHONPATH=$PWD python benchmarks/tsm_vs_pytorch.py --size=112 --rounds=2 --steps=1  # quick

Needs torch and mmaction2 1.2.0 (+mmengine, mmcv-lite) as scripts/test installs them.
"""

import logging
import multiprocessing
import os
import time
import types
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from absl import app, flags

from tests.models.mmaction2_import import import_mmaction

FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 5, "Timed rounds (each: forward and train turns of both sides).", lower_bound=1)
flags.DEFINE_integer("steps", 2, "Timed calls per turn.", lower_bound=1)
flags.DEFINE_integer("warmup", 2, "Untimed calls of each kind and side before the first round.", lower_bound=1)
flags.DEFINE_integer("batch", 4, "Clips per train step.", lower_bound=1)
flags.DEFINE_integer("forward_batch", 1, "Clips per forward call.", lower_bound=1)
flags.DEFINE_integer("size", 224, "Frame height and width.", lower_bound=32)
flags.DEFINE_integer("segments", 8, "Frames per clip (TSM segments).", lower_bound=2)
flags.DEFINE_integer("num_classes", 400, "Classifier outputs.", lower_bound=2)
flags.DEFINE_integer("threads", 2, "Intra-op threads on both sides (inter-op: 1).", lower_bound=1)
flags.DEFINE_enum("jit_compile", "auto", ["auto", "on", "off"], "tfvideo's model.compile(jit_compile=...).")
flags.DEFINE_list("sides", ["tfvideo", "pytorch"], "Sides to time (ratios need both).")


def load_average():
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


class TfvideoSide:
    name = "tfvideo"

    def __init__(self, cfg, rng):
        import keras
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.get_logger().setLevel("ERROR")
        from tfvideo import models

        keras.utils.set_random_seed(0)
        self.model = models.get("tsm_r50", num_classes=cfg.num_classes, num_segments=cfg.segments)
        jit = {"auto": "auto", "on": True, "off": False}[cfg.jit_compile]
        self.model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
        self.forward_x, self.train_x, self.train_y = _inputs(cfg, rng)
        self.description = f"tfvideo from {os.path.dirname(models.__file__)[:-len('/models')]}, TF {tf.__version__}"

    def forward(self):
        return np.asarray(self.model.predict_on_batch(self.forward_x))

    def train(self):
        return float(self.model.train_on_batch(self.train_x, self.train_y))


class PytorchSide:
    name = "pytorch"

    def __init__(self, cfg, rng):
        import torch

        torch.set_num_threads(cfg.threads)
        torch.set_num_interop_threads(1)
        torch.manual_seed(0)
        import mmaction
        from mmaction.structures import ActionDataSample

        self.torch = torch
        self.model = _mmaction_tsm_r50(cfg)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        forward_x, train_x, train_y = _inputs(cfg, rng)
        to_nchw = (0, 1, 4, 2, 3)  # [B, T, H, W, C] -> [B, T, C, H, W], as MMAction2's 2D recognizers read clips.
        self.forward_x = torch.from_numpy(np.ascontiguousarray(forward_x.transpose(to_nchw)))
        self.train_x = torch.from_numpy(np.ascontiguousarray(train_x.transpose(to_nchw)))
        self.samples = [ActionDataSample().set_gt_label(int(label)) for label in train_y]
        self.description = f"MMAction2 {mmaction.__version__}, torch {torch.__version__}"

    def forward(self):
        self.model.eval()
        with self.torch.no_grad():
            return self.model(self.forward_x, mode="tensor", stage="head").numpy()

    def train(self):
        self.model.train()
        self.optimizer.zero_grad()
        loss = self.model(self.train_x, self.samples, mode="loss")["loss_cls"]
        loss.backward()
        self.optimizer.step()
        return loss.item()


def _inputs(cfg, rng):
    def clips(batch):
        return rng.normal(size=(batch, cfg.segments, cfg.size, cfg.size, 3)).astype("float32")

    return clips(cfg.forward_batch), clips(cfg.batch), rng.integers(0, cfg.num_classes, cfg.batch)


def _mmaction_tsm_r50(cfg):
    mmaction = import_mmaction()
    from mmaction.registry import MODELS
    from mmengine.config import Config
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.ERROR)  # quiet init_weights' per-parameter report
    model_cfg = Config.fromfile(os.path.join(os.path.dirname(mmaction.__file__), ".mim", "configs", "_base_",
                                             "models", "tsm_r50.py")).model
    model_cfg.backbone.pretrained = None  # random weights: nothing is downloaded
    model_cfg.backbone.pretrained2d = False
    model_cfg.backbone.num_segments = cfg.segments
    model_cfg.cls_head.num_segments = cfg.segments
    model_cfg.cls_head.num_classes = cfg.num_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def _worker(side_name, cfg, conn):
    """One side in its own process (its thread pools idle while the other side runs)."""
    side = {"tfvideo": TfvideoSide, "pytorch": PytorchSide}[side_name](cfg, np.random.default_rng(0))
    conn.send(side.description)
    while (kind := conn.recv()) is not None:
        start = time.perf_counter()
        getattr(side, kind)()
        conn.send(time.perf_counter() - start)


def main(argv):
    del argv
    unknown = set(FLAGS.sides) - {"tfvideo", "pytorch"}
    if unknown or not FLAGS.sides:
        raise app.UsageError(f"--sides={','.join(FLAGS.sides)}: each must be 'tfvideo' or 'pytorch'.")
    names = ("rounds", "steps", "warmup", "batch", "forward_batch", "size", "segments", "num_classes", "threads",
             "jit_compile")
    cfg = types.SimpleNamespace(**{n: getattr(FLAGS, n) for n in names})
    context = multiprocessing.get_context("spawn")
    workers = {}
    for name in FLAGS.sides:
        conn, child = context.Pipe()
        process = context.Process(target=_worker, args=(name, cfg, child), daemon=True)
        process.start()
        child.close()  # the parent keeps only its end: a worker that dies reads as EOF, not a hang
        workers[name] = (process, conn)
    for name, (_, conn) in workers.items():
        try:
            print(f"{name}: {conn.recv()}")
        except EOFError:
            raise SystemExit(f"tsm_vs_pytorch: the {name} side failed to start (its traceback is above).") from None

    def call(name, kind):
        try:
            workers[name][1].send(kind)
            return workers[name][1].recv()
        except (EOFError, BrokenPipeError):
            raise SystemExit(f"tsm_vs_pytorch: the {name} side died during a {kind} call (its error is above; "
                             "out of memory?).") from None

    kinds = ("forward", "train")
    sides = list(workers)
    print(f"TSM-R50 {cfg.segments}x{cfg.size}x{cfg.size}, {cfg.num_classes} classes; forward batch "
          f"{cfg.forward_batch}, SGD train step batch {cfg.batch}; {cfg.threads} threads (inter-op 1), one process "
          f"per side; tfvideo jit_compile={cfg.jit_compile}; TF_ENABLE_ONEDNN_OPTS="
          f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset)')}; OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '(unset)')}; {cfg.rounds} rounds x {cfg.steps} calls", flush=True)
    for name in sides:
        for kind in kinds:
            for _ in range(cfg.warmup):
                call(name, kind)
    load_before = load_average()
    times = {(s, k): [] for s in sides for k in kinds}
    per_round = {k: [] for k in kinds}
    for r in range(cfg.rounds):
        order = sides if r % 2 == 0 else sides[::-1]  # alternate who goes first: both see the same load
        for kind in kinds:
            medians = {}
            for name in order:
                calls = [call(name, kind) for _ in range(cfg.steps)]
                times[(name, kind)] += calls
                medians[name] = float(np.median(calls))
            if len(sides) == 2:
                per_round[kind].append(medians["tfvideo"] / medians["pytorch"])
        print(f"round {r + 1}/{cfg.rounds} (load {load_average()}): " + ", ".join(
            f"{s} {k} {float(np.median(times[(s, k)][-cfg.steps:])):.3f} s" for k in kinds for s in sides), flush=True)
    for process, conn in workers.values():
        conn.send(None)
        process.join()
    print(f"load average (1/5/15 min): {load_before} before, {load_average()} after")
    print(f"{'side':<9}{'call':<9}{'median s':>10}{'min s':>9}{'max s':>9}")
    for (name, kind), calls in times.items():
        print(f"{name:<9}{kind:<9}{np.median(calls):>10.3f}{min(calls):>9.3f}{max(calls):>9.3f}")
    if len(sides) == 2:
        for kind in kinds:
            ratio = np.median(times[("tfvideo", kind)]) / np.median(times[("pytorch", kind)])
            print(f"{kind}: tfvideo/pytorch {ratio:.2f}x (per-round {min(per_round[kind]):.2f}-"
                  f"{max(per_round[kind]):.2f}x)")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
