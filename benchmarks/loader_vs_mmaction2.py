"""TSN training input from long-GOP mp4 files: tfvideo.data.video_dataset vs MMAction2 1.2.0's own loader.

  pip install decord      # MMAction2's video backend; tfvideo never imports it
  python benchmarks/loader_vs_mmaction2.py [--videos_dir=DIR] [--turns=2] [--batches=8]

The files: `--num_videos` (12) Kinetics-like H.264 mp4s, 340x256, 30 fps, 10 s, x264's
defaults (GOP up to 250 frames, 3 B-frames; textured, moving, noisy content with a scene
cut every 7 s: `decode_vs_decord.synthetic_frames`). They stay in `--videos_dir` for the
next run (without it: a temp dir, deleted at the end).

The two loaders, TSN 8x224 training clips (8 segments, one frame each; short side 256,
multi-scale crop, 224, flip), batch 8, shuffled, repeated:
  tfvideo    tfvideo.data.video_dataset(list, ClipSpec(SegmentSampler(8), PreprocessConfig(
             crop_size=224, resize_short=256)), training=True, batch_size=8, seed=0)
             (normalized float32 [8, 1, 8, 224, 224, 3] batches);
  mmaction2  mmaction.datasets.VideoDataset with the pipeline of MMAction2's TSN Kinetics
             video config (DecordInit, SampleFrames(1, 1, 8), DecordDecode, Resize(-1, 256),
             MultiScaleCrop(224, (1, .875, .75, .66)), Resize(224, 224), Flip(0.5),
             FormatShape(NCHW), PackActionInputs) through a torch DataLoader with
             `--workers` (2) persistent workers and mmengine's pseudo_collate, as
             mmengine's Runner builds it (uint8 batches: its model normalizes later).

Each loader runs in its own fresh process (imports not timed): after `--warmup` batches
it times `--batches` batches; `cpu` is the CPU time per clip of that process and its
workers (psutil), which other processes' load moves much less than wall time. Conditions:
  idle    nothing added (the machine's own load average is printed);
  loaded  `--load_procs` (1) busy processes run a trainer-like loop (float32 matmuls, one
          thread each) for the whole turn of both loaders.
Per condition, `--turns` rounds time both loaders in turns (which goes first alternates);
figures are medians over rounds, the ratio is tfvideo / mmaction2 clips/s (and mmaction2 /
tfvideo CPU per clip). Before timing, tfvideo's clips are checked frame-exact: the frames
its file decoder returns for a clip's sampled indices equal a sequential decode of the file.
"""

import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import _procstats  # benchmarks/
import decode_vs_decord  # benchmarks/: the synthetic Kinetics-like content.
import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("videos_dir", None, "Keeps the generated videos between runs (default: a temp dir, deleted).")
flags.DEFINE_integer("num_videos", 12, "Videos in the annotation list.")
flags.DEFINE_integer("turns", 2, "Rounds per condition; each times both loaders once.")
flags.DEFINE_integer("batches", 8, "Batches timed per loader and turn (after the warm-up).")
flags.DEFINE_integer("warmup", 2, "Batches taken before timing (start-up, tracing, full prefetch buffers).")
flags.DEFINE_integer("batch_size", 8, "Clips per batch.")
# --workers (2): MMAction2's DataLoader workers (the flag decode_vs_decord defines).
flags.DEFINE_integer("parallel_calls", 0, "video_dataset's num_parallel_calls (0: its default, AUTOTUNE).")
flags.DEFINE_integer("load_procs", 1, "Busy trainer-like processes in the loaded condition.")
flags.DEFINE_list("conditions", ["idle", "loaded"], "Conditions to time: idle and/or loaded.")
flags.DEFINE_enum("side", None, ["tfvideo", "mmaction2"], "Internal: time one loader in this process.")
flags.DEFINE_string("ann_file", None, "Internal: the annotation list of --side.")

