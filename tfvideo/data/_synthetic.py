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
# Eight motions, four of them direction pairs a horizontal flip exchanges or keeps:
# left_to_right <-> right_to_left and the two rotations swap; up, down, approach, recede do not.
MOTIONS = export_constant("tfvideo.data.MOTION_CLASSES", (
    "left_to_right", "right_to_left", "moving_up", "moving_down",
    "rotating_clockwise", "rotating_anticlockwise", "approaching", "receding"))
_VELOCITY = {"move_left": (0, -1), "move_right": (0, 1), "move_up": (-1, 0), "move_down": (1, 0),
             "left_to_right": (0, 1), "right_to_left": (0, -1), "moving_up": (-1, 0), "moving_down": (1, 0)}
_ROTATION = {"rotating_clockwise": 1.0, "rotating_anticlockwise": -1.0}
_SCALING = {"approaching": 1.0, "receding": -1.0}


def _frame_shape(size):
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


def _noisy_frames(masks, rng):
    """uint8 [T, H, W, 3] from bool masks [T, H, W]: a coloured shape on a noisy background."""
    # Sensor-like noise on every pixel, never clipped: no flat patches. (Flat patches make exact
    # ties in max pooling, whose gradient TensorFlow's CPU kernel breaks differently for
    # different batch sizes: a 2-replica run then stops matching a 1-device run.)
    num_frames, h, w = masks.shape
    background = rng.integers(16, 80, size=3)
    color = rng.integers(150, 240, size=3)
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    for t in range(num_frames):
        frame = np.broadcast_to(background, (h, w, 3)).copy()
        frame[masks[t]] = color
        frames[t] = frame + rng.integers(-12, 13, size=(h, w, 1))
    return frames


