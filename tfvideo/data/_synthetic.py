"""Synthetic videos for demos and tests: real encoded files made on the fly.

`make_moving_shapes_dataset` writes clips of a shape moving across a noisy background;
the class is the motion direction, so a single frame carries no class information and
only models that see temporal order can tell the classes apart.
"""

import os

import numpy as np

from tfvideo.api._export import export_constant, tf_export
from tfvideo.data import _video_io

DIRECTIONS = export_constant("tfvideo.data.MOVING_SHAPES_CLASSES", ("move_left", "move_right", "move_up", "move_down"))
_VELOCITY = {"move_left": (0, -1), "move_right": (0, 1), "move_up": (-1, 0), "move_down": (1, 0)}


def moving_shape_frames(direction, rng, num_frames=24, size=64):
    """uint8 [num_frames, size, size, 3]: one square moving in `direction`."""
    dy, dx = _VELOCITY[direction]
    side = int(rng.integers(size // 6, size // 4))
    speed = (size - side) / max(num_frames - 1, 1) * rng.uniform(0.6, 0.9)
    travel = speed * (num_frames - 1)
    # Start so that the whole path stays inside the frame.
    def start(d):
        lo, hi = (travel, size - side) if d < 0 else (0, size - side - travel) if d > 0 else (0, size - side)
        return rng.uniform(lo, max(lo, hi))

    y0, x0 = start(dy), start(dx)
    # Sensor-like noise on every pixel, never clipped: no flat patches. (Flat patches make exact
    # ties in max pooling, whose gradient TensorFlow's CPU kernel breaks differently for
    # different batch sizes: a 2-replica run then stops matching a 1-device run.)
    background = rng.integers(16, 80, size=3)
    color = rng.integers(150, 240, size=3)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for t in range(num_frames):
        frame = np.broadcast_to(background, (size, size, 3)).copy()
        y, x = round(y0 + dy * speed * t), round(x0 + dx * speed * t)
        frame[y : y + side, x : x + side] = color
        frames[t] = frame + rng.integers(-12, 13, size=(size, size, 1))
    return frames


@tf_export("tfvideo.data.make_moving_shapes_dataset")
def make_moving_shapes_dataset(
    output_dir, videos_per_class=(24, 8), num_frames=24, size=64, fps=12, codec="libx264", extension="mp4", seed=0,
    encoder_options=None,
):
    """Writes a motion-direction video dataset as real video files.

    Layout: `videos/<class>/<class>_<split>_<k>.<ext>`, `train.txt` and `val.txt`
    (`relative/path label` lines) and `label_map.txt`.

    Args:
      videos_per_class: (train, val) videos per class.
      encoder_options: codec options for `write_video`, e.g. `{"qp": "0"}` for lossless H.264.
    Returns:
      dict with the paths of `train`, `val` lists and the `label_map`.
    """
    rng = np.random.default_rng(seed)
    lists = {"train": [], "val": []}
    for label, direction in enumerate(DIRECTIONS):
        os.makedirs(os.path.join(output_dir, "videos", direction), exist_ok=True)
        for split, count in zip(("train", "val"), videos_per_class):
            for k in range(count):
                rel = os.path.join("videos", direction, f"{direction}_{split}_{k:03d}.{extension}")
                frames = moving_shape_frames(direction, rng, num_frames, size)
                _video_io.write_video(os.path.join(output_dir, rel), frames, fps=fps, codec=codec, options=encoder_options)
                lists[split].append(f"{rel} {label}")
    out = {}
    for split, lines in lists.items():
        out[split] = os.path.join(output_dir, f"{split}.txt")
        with open(out[split], "w") as f:
            f.write("\n".join(lines) + "\n")
    out["label_map"] = os.path.join(output_dir, "label_map.txt")
    with open(out["label_map"], "w") as f:
        f.write("\n".join(DIRECTIONS) + "\n")
    return out