HEIGHT, WIDTH, SECONDS, FPS = 256, 340, 10, 30


def make_videos(root):
    """Writes the files (once) and the annotation list `root/list.txt` ("name label" lines)."""
    lines = []
    for k in range(FLAGS.num_videos):
        name = f"k{k:02d}.mp4"
        path = os.path.join(root, name)
        if not os.path.exists(path):
            start = time.perf_counter()
            decode_vs_decord.write_file(path, HEIGHT, WIDTH, SECONDS, FPS, "libx264", {"preset": "fast"}, seed=k)
            print(f"  wrote {name} ({os.path.getsize(path) / 1e6:.1f} MB) in {time.perf_counter() - start:.0f} s", flush=True)
        lines.append(f"{name} {k % 4}")
    ann_file = os.path.join(root, "list.txt")
    with open(ann_file, "w") as f:
        f.write("\n".join(lines) + "\n")
    return ann_file


def check_exact(root, ann_file):
    """Whether tfvideo's file decoder gives a sequential decode's frames for each file's first training clip."""
    import tensorflow as tf

    from tfvideo import data
    from tfvideo.data import _decode

    sampler = data.SegmentSampler(num_segments=8, training=True)
    decode = tf.function(_decode.file_decoder(sampler, on_error="raise", skipped=None, short_side=256))
    exact = True
    for k, line in enumerate(open(ann_file).read().split("\n")[:3]):
        path = os.path.join(root, line.split()[0])
        element = (tf.constant(path), 0, "x", ("", np.int64(0), np.int64(-1)))  # ("", 0, -1): a file, not a folder.
        frames = decode(element, np.array([k, 1], np.int32))["frames"].numpy()[0]
        indices = sampler(data.probe_video(path).num_frames, _decode._numpy_rng(np.array([k, 1], np.int32)))[0]
        reference = decode_vs_decord.sequential_frames(path, indices)
        exact &= all(np.array_equal(frames[t], reference[int(i)]) for t, i in enumerate(indices))
    return exact


def trainer_like_load(stop):
    """A trainer's step loop on one core: float32 matmuls until `stop` is set."""
    os.environ["OMP_NUM_THREADS"] = "1"
    rng = np.random.default_rng(0)
    a = rng.random((384, 384), np.float32)
    while not stop.is_set():
        for _ in range(20):
            a = np.tanh(a @ a.T * 1e-3)


def _cpu_seconds():
    return _procstats.cpu_seconds()


def tfvideo_batches(ann_file):
    from tfvideo import data

    spec = data.ClipSpec(data.SegmentSampler(num_segments=8), data.PreprocessConfig(crop_size=224, resize_short=256))
    parallel = {"num_parallel_calls": FLAGS.parallel_calls} if FLAGS.parallel_calls else {}
    ds = data.video_dataset(ann_file, spec, training=True, batch_size=FLAGS.batch_size, video_root=os.path.dirname(ann_file),
                            seed=0, repeat=True, **parallel)
    return iter(ds)


def mmaction2_batches(ann_file):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "models"))
    from mmaction2_import import import_mmaction

    import_mmaction()
    import torch
    from mmaction.datasets import VideoDataset
    from mmengine.dataset import DefaultSampler, pseudo_collate

    pipeline = [
        dict(type="DecordInit", io_backend="disk"),
        dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8),
        dict(type="DecordDecode"),
        dict(type="Resize", scale=(-1, 256)),
        dict(type="MultiScaleCrop", input_size=224, scales=(1, 0.875, 0.75, 0.66), random_crop=False, max_wh_scale_gap=1),
        dict(type="Resize", scale=(224, 224), keep_ratio=False),
        dict(type="Flip", flip_ratio=0.5),
        dict(type="FormatShape", input_format="NCHW"),
        dict(type="PackActionInputs"),
    ]
    dataset = VideoDataset(ann_file, pipeline, data_prefix=dict(video=os.path.dirname(ann_file)))

    def repeat():
        loader = torch.utils.data.DataLoader(dataset, batch_size=FLAGS.batch_size, num_workers=FLAGS.workers,
                                             persistent_workers=True, sampler=DefaultSampler(dataset, shuffle=True, seed=0),
                                             collate_fn=pseudo_collate)
        while True:
            yield from loader

    return repeat()


