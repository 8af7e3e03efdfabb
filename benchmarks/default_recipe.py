"""Default flags on a user's own small set: each preset trained with `tfvideo-train` as documented.

Generates a small motion set like a user's own clips: 8 classes that are 4 direction pairs
(left_to_right / right_to_left, moving_up / moving_down, rotating_clockwise /
rotating_anticlockwise, approaching / receding), videos of mixed frame sizes (48x64 to
120x160), lengths, frame rates (12-30 fps) and codecs (H.264 .mp4, MPEG-4 .avi). Then, for
each preset, runs the short command with default flags only:

    tfvideo-train --model=M --train_data=train.txt --eval_data=val.txt --label_map=labels.txt \\
        --model_dir=run --epochs=15

(`--recipe=auto`, flips on with the flip label map derived from the names) and
`tfvideo-evaluate`, and prints top-1, the accuracy inside the direction pairs (how often the
right member of the pair is chosen when the pair is right), the seconds per epoch and the
recipe it resolved. The baseline row of the same run trains tsm_tiny with `--recipe=none`
(the flags' own defaults: SGD 0.01 constant, 224 crops). Expected: the temporal presets
>= 90% top-1; TSN, which averages per-frame scores, near 50% inside the pairs (order-blind).

    PYTHONPATH=$PWD python benchmarks/default_recipe.py                # full: 32/12 videos per class, 15 epochs
    PYTHONPATH=$PWD python benchmarks/default_recipe.py --quick        # 8/4 videos per class, 3 epochs, two presets
    ... --workdir=W --reuse_data --runs=runs2 --models=trn_tiny --nobaseline    # rerun some on the same videos
"""

import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["tsm_tiny", "trn_tiny", "tdn_tiny", "tam_tiny", "i3d_tiny", "tsn_tiny"], "Presets to train.")
flags.DEFINE_integer("epochs", 15, "--epochs of each run.")
flags.DEFINE_integer("train_per_class", 32, "Training videos per class.")
flags.DEFINE_integer("val_per_class", 12, "Validation videos per class.")
flags.DEFINE_boolean("baseline", True, "Also train tsm_tiny with --recipe=none (the flags' own defaults).")
flags.DEFINE_boolean("quick", False, "Iterate: 8/4 videos per class, 3 epochs, tsm_tiny and tsn_tiny.")
flags.DEFINE_integer("seed", 0, "Seed of the generated data.")
flags.DEFINE_string("workdir", None, "Where videos and runs go (default: a temporary directory).")
flags.DEFINE_boolean("reuse_data", False, "Train on the videos already in --workdir (from an earlier run).")
flags.DEFINE_string("runs", "runs", "Subdirectory of --workdir for the model_dirs (a new one per rerun).")

SIZES = ((48, 64), (64, 80), (72, 96), (96, 128), (120, 160))
PAIRS = (("left_to_right", "right_to_left"), ("moving_up", "moving_down"),
         ("rotating_clockwise", "rotating_anticlockwise"), ("approaching", "receding"))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(module, args, cwd):
    proc = subprocess.run([sys.executable, "-m", f"trainers.{module}", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def pair_accuracy(matrix, labels):
    """Of the videos predicted inside their own direction pair, the share given the right member."""
    index = {name: k for k, name in enumerate(labels)}
    right = inside = 0
    for a, b in PAIRS:
        i, j = index[a], index[b]
        right += matrix[i][i] + matrix[j][j]
        inside += matrix[i][i] + matrix[j][j] + matrix[i][j] + matrix[j][i]
    return right / max(inside, 1)


def train_one(workdir, model, epochs, extra=()):
    name = model + ("_" + "_".join(a.strip("-").replace("=", "-") for a in extra) if extra else "")
    run_dir = os.path.join(workdir, FLAGS.runs, name)
    if os.path.exists(run_dir):
        raise FileExistsError(f"{run_dir} exists (a run there would resume); pass another --runs")
    args = [f"--model={model}", "--train_data=train.txt", "--eval_data=val.txt", "--label_map=label_map.txt",
            f"--model_dir={run_dir}", f"--epochs={epochs}", *extra]
    start = time.perf_counter()
    _run("train", args, workdir)
    seconds = time.perf_counter() - start
    _run("evaluate", [f"--model_dir={run_dir}"], workdir)
    with open(os.path.join(run_dir, "eval", "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    return name, metrics, config, seconds


def main(argv):
    del argv
    from tfvideo import data

    models = FLAGS.models
    epochs, per_class = FLAGS.epochs, (FLAGS.train_per_class, FLAGS.val_per_class)
    if FLAGS.quick:
        models, epochs, per_class = ["tsm_tiny", "tsn_tiny"], 3, (8, 4)
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="default_recipe_")
    tic = time.perf_counter()
    if FLAGS.reuse_data:
        lists = {split: os.path.join(workdir, f"{split}.txt") for split in ("train", "val", "label_map")}
    else:
        lists = data.make_motion_dataset(workdir, videos_per_class=per_class, sizes=SIZES,
                                         num_frames=(20, 24, 32, 40), fps=(12, 15, 24, 30),
                                         codecs=("libx264", "mpeg4"), seed=FLAGS.seed)
    labels = data.read_label_map(lists["label_map"])
    print(f"data: {workdir}: {per_class[0]} train / {per_class[1]} val videos per class, {len(labels)} classes "
          f"(chance {100 / len(labels):.1f}%), sizes {', '.join(f'{h}x{w}' for h, w in SIZES)}, H.264 + MPEG-4, "
          f"12-30 fps; made in {time.perf_counter() - tic:.0f} s", flush=True)
    print(f"{'run':<24}{'top-1':>8}{'in-pair':>9}{'s/epoch':>9}  resolved recipe", flush=True)
    runs = [(m, ()) for m in models]
    if FLAGS.baseline:
        runs.append(("tsm_tiny", ("--recipe=none",)))
    for model, extra in runs:
        name, metrics, config, seconds = train_one(workdir, model, epochs, extra)
        t, p = config["train"], config["clip"]["preprocess"]
        opt, schedule = t["optimizer"], t["schedule"]
        recipe = (f"batch {t['batch_size']}, {opt['name']} {opt['learning_rate']:.3g} {schedule['name']}, "
                  f"warm-up {schedule['warmup_epochs']}, "
                  f"{p.get('train_crop', 'multi_scale')} crop {p.get('crop_size', 224)} of {p.get('resize_short', 256)}, flip map "
                  f"{'yes' if p.get('flip_label_map') else 'no'}")
        print(f"{name:<24}{100 * metrics['top1']:>7.1f}%{100 * pair_accuracy(metrics['confusion_matrix'], labels):>8.1f}%"
              f"{seconds / epochs:>9.1f}  {recipe}", flush=True)
        rows = np.asarray(metrics["confusion_matrix"])
        print("    confusion rows: " + " ".join("/".join(map(str, r)) for r in rows), flush=True)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
