"""Two-stream TSN through the binaries on the 8-class motion set (4 mirrored direction pairs).

The same videos as benchmarks/default_recipe.py (`make_motion_dataset`: mixed sizes 48x64 to
120x160, lengths, 12-30 fps, H.264 + MPEG-4), then what a user runs:

    tfvideo-prepare --flow                         (train and val TFRecords with RGB + flow)
    tfvideo-train --model=tsn_tiny                 (RGB stream, default flags + --epochs)
    tfvideo-train --model=tsn_flow_tiny            (flow stream: 5 stacked x/y frames per segment)
    tfvideo-evaluate --model_dir=RGB,FLOW --fusion_weights=1,1.5

and prints top-1 and the accuracy inside the direction pairs of each stream and of the fusion.
Expected (issue 21): RGB order-blind (~50% inside the pairs), flow >= 90%, fused >= the
better stream.

    PYTHONPATH=$PWD python benchmarks/two_stream.py [--epochs=15] [--flow_method=dis]
    PYTHONPATH=$PWD python benchmarks/two_stream.py --quick     # 8/4 videos per class, 3 epochs
"""

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import default_recipe  # noqa: E402 -- its data, pair accuracy, subprocess runner and flags (epochs, seed, ...).
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("flow_method", "dis", "tfvideo-prepare --flow_method.")
flags.DEFINE_list("fusion_weights", ["1", "1.5"], "RGB,flow weights of the fused score (TSN's 1:1.5).")


def _metrics(path):
    with open(path) as f:
        return json.load(f)


def main(argv):
    del argv
    from tfvideo import data

    epochs, per_class = FLAGS.epochs, (FLAGS.train_per_class, FLAGS.val_per_class)
    if FLAGS.quick:
        epochs, per_class = 3, (8, 4)
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="two_stream_")
    tic = time.perf_counter()
    if not FLAGS.reuse_data:
        data.make_motion_dataset(workdir, videos_per_class=per_class, sizes=default_recipe.SIZES,
                                 num_frames=(20, 24, 32, 40), fps=(12, 15, 24, 30), codecs=("libx264", "mpeg4"),
                                 seed=FLAGS.seed)
    labels = data.read_label_map(os.path.join(workdir, "label_map.txt"))
    print(f"data: {workdir}: {per_class[0]} train / {per_class[1]} val videos per class, {len(labels)} classes; "
          f"made in {time.perf_counter() - tic:.0f} s", flush=True)
    tfr = os.path.join(workdir, f"tfr_{FLAGS.flow_method}")
    for split in ("train", "val"):
        tic = time.perf_counter()
        if not os.path.exists(os.path.join(tfr, f"{split}-manifest.json")):
            default_recipe._run("prepare_data", [f"--annotations={split}.txt", "--label_map=label_map.txt",
                                                 f"--output_dir={tfr}", f"--name={split}", "--flow",
                                                 f"--flow_method={FLAGS.flow_method}", "--noprogress"], workdir)
        print(f"prepare {split} --flow --flow_method={FLAGS.flow_method}: {time.perf_counter() - tic:.0f} s",
              flush=True)
    runs = os.path.join(workdir, FLAGS.runs)
    dirs = {}
    for stream, model in (("rgb", "tsn_tiny"), ("flow", "tsn_flow_tiny")):
        dirs[stream] = os.path.join(runs, f"{model}_{FLAGS.flow_method}")
        if os.path.exists(dirs[stream]):
            raise FileExistsError(f"{dirs[stream]} exists (a run there would resume); pass another --runs")
        tic = time.perf_counter()
        default_recipe._run("train", [f"--model={model}", f"--train_data={tfr}/train-*", f"--eval_data={tfr}/val-*",
                                      "--label_map=label_map.txt", f"--model_dir={dirs[stream]}",
                                      f"--epochs={epochs}", "--verbose=0"], workdir)
        seconds = time.perf_counter() - tic
        default_recipe._run("evaluate", [f"--model_dir={dirs[stream]}"], workdir)
        print(f"trained {model}: {seconds / epochs:.1f} s/epoch", flush=True)
    fused_dir = os.path.join(runs, f"fused_{FLAGS.flow_method}")
    default_recipe._run("evaluate", [f"--model_dir={dirs['rgb']},{dirs['flow']}",
                                     f"--fusion_weights={','.join(FLAGS.fusion_weights)}",
                                     f"--eval_data={tfr}/val-*", f"--output_dir={fused_dir}"], workdir)
    rows = [("rgb (tsn_tiny)", _metrics(os.path.join(dirs["rgb"], "eval", "metrics.json"))),
            ("flow (tsn_flow_tiny)", _metrics(os.path.join(dirs["flow"], "eval", "metrics.json"))),
            (f"fused {':'.join(FLAGS.fusion_weights)}", _metrics(os.path.join(fused_dir, "metrics.json")))]
    print(f"{'stream':<22}{'top-1':>8}{'in-pair':>9}   ({epochs} epochs, flow {FLAGS.flow_method}, seed {FLAGS.seed})")
    for name, metrics in rows:
        pair = default_recipe.pair_accuracy(metrics["confusion_matrix"], labels)
        print(f"{name:<22}{100 * metrics['top1']:>7.1f}%{100 * pair:>8.1f}%", flush=True)


if __name__ == "__main__":
    app.run(main)