def time_side(side, ann_file):
    """Prints one JSON line: clips/s and CPU s per clip of `--batches` batches after the warm-up."""
    batches = (tfvideo_batches if side == "tfvideo" else mmaction2_batches)(ann_file)
    for _ in range(FLAGS.warmup):
        next(batches)
    wall, cpu = time.perf_counter(), _cpu_seconds()
    for _ in range(FLAGS.batches):
        next(batches)
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    clips = FLAGS.batches * FLAGS.batch_size
    print(json.dumps({"clips_per_s": clips / wall, "cpu_s_per_clip": cpu / clips}), flush=True)
    # Leave without tearing the loaders down: only the timed batches are this benchmark's business.
    os._exit(0)


def run_side(side, ann_file):
    command = [sys.executable, os.path.abspath(__file__), f"--side={side}", f"--ann_file={ann_file}",
               f"--batches={FLAGS.batches}", f"--warmup={FLAGS.warmup}", f"--batch_size={FLAGS.batch_size}",
               f"--workers={FLAGS.workers}", f"--parallel_calls={FLAGS.parallel_calls}"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"{side} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv):
    del argv
    if FLAGS.side:
        time_side(FLAGS.side, FLAGS.ann_file)
    root = FLAGS.videos_dir or tempfile.mkdtemp(prefix="loader_vs_mmaction2_")
    os.makedirs(root, exist_ok=True)
    try:
        ann_file = make_videos(root)
        print(f"tfvideo frame-exact on the first clips: {check_exact(root, ann_file)}", flush=True)
        for condition in FLAGS.conditions:
            stop, load = multiprocessing.Event(), []
            if condition == "loaded":
                load = [multiprocessing.Process(target=trainer_like_load, args=(stop,), daemon=True)
                        for _ in range(FLAGS.load_procs)]
                for p in load:
                    p.start()
            results = {"tfvideo": [], "mmaction2": []}
            try:
                for turn in range(FLAGS.turns):
                    order = ["tfvideo", "mmaction2"] if turn % 2 == 0 else ["mmaction2", "tfvideo"]
                    for side in order:
                        results[side].append(run_side(side, ann_file))
                        r = results[side][-1]
                        print(f"  {condition} turn {turn} {side:9s} {r['clips_per_s']:6.2f} clips/s "
                              f"{r['cpu_s_per_clip']:.3f} CPU s/clip (load avg {os.getloadavg()[0]:.1f})", flush=True)
            finally:
                stop.set()
                for p in load:
                    p.join(5)
            med = {side: {key: statistics.median(r[key] for r in rs) for key in ("clips_per_s", "cpu_s_per_clip")}
                   for side, rs in results.items()}
            ratios = [t["clips_per_s"] / m["clips_per_s"] for t, m in zip(results["tfvideo"], results["mmaction2"])]
            print(f"{condition}: tfvideo {med['tfvideo']['clips_per_s']:.2f} vs mmaction2 {med['mmaction2']['clips_per_s']:.2f} "
                  f"clips/s = {med['tfvideo']['clips_per_s'] / med['mmaction2']['clips_per_s']:.2f}x "
                  f"(per turn {', '.join(f'{r:.2f}' for r in ratios)}); CPU s/clip {med['tfvideo']['cpu_s_per_clip']:.3f} vs "
                  f"{med['mmaction2']['cpu_s_per_clip']:.3f} = "
                  f"{med['mmaction2']['cpu_s_per_clip'] / med['tfvideo']['cpu_s_per_clip']:.2f}x; "
                  f"load avg {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        if not FLAGS.videos_dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
