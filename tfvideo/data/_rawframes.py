"""Frame folders ("rawframes"): a video stored as one JPEG per frame.

The layout of TSN, TSM, TDN, TRN and MMAction2's `RawframeDataset`, and the way
Something-Something V1 and Jester are distributed: frame `i` (0-based, display order)
of a folder is the file `filename_tmpl.format(start_index + i)`, e.g. `img_00001.jpg`
for i = 0 with the defaults. Optical flow sits beside it as two grey images per frame,
`flow_x_%05d.jpg` / `flow_y_%05d.jpg` (the `denseflow` layout). Templates are Python
format strings (`img_{:05d}.jpg`, MMAction2's `filename_tmpl`); printf style
(`img_%05d.jpg`) is accepted too.

Reading takes exactly the sampled frames, like `VideoReader.read` on a video file, and
fails the same way: a `VideoDecodeError` naming the folder and why (a missing frame
file by index and name, a folder with fewer frames than its list entry says, a file
that does not decode).
"""

import os
import re

import cv2
import numpy as np

from tfvideo.api._export import tf_export
from tfvideo.data import _video_io

RGB_TEMPLATE = "img_{:05d}.jpg"
FLOW_TEMPLATES = ("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg")

_PRINTF = re.compile(r"%(0?\d*)d")
# OpenCV >= 4.10 decodes JPEGs straight to RGB (libjpeg-turbo's RGB output: the same values,
# no BGR -> RGB pass over the frame).
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def normalize_template(template):
    """A frame-file template as a Python format string with one integer field.

    `img_%05d.jpg` -> `img_{:05d}.jpg`; `img_{:05}.jpg` stays. ValueError naming the
    template when it has no (or more than one) index field.
    """
    text = str(template)
    if "{" not in text and _PRINTF.search(text):
        text = _PRINTF.sub(lambda m: "{:" + m.group(1) + "d}", text.replace("{", "{{").replace("}", "}}"), count=1)
    try:
        first, second = text.format(1), text.format(2)
    except (IndexError, KeyError, ValueError) as e:
        raise ValueError(f"frame template {template!r} is not a format with one index field (e.g. img_{{:05d}}.jpg or "
                         f"img_%05d.jpg): {e}") from None
    if first == second:
        raise ValueError(f"frame template {template!r} has no index field (e.g. img_{{:05d}}.jpg or img_%05d.jpg)")
    return text


def _check_start(start_index):
    if isinstance(start_index, bool) or not isinstance(start_index, (int, np.integer)) or start_index < 0:
        raise ValueError(f"start_index={start_index!r} must be an integer >= 0")
    return int(start_index)


@tf_export("tfvideo.data.count_frame_files")
def count_frame_files(folder, filename_tmpl=RGB_TEMPLATE, start_index=1):
    """Frames in `folder`: how many consecutive files `filename_tmpl` names from `start_index` on.

    One directory listing (no file is opened). Raises `VideoDecodeError` when the folder
    does not exist or has no frame file.
    """
    folder = os.fspath(folder)
    template = normalize_template(filename_tmpl)
    start = _check_start(start_index)
    try:
        names = set(os.listdir(folder))
    except FileNotFoundError:
        raise _video_io.VideoDecodeError(folder, "frame folder does not exist") from None
    except NotADirectoryError:
        raise _video_io.VideoDecodeError(folder, "is not a frame folder (a file, not a directory)") from None
    count = 0
    while template.format(start + count) in names:
        count += 1
    if count == 0:
        raise _video_io.VideoDecodeError(folder, f"no frame files {template.format(start)}, ... in the folder")
    return count


def _missing(folder, template, start, index, num_frames):
    """The VideoDecodeError of frame `index` not found: which file, and whether the folder is short."""
    name = template.format(start + index)
    try:
        found = count_frame_files(folder, template, start)
    except _video_io.VideoDecodeError as e:
        return e
    if num_frames is not None and found < num_frames:
        return _video_io.VideoDecodeError(
            folder, f"has {found} frames ({template.format(start)}..{template.format(start + found - 1)}) but its "
            f"list entry says {num_frames}: frame {index} ({name}) is missing")
    return _video_io.VideoDecodeError(folder, f"frame {index}: file {name} is missing")


