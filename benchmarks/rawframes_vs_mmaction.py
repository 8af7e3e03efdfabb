"""Reading frame folders: TSN training clips/s of tfvideo against MMAction2's RawframeDataset.

  python benchmarks/rawframes_vs_mmaction.py [--num_videos=16 --num_frames=48 --clips=48 --rounds=3]

Both read the same `img_%05d.jpg` folders (340x256 JPEGs) through an MMAction2 rawframes
list, sparse 8-segment training clips (one frame per segment, random offsets), TSN's
multi-scale crop to 224 and a random flip, batches of 8:
  tfvideo   tfvideo.data.video_dataset(format_source(list, "rawframes"), SegmentSampler(8)),
            normalized float32 [8, 1, 8, 224, 224, 3];
  mmaction  mmaction.datasets.RawframeDataset (MMAction2 1.2.0) with the TSN pipeline of its
            configs (SampleFrames(1, 1, 8) -> RawFrameDecode (cv2, disk) -> Resize(-1, 256) ->
            MultiScaleCrop(224, (1, .875, .75, .66)) -> Resize(224, 224) -> Flip(0.5) ->
            FormatShape(NCHW) -> PackActionInputs) in a torch DataLoader with 2 workers
            (no turbojpeg / pillow-simd), normalization left to its model's data preprocessor.
`--pipeline=read` times sampling and reading only on both sides (the same work).
Each reader runs in its own fresh process (imports not timed; no reader prefetches while the
other is timed): after one warm-up batch it times `--clips` clips; `cpu` is the CPU time per
clip of that process and its workers (psutil). The two are timed in turns, `--rounds` times
(which goes first alternates; a change in the machine's load hits both); each figure is the
median over rounds. `--load_procs=N` adds N busy trainer-like processes (float32 matmuls,
one thread each) for the whole run. Target (issue 21): tfvideo >= mmaction. Prints figures
and the ratios only: the numbers depend on the machine and its load.
"""

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time

import _procstats  # benchmarks/
import cv2
import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_videos", 16, "Frame folders written.")
flags.DEFINE_integer("num_frames", 64, "Frames per folder.")
flags.DEFINE_integer("height", 256, "Frame height.")
flags.DEFINE_integer("width", 340, "Frame width.")
flags.DEFINE_integer("clips", 64, "Clips timed per reader and round (after one warm-up batch).")
flags.DEFINE_integer("load_procs", 0, "Busy trainer-like processes run for the whole benchmark.")
flags.DEFINE_integer("rounds", 3, "Rounds of timing the two readers in turn.")
flags.DEFINE_integer("batch", 8, "Clips per batch.")
flags.DEFINE_integer("workers", 2, "DataLoader workers of the MMAction2 pipeline.")
flags.DEFINE_string("workdir", None, "Where the frame folders are written and kept (default: a temp dir, deleted).")
flags.DEFINE_enum("pipeline", "tsn", ["tsn", "read"], "tsn: TSN's training transforms on both sides; read: sampling "
                  "and reading only (tfvideo preprocess=False; MMAction2 SampleFrames, RawFrameDecode, FormatShape, "
                  "PackActionInputs): the same work on both sides.")
