"""Reading frame folders: TSN training clips/s of tfvideo against MMAction2's RawframeDataset.

  python benchmarks/rawframes_vs_mmaction.py [--num_videos=16 --num_frames=64 --clips=64 --rounds=3]

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
The two are timed in turns, `--rounds` times (a change in the machine's load hits both);
each figure is the median over rounds. Target (issue 21): tfvideo >= mmaction. Prints
figures and the ratio only: the numbers depend on the machine and its load.
"""

import os
import sys
import tempfile
import time

import cv2
import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_videos", 16, "Frame folders written.")
flags.DEFINE_integer("num_frames", 64, "Frames per folder.")
flags.DEFINE_integer("height", 256, "Frame height.")
flags.DEFINE_integer("width", 340, "Frame width.")
flags.DEFINE_integer("clips", 64, "Clips timed per reader and round (after one warm-up batch).")
flags.DEFINE_integer("rounds", 3, "Rounds of timing the two readers in turn.")
flags.DEFINE_integer("batch", 8, "Clips per batch.")
flags.DEFINE_integer("workers", 2, "DataLoader workers of the MMAction2 pipeline.")
flags.DEFINE_string("workdir", None, "Where the frame folders are written (default: a temp dir).")
flags.DEFINE_enum("pipeline", "tsn", ["tsn", "read"], "tsn: TSN's training transforms on both sides; read: sampling "
                  "and reading only (tfvideo preprocess=False; MMAction2 SampleFrames, RawFrameDecode, FormatShape, "
                  "PackActionInputs): the same work on both sides.")

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
            frame = np.roll(base, 3 * i, axis=1).copy()
            frame[..., 0] = ((xx + yy + 5 * i) % 256).astype(np.uint8)
            cv2.imwrite(os.path.join(folder, f"img_{i + 1:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
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


def timed(next_batch, clips):
    done, start = 0, time.perf_counter()
    while done < clips:
        done += next_batch()
    return done / (time.perf_counter() - start)


def main(argv):
    del argv
    root = FLAGS.workdir or tempfile.mkdtemp(prefix="rawframes_bench_")
    list_path = make_folders(root)
    readers = {"tfvideo": tfvideo_batches(list_path, root), "mmaction": mmaction_batches(list_path, root)}
    for next_batch in readers.values():
        next_batch()  # Warm-up: workers started, first files cached.
    rates = {name: [] for name in readers}
    for r in range(FLAGS.rounds):
        for name, next_batch in readers.items():
            rates[name].append(timed(next_batch, FLAGS.clips))
        print(f"round {r + 1}: " + ", ".join(f"{n} {rates[n][-1]:.1f} clips/s" for n in readers), flush=True)
    median = {name: float(np.median(v)) for name, v in rates.items()}
    ratios = [t / m for t, m in zip(rates["tfvideo"], rates["mmaction"])]
    print(f"pipeline {FLAGS.pipeline}: {FLAGS.num_videos} folders x {FLAGS.num_frames} frames "
          f"{FLAGS.width}x{FLAGS.height}, 8 segments, crop 224, "
          f"batch {FLAGS.batch}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"tfvideo   {median['tfvideo']:.1f} clips/s")
    print(f"mmaction  {median['mmaction']:.1f} clips/s (RawframeDataset, DataLoader {FLAGS.workers} workers)")
    print(f"ratio tfvideo / mmaction: {median['tfvideo'] / median['mmaction']:.2f} "
          f"(per round {', '.join(f'{x:.2f}' for x in ratios)}); target >= 1")


if __name__ == "__main__":
    app.run(main)