def _read_image(folder, template, start, index, num_frames, flags):
    path = os.path.join(folder, template.format(start + index))
    try:
        data = np.fromfile(path, np.uint8)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise _missing(folder, template, start, index, num_frames) from None
    except OSError as e:
        raise _video_io.VideoDecodeError(folder, f"frame {index}: file {os.path.basename(path)} cannot be read "
                                         f"({e.strerror or e})") from None
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise _video_io.VideoDecodeError(folder, f"frame {index}: file {os.path.basename(path)} does not decode "
                                         f"as an image ({data.size} bytes)")
    return image


def _resize(image, size):
    if size is None or image.shape[:2] == size:
        return image
    h, w = size
    interpolation = cv2.INTER_AREA if h < image.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interpolation)


def _check_indices(folder, indices, num_frames):
    indices = np.asarray(indices, np.int64)
    if num_frames is not None and indices.size and (indices.min() < 0 or indices.max() >= num_frames):
        raise _video_io.VideoDecodeError(folder, f"frame indices {indices.min()}..{indices.max()} outside [0, {num_frames})")
    if indices.size and indices.min() < 0:
        raise _video_io.VideoDecodeError(folder, f"frame index {indices.min()} < 0")
    return indices


def _read(folder, indices, templates, start_index, num_frames, short_side, flags):
    folder = os.fspath(folder)
    templates = [normalize_template(t) for t in templates]
    start = _check_start(start_index)
    indices = _check_indices(folder, indices, num_frames)
    wanted, inverse = np.unique(indices, return_inverse=True)
    channels = 3 if flags == cv2.IMREAD_COLOR else len(templates)
    rgb = flags == cv2.IMREAD_COLOR and _IMREAD_RGB is not None
    read_flags = _IMREAD_RGB if rgb else flags
    if not wanted.size:
        return np.zeros(indices.shape + (0, 0, channels), np.uint8)
    out = None  # [len(wanted), H, W, channels], written in place (no stacking copies).
    for k, i in enumerate(wanted.tolist()):
        planes = [_read_image(folder, t, start, i, num_frames, read_flags) for t in templates]
        if out is None:
            first = planes[0].shape[:2]
            size = _video_io._short_side_size(*first, int(short_side)) if short_side else first
            out = np.empty((len(wanted),) + size + (channels,), np.uint8)
        for plane in planes:
            if plane.shape[:2] != first:
                raise _video_io.VideoDecodeError(folder, f"frame {i} is {plane.shape[1]}x{plane.shape[0]}, frame "
                                                 f"{wanted[0]} {first[1]}x{first[0]}; the frames of a folder must "
                                                 "have one size")
        planes = [_resize(p, size) for p in planes]
        if rgb:
            out[k] = planes[0]
        elif flags == cv2.IMREAD_COLOR:
            cv2.cvtColor(planes[0], cv2.COLOR_BGR2RGB, dst=out[k])
        else:
            for c, plane in enumerate(planes):
                out[k, ..., c] = plane
    inverse = inverse.reshape(-1)
    if len(wanted) != indices.size or np.any(inverse != np.arange(indices.size)):
        out = out[inverse]  # Back to the caller's order (and repeats).
    return out.reshape(indices.shape + out.shape[1:])


@tf_export("tfvideo.data.read_frame_folder")
def read_frame_folder(folder, indices, filename_tmpl=RGB_TEMPLATE, start_index=1, num_frames=None, short_side=None):
    """Reads the frames at `indices` of a frame folder: uint8 `indices.shape + [H, W, 3]` RGB.

    Args:
      folder: the frame directory.
      indices: int array of any shape; frame i is file `filename_tmpl.format(start_index + i)`.
      filename_tmpl: `img_{:05d}.jpg` (default), `{:05d}.jpg` (Something-Something V1,
        Jester), or printf style `img_%05d.jpg`.
      start_index: number of the first frame file (1 for the published layouts).
      num_frames: the frame count the list gives (checked: an index past it is an error,
        and a missing file in a shorter folder says the folder is shorter than listed).
      short_side: resize so the shorter side is this many pixels (`resize_short_side`'s size).
    Raises:
      VideoDecodeError: naming the folder, the frame index and file.
    """
    return _read(folder, indices, [filename_tmpl], start_index, num_frames, short_side, cv2.IMREAD_COLOR)