def _translation_masks(direction, rng, num_frames, h, w):
    dy, dx = _VELOCITY[direction]
    side = int(rng.integers(min(h, w) // 6, min(h, w) // 4))
    extent = h if dy else w
    speed = (extent - side) / max(num_frames - 1, 1) * rng.uniform(0.6, 0.9)
    travel = speed * (num_frames - 1)

    # Start so that the whole path stays inside the frame.
    def start(d, n):
        lo, hi = (travel, n - side) if d < 0 else (0, n - side - travel) if d > 0 else (0, n - side)
        return rng.uniform(lo, max(lo, hi))

    y0, x0 = start(dy, h), start(dx, w)
    masks = np.zeros((num_frames, h, w), bool)
    for t in range(num_frames):
        y, x = round(y0 + dy * speed * t), round(x0 + dx * speed * t)
        masks[t, y : y + side, x : x + side] = True
    return masks


def _rotation_masks(sign, rng, num_frames, h, w):
    """A clock hand turning about a point near the centre (clockwise on screen for sign > 0)."""
    short = min(h, w)
    cy = h / 2 + rng.uniform(-0.08, 0.08) * short
    cx = w / 2 + rng.uniform(-0.08, 0.08) * short
    radius = rng.uniform(0.3, 0.4) * short
    half_width = max(1.5, short / 16)
    start = rng.uniform(0, 2 * np.pi)
    turn = rng.uniform(1.0, 1.5) * np.pi  # Under half a turn per step for any num_frames >= 4: no aliasing.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    masks = np.zeros((num_frames, h, w), bool)
    for t in range(num_frames):
        angle = start + sign * turn * t / max(num_frames - 1, 1)
        uy, ux = np.sin(angle), np.cos(angle)  # Image y points down: growing angle turns clockwise.
        along = (yy - cy) * uy + (xx - cx) * ux
        across = np.abs((yy - cy) * ux - (xx - cx) * uy)
        masks[t] = (along >= -half_width) & (along <= radius) & (across <= half_width)
    return masks


def _scaling_masks(sign, rng, num_frames, h, w):
    """A square growing (approaching, sign > 0) or shrinking about a fixed centre."""
    short = min(h, w)
    small, large = rng.uniform(0.12, 0.2) * short, rng.uniform(0.6, 0.75) * short
    cy = rng.uniform(large / 2, h - large / 2)
    cx = rng.uniform(large / 2, w - large / 2)
    masks = np.zeros((num_frames, h, w), bool)
    for t in range(num_frames):
        f = t / max(num_frames - 1, 1)
        side = small + (large - small) * (f if sign > 0 else 1 - f)
        y0, x0 = round(cy - side / 2), round(cx - side / 2)
        masks[t, y0 : y0 + round(side), x0 : x0 + round(side)] = True
    return masks


def moving_shape_frames(direction, rng, num_frames=24, size=64):
    """uint8 [num_frames, H, W, 3]: one shape moving as `direction` says.

    `direction`: one of MOVING_SHAPES_CLASSES or MOTION_CLASSES; `size`: side or (H, W).
    """
    h, w = _frame_shape(size)
    if direction in _VELOCITY:
        masks = _translation_masks(direction, rng, num_frames, h, w)
    elif direction in _ROTATION:
        masks = _rotation_masks(_ROTATION[direction], rng, num_frames, h, w)
    elif direction in _SCALING:
        masks = _scaling_masks(_SCALING[direction], rng, num_frames, h, w)
    else:
        raise ValueError(f"unknown motion {direction!r}; expected one of {sorted({*_VELOCITY, *_ROTATION, *_SCALING})}")
    return _noisy_frames(masks, rng)


def _write_lists(output_dir, lists, classes):
    out = {}
    for split, lines in lists.items():
        out[split] = os.path.join(output_dir, f"{split}.txt")
        with open(out[split], "w") as f:
            f.write("\n".join(lines) + "\n")
    out["label_map"] = os.path.join(output_dir, "label_map.txt")
    with open(out["label_map"], "w") as f:
        f.write("\n".join(classes) + "\n")
    return out


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
    return _write_lists(output_dir, lists, DIRECTIONS)


@tf_export("tfvideo.data.make_motion_dataset")
def make_motion_dataset(
    output_dir, classes=MOTIONS, videos_per_class=(32, 12), sizes=((64, 64),), num_frames=(24,), fps=(12,),
    codecs=("libx264",), seed=0,
):
    """Writes a motion video dataset of mixed frame sizes, lengths, frame rates and codecs.

    Each video draws its (height, width) from `sizes`, its frame count from `num_frames`,
    its frame rate from `fps` and its codec from `codecs` ("libx264" writes .mp4 H.264,
    "mpeg4" .avi MPEG-4 Part 2). Layout as `make_moving_shapes_dataset`:
    `videos/<class>/...`, `train.txt`, `val.txt` (`relative/path label_name` lines) and
    `label_map.txt` (the class names).

    Args:
      classes: motion names from MOTION_CLASSES (or MOVING_SHAPES_CLASSES).
      videos_per_class: (train, val) videos per class.
    Returns:
      dict with the paths of `train`, `val` lists and the `label_map`.
    """
    rng = np.random.default_rng(seed)
    sizes = [_frame_shape(s) for s in sizes]
    for h, w in sizes:
        if h % 2 or w % 2 or min(h, w) < 16:
            raise ValueError(f"make_motion_dataset: size {h}x{w} must be even and at least 16 on each side")
    lists = {"train": [], "val": []}
    for name in classes:
        os.makedirs(os.path.join(output_dir, "videos", name), exist_ok=True)
        for split, count in zip(("train", "val"), videos_per_class):
            for k in range(count):
                h, w = sizes[rng.integers(len(sizes))]
                length = int(num_frames[rng.integers(len(num_frames))])
                rate = fps[rng.integers(len(fps))]
                codec = codecs[rng.integers(len(codecs))]
                extension = "mp4" if codec == "libx264" else "avi"
                rel = os.path.join("videos", name, f"{name}_{split}_{k:03d}.{extension}")
                frames = moving_shape_frames(name, rng, length, (h, w))
                _video_io.write_video(os.path.join(output_dir, rel), frames, fps=rate, codec=codec)
                lists[split].append(f"{rel} {name}")
    return _write_lists(output_dir, lists, classes)
