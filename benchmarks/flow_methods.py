"""Optical flow for tfvideo-prepare --flow: frame pairs per second per core and end-point error.

Times each `--flow_method` (`tfvideo.data.optical_flow`) on 340x256 frame pairs, OpenCV
held to one thread (so the rate is per core; `tfvideo-prepare --workers=N` runs N such
processes), with TV-L1 (TSN's and I3D's method) as the baseline measured in the same run.
Accuracy: mean end-point error (pixels) against the true motion of a textured frame moved by
a known sub-pixel translation, and of a textured square moving over a still textured
background (error inside the square).

    PYTHONPATH=$PWD python benchmarks/flow_methods.py [--pairs=20 --tvl1_pairs=3]

Target (issue 21): the default method (dis) >= 20 pairs/s per core at 340x256.
"""

import time

import cv2
import numpy as np
from absl import app, flags

from tfvideo import data

FLAGS = flags.FLAGS
flags.DEFINE_list("methods", list(data.FLOW_METHODS), "Methods to time (tvl1 is always timed: the baseline).")
flags.DEFINE_integer("pairs", 20, "Frame pairs timed per method (repeated over --rounds).")
flags.DEFINE_integer("tvl1_pairs", 3, "Frame pairs timed for TV-L1 (about 1 s each).")
flags.DEFINE_integer("rounds", 3, "Rounds (methods in turns); the median rate is reported.")
flags.DEFINE_integer("width", 340, "Frame width.")
flags.DEFINE_integer("height", 256, "Frame height.")
flags.DEFINE_integer("seed", 0, "Texture seed.")

DEFAULT = "dis"
TARGET = 20.0


def texture(rng, height, width):
    """A smooth random texture, uint8 [H, W]: blurred noise at two scales (a natural-ish image)."""
    coarse = cv2.resize(rng.random((height // 16, width // 16)).astype(np.float32), (width, height))
    fine = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 2.0)
    return np.clip(255 * (0.6 * coarse + 0.8 * (fine - 0.5) + 0.2), 0, 255).astype(np.uint8)


def shifted(image, dx, dy):
    """`image` moved by (dx, dy) pixels (bilinear; borders replicated)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def cases(rng, height, width):
    """[(name, frames uint8 [2, H, W, 3], true flow float32 [H, W, 2], mask of pixels scored)]."""
    out = []
    base = texture(rng, height, width)
    dx, dy = 2.4, -1.3
    flow = np.broadcast_to(np.float32([dx, dy]), (height, width, 2))
    margin = np.zeros((height, width), bool)
    margin[16:-16, 16:-16] = True
    out.append(("translation (2.4, -1.3) px", np.stack([base, shifted(base, dx, dy)]), flow, margin))
    background, square = texture(rng, height, width), texture(rng, height, width)
    first, second = background.copy(), background.copy()
    top, left, side, step = 80, 100, 96, 4
    first[top:top + side, left:left + side] = square[:side, :side]
    second[top:top + side, left + step:left + step + side] = square[:side, :side]
    truth = np.zeros((height, width, 2), np.float32)
    truth[top:top + side, left:left + side, 0] = step
    inside = np.zeros((height, width), bool)
    inside[top + 8:top + side - 8, left + 8:left + side - 8] = True
    out.append(("square moving 4 px on a still background", np.stack([first, second]), truth, inside))
    return [(name, np.repeat(frames[..., None], 3, -1), truth, mask) for name, frames, truth, mask in out]


def end_point_error(method, frames, truth, mask):
    flow = data.optical_flow(frames, method)[0]
    return float(np.mean(np.linalg.norm(flow - truth, axis=-1)[mask]))


def pairs_per_second(method, frames, pairs):
    """(pairs per wall second, pairs per CPU second) of `optical_flow` on `pairs` consecutive
    pairs (one call, as prepare does per video). On a shared machine the CPU rate is the per-core one."""
    clip = np.concatenate([frames] * ((pairs + 2) // 2))[:pairs + 1]
    start, cpu = time.perf_counter(), time.process_time()
    data.optical_flow(clip, method)
    return pairs / (time.perf_counter() - start), pairs / (time.process_time() - cpu)


def main(argv):
    del argv
    cv2.setNumThreads(1)  # Per core: each prepare worker is one process.
    rng = np.random.default_rng(FLAGS.seed)
    tests = cases(rng, FLAGS.height, FLAGS.width)
    methods = ["tvl1"] + [m for m in FLAGS.methods if m != "tvl1"]
    for method in methods:
        data.optical_flow(tests[0][1], method)  # Warm-up (OpenCV allocations).
    rates = {m: [] for m in methods}
    for _ in range(FLAGS.rounds):
        for method in methods:
            rates[method].append(pairs_per_second(method, tests[0][1],
                                                  FLAGS.tvl1_pairs if method == "tvl1" else FLAGS.pairs))
    wall = {m: float(np.median([r[0] for r in rates[m]])) for m in methods}
    cpu = {m: float(np.median([r[1] for r in rates[m]])) for m in methods}
    print(f"optical flow at {FLAGS.width}x{FLAGS.height}, OpenCV {cv2.__version__}, 1 thread, "
          f"{FLAGS.rounds} rounds (median)")
    header = f"{'method':<10} {'pairs/CPU-s':>11} {'pairs/s wall':>12} {'CPU s/pair':>10} {'vs tvl1':>8}"
    header += "".join(f"  EPE {name}" for name, *_ in tests)
    print(header)
    for method in methods:
        errors = "".join(f"  {end_point_error(method, f, t, m):>{len('EPE ' + n)}.3f}" for n, f, t, m in tests)
        print(f"{method:<10} {cpu[method]:>11.2f} {wall[method]:>12.2f} {1 / cpu[method]:>10.3f} "
              f"{cpu[method] / cpu['tvl1']:>7.1f}x{errors}")
    print(f"default ({DEFAULT}): {cpu[DEFAULT]:.1f} pairs per CPU second (one core), {wall[DEFAULT]:.1f} per wall "
          f"second; target >= {TARGET:.0f}: {'met' if cpu[DEFAULT] >= TARGET else 'NOT met'}")


if __name__ == "__main__":
    app.run(main)