@tf_export("tfvideo.data.read_flow_folder")
def read_flow_folder(folder, indices, filename_tmpls=FLOW_TEMPLATES, start_index=1, num_frames=None, short_side=None):
    """Reads precomputed x/y flow frames of a folder: uint8 `indices.shape + [H, W, 2]` (x, y).

    The `denseflow` / TSN layout: frame i is the grey images
    `flow_x_{start_index + i:05d}.jpg` and `flow_y_...` (quantized flow, 128 = no motion),
    the same values as the flow that `prepare_tfrecords(flow=True)` stores. Arguments and
    errors as `read_frame_folder`; `filename_tmpls` is the (x, y) template pair.
    """
    if len(filename_tmpls) != 2:
        raise ValueError(f"filename_tmpls={filename_tmpls!r} must be the (x, y) pair of flow templates")
    return _read(folder, indices, list(filename_tmpls), start_index, num_frames, short_side, cv2.IMREAD_GRAYSCALE)


def flow_templates(spec=None):
    """The (x, y) flow file templates of `spec`: None (`flow_x_{:05d}.jpg`, `flow_y_...`), an (x, y) pair or
    "x_tmpl,y_tmpl", or MMAction2's one template whose first field is the direction (`flow_{}_{:05d}.jpg`).

    ValueError naming `spec` when it is none of these.
    """
    if spec is None or spec == "":
        return FLOW_TEMPLATES
    pair = spec.split(",") if isinstance(spec, str) and "," in spec else spec
    if isinstance(pair, str):
        if "{}" not in pair:
            raise ValueError(f"flow_filename_tmpl={spec!r} must be an (x, y) pair ('flow_x_{{:05d}}.jpg,flow_y_{{:05d}}"
                             ".jpg') or one template whose first field '{{}}' is x / y ('flow_{{}}_{{:05d}}.jpg')")
        pair = [pair.replace("{}", d, 1) for d in ("x", "y")]
    if len(pair) != 2:
        raise ValueError(f"flow_filename_tmpl={spec!r} must be the (x, y) pair of flow templates")
    x, y = (normalize_template(t.strip()) for t in pair)
    if x == y:
        raise ValueError(f"flow_filename_tmpl={spec!r} names the same files for x and y")
    return x, y


def is_frame_record(record):
    """True for a `VideoRecord` of a frame folder (it has a frame template)."""
    return getattr(record, "frame_template", None) is not None


def record_num_frames(record):
    """Frames of a record's video file or frame folder (a folder's listed count, else its files)."""
    return probe_record(record).num_frames


def probe_record(record):
    """`VideoInfo` of a record's video file; for a frame folder its frame count and first frame's size (fps 0)."""
    if not is_frame_record(record):
        return _video_io.probe_video(record.path)
    count = record.num_frames
    if count is None:
        count = count_frame_files(record.path, record.frame_template, record.start_index)
    first = read_frame_folder(record.path, [0], record.frame_template, record.start_index, count)
    return _video_io.VideoInfo(path=record.path, num_frames=int(count), fps=0.0, height=first.shape[1],
                               width=first.shape[2], codec="jpeg-folder")


def read_record_frames(record, indices, short_side=None):
    """uint8 RGB frames [..., H, W, 3] at `indices` of a record's video file or frame folder."""
    if is_frame_record(record):
        count = record.num_frames
        if count is None:
            count = count_frame_files(record.path, record.frame_template, record.start_index)
        return read_frame_folder(record.path, indices, record.frame_template, record.start_index, count, short_side)
    return _video_io.read_frames(record.path, indices, short_side=short_side)