flags.DEFINE_enum("side", None, ["tfvideo", "mmaction"], "Internal: time one reader in this process.")
flags.DEFINE_string("list_path", None, "Internal: the rawframes list of --side.")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_folders(root):
    """Folders of textured, moving 340x256 frames (JPEG quality 90) and the rawframes list."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:FLAGS.height, 0:FLAGS.width]
    lines = []
    for v in range(FLAGS.num_videos):
        folder = os.path.join(root, f"video_{v:03d}")
        os.makedirs(folder, exist_ok=True)
        base = rng.integers(0, 255, (FLAGS.height // 8, FLAGS.width // 8, 3), np.uint8)
        base = cv2.resize(base, (FLAGS.width, FLAGS.height), interpolation=cv2.INTER_CUBIC)
        for i in range(FLAGS.num_frames):
            path = os.path.join(folder, f"img_{i + 1:05d}.jpg")
            if os.path.exists(path):  # Kept from an earlier run in --workdir.
                continue
            frame = np.roll(base, 3 * i, axis=1).copy()
            frame[..., 0] = ((xx + yy + 5 * i) % 256).astype(np.uint8)
            cv2.imwrite(path, frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        lines.append(f"video_{v:03d} {FLAGS.num_frames} {v % 4}")
    path = os.path.join(root, "train_list_rawframes.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def tfvideo_batches(list_path, root):
    from tfvideo import data

    source = data.format_source(list_path, "rawframes", video_root=root)
    preprocess = data.PreprocessConfig(crop_size=224, resize_short=256) if FLAGS.pipeline == "tsn" else False
    ds = data.video_dataset(source, data.SegmentSampler(8, training=True), preprocess, batch_size=FLAGS.batch,
                            training=True, repeat=True)
    iterator = iter(ds)
    return lambda: next(iterator)["video"].shape[0]


def mmaction_batches(list_path, root):
    sys.path.insert(0, os.path.join(REPO, "tests", "models"))
    from mmaction2_import import import_mmaction

    import_mmaction()
    import torch
    from mmaction.datasets import RawframeDataset
    from mmengine.dataset import pseudo_collate

    pipeline = [
        dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8),
        dict(type="RawFrameDecode", io_backend="disk", decoding_backend="cv2"),
        dict(type="Resize", scale=(-1, 256)),
        dict(type="MultiScaleCrop", input_size=224, scales=(1, 0.875, 0.75, 0.66), random_crop=False, max_wh_scale_gap=1),
        dict(type="Resize", scale=(224, 224), keep_ratio=False),
        dict(type="Flip", flip_ratio=0.5),
        dict(type="FormatShape", input_format="NCHW"),
        dict(type="PackActionInputs"),
    ]
    if FLAGS.pipeline == "read":
        pipeline = pipeline[:2] + pipeline[-2:]
    dataset = RawframeDataset(list_path, pipeline, data_prefix=dict(img=root), filename_tmpl="img_{:05}.jpg")
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=10 ** 7)
    loader = torch.utils.data.DataLoader(dataset, batch_size=FLAGS.batch, sampler=sampler, num_workers=FLAGS.workers,
                                         collate_fn=pseudo_collate, persistent_workers=True)
    iterator = iter(loader)
    return lambda: len(next(iterator)["inputs"])


def _cpu_seconds():
    return _procstats.cpu_seconds()


def time_side(side, list_path):
    """Prints one JSON line: clips/s and CPU s per clip of `--clips` clips after a warm-up batch."""
    root = os.path.dirname(list_path)
    next_batch = (tfvideo_batches if side == "tfvideo" else mmaction_batches)(list_path, root)
    next_batch()  # Warm-up: workers started, graph traced, first files cached.
    done, wall, cpu = 0, time.perf_counter(), _cpu_seconds()
    while done < FLAGS.clips:
        done += next_batch()
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    print(json.dumps({"clips_per_s": done / wall, "cpu_s_per_clip": cpu / done}), flush=True)
    os._exit(0)  # Only the timed clips are this benchmark's business: no loader teardown.


def run_side(side, list_path):
    command = [sys.executable, os.path.abspath(__file__), f"--side={side}", f"--list_path={list_path}",
               f"--clips={FLAGS.clips}", f"--batch={FLAGS.batch}", f"--workers={FLAGS.workers}",
               f"--pipeline={FLAGS.pipeline}"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"{side} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def trainer_like_load(stop):
    """A trainer's step loop on one core: float32 matmuls until `stop` is set."""
    os.environ["OMP_NUM_THREADS"] = "1"
    a = np.random.default_rng(0).random((384, 384), np.float32)
    while not stop.is_set():
        for _ in range(20):
            a = np.tanh(a @ a.T * 1e-3)


def main(argv):
    del argv
    if FLAGS.side:
        time_side(FLAGS.side, FLAGS.list_path)
    root = FLAGS.workdir or tempfile.mkdtemp(prefix="rawframes_bench_")
    list_path = make_folders(root)
    stop = multiprocessing.Event()
    load = [multiprocessing.Process(target=trainer_like_load, args=(stop,), daemon=True) for _ in range(FLAGS.load_procs)]
    for p in load:
        p.start()
    results = {"tfvideo": [], "mmaction": []}
    try:
        for r in range(FLAGS.rounds):
            order = ["tfvideo", "mmaction"] if r % 2 == 0 else ["mmaction", "tfvideo"]
            for name in order:
                results[name].append(run_side(name, list_path))
            print(f"round {r + 1}: " + ", ".join(f"{n} {results[n][-1]['clips_per_s']:.1f} clips/s "
                                                 f"{results[n][-1]['cpu_s_per_clip'] * 1e3:.1f} CPU ms/clip"
                                                 for n in results) + f" (load avg {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        stop.set()
        for p in load:
            p.join(5)
        if not FLAGS.workdir:
            shutil.rmtree(root, ignore_errors=True)
    median = {name: {key: float(np.median([x[key] for x in v])) for key in ("clips_per_s", "cpu_s_per_clip")}
              for name, v in results.items()}
    ratios = [t["clips_per_s"] / m["clips_per_s"] for t, m in zip(results["tfvideo"], results["mmaction"])]
    cpu_ratios = [m["cpu_s_per_clip"] / t["cpu_s_per_clip"] for t, m in zip(results["tfvideo"], results["mmaction"])]
    print(f"pipeline {FLAGS.pipeline}: {FLAGS.num_videos} folders x {FLAGS.num_frames} frames "
          f"{FLAGS.width}x{FLAGS.height}, 8 segments, crop 224, batch {FLAGS.batch}, {os.cpu_count()} cores, "
          f"{FLAGS.load_procs} busy processes, load avg {os.getloadavg()[0]:.1f}")
    for name, what in (("tfvideo", ""), ("mmaction", f" (RawframeDataset, DataLoader {FLAGS.workers} workers)")):
        print(f"{name:9s} {median[name]['clips_per_s']:.1f} clips/s, {median[name]['cpu_s_per_clip'] * 1e3:.1f} CPU "
              f"ms/clip{what}")
    print(f"ratio tfvideo / mmaction: {median['tfvideo']['clips_per_s'] / median['mmaction']['clips_per_s']:.2f} "
          f"(per round {', '.join(f'{x:.2f}' for x in ratios)}); CPU per clip mmaction / tfvideo "
          f"{median['mmaction']['cpu_s_per_clip'] / median['tfvideo']['cpu_s_per_clip']:.2f} "
          f"(per round {', '.join(f'{x:.2f}' for x in cpu_ratios)}); target >= 1")


if __name__ == "__main__":
    app.run(main)
