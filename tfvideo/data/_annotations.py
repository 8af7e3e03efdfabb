"""Annotation lists and label maps.

List forms accepted:
  * `relative/path.mp4 3` lines (whitespace separated, integer label);
  * CSV with a header containing `path,label`; the label is an integer or a class name
    resolved through a label map.
A label map is a text file with one class name per line; line k (0-based) is class k.
Files are UTF-8 (a byte-order mark is allowed). A video is listed once: a repeated line
(same file, same label) is dropped with a warning, the same file with two labels is an
error naming both lines (a record has one label; lists are single-label).
"""

import csv
import dataclasses
import io
import os

from absl import logging

from tfvideo.api._export import tf_export


@tf_export("tfvideo.data.AnnotationError")
class AnnotationError(ValueError):
    """A malformed annotation line or an unknown label; names file and line number."""


@tf_export("tfvideo.data.VideoRecord")
@dataclasses.dataclass(frozen=True)
class VideoRecord:
    """One annotated video: absolute path, integer label and a media id.

    A frame folder (rawframes, Something-Something V1, Jester) has `frame_template` (frame
    i is `frame_template.format(start_index + i)` in the folder `path`) and the frame
    count its list gives in `num_frames` (None: counted from the files). A multi-label
    entry keeps all its classes in `labels` (`label` is the first).
    """

    path: str
    label: int
    media_id: str
    num_frames: int = None
    frame_template: str = None
    start_index: int = 1
    labels: tuple = None


@tf_export("tfvideo.data.read_label_map")
def read_label_map(path):
    """Reads class names, one per line; returns the list (index = class id)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AnnotationError(f"label map {path} does not exist")
    names = [line.strip() for line in _read_text(path, "label map").split("\n")]
    while names and not names[-1]:
        names.pop()
    for lineno, name in enumerate(names, 1):
        if not name:
            raise AnnotationError(f"{path}:{lineno}: empty class name in label map")
    if len(set(names)) != len(names):
        raise AnnotationError(f"{path}: duplicate class names in label map")
    return names


def _read_text(path, what):
    """The UTF-8 text of `path`; AnnotationError naming the file (and line) when it cannot be read."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise AnnotationError(f"{path}:{line}: the {what} is not UTF-8 text (byte {raw[e.start]:#04x} at offset "
                              f"{e.start})") from None


def _parse_label(text, label_map, where):
    text = text.strip()
    try:
        label = int(text)
    except ValueError:
        if label_map is None:
            raise AnnotationError(f"{where}: label {text!r} is not an integer and no label map was given") from None
        if text not in label_map:
            raise AnnotationError(f"{where}: unknown label {text!r} (not in the label map)") from None
        return label_map.index(text)
    if label < 0 or (label_map is not None and label >= len(label_map)):
        limit = f"[0, {len(label_map)})" if label_map is not None else ">= 0"
        raise AnnotationError(f"{where}: label {label} out of range {limit}")
    return label


@tf_export("tfvideo.data.read_annotations")
def read_annotations(path, video_root=None, label_map=None):
    """Reads an annotation list into `VideoRecord`s.

    Args:
      path: the list file (`.csv` with a `path,label` header, otherwise `path label` lines).
      video_root: directory that relative paths are resolved against (default: the
        list's own directory).
      label_map: list of class names (or a path to a label-map file) used to resolve
        class names and to range-check integer labels.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AnnotationError(f"annotation list {path} does not exist")
    if isinstance(label_map, (str, os.PathLike)):
        label_map = read_label_map(label_map)
    root = os.fspath(video_root) if video_root else os.path.dirname(os.path.abspath(path))
    text = _read_text(path, "annotation list")
    records = []
    if path.endswith(".csv"):
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, None)
            if header is None or "path" not in header or "label" not in header:
                raise AnnotationError(f"{path}:1: CSV header must name columns 'path' and 'label', got {header}")
            ip, il = header.index("path"), header.index("label")
            for row in reader:
                lineno = reader.line_num
                if not row or not any(cell.strip() for cell in row):
                    continue
                if len(row) <= max(ip, il):
                    raise AnnotationError(f"{path}:{lineno}: expected {len(header)} columns, got {len(row)}")
                records.append((lineno, row[ip].strip(), row[il]))
        except csv.Error as e:
            raise AnnotationError(f"{path}:{reader.line_num}: not valid CSV: {e}") from None
    else:
        for lineno, line in enumerate(text.split("\n"), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(None, 1)
            if len(parts) != 2:
                raise AnnotationError(f"{path}:{lineno}: expected '<video path> <label>', got {line!r}")
            fields = line.split()
            # `dir 24 0` (rawframes) or `a.mp4 0 1` (multi-label) is not the path `dir 24`; a path
            # with spaces (`my video.avi 2`) is, and so is one that exists.
            if (len(fields) > 2 and all(f.lstrip("-").isdigit() for f in fields[1:])
                    and not os.path.isfile(os.path.join(root, parts[0]))):
                raise AnnotationError(
                    f"{path}:{lineno}: {line!r} has {len(fields)} fields; a video list line is "
                    "'<video path> <label>' (a rawframes line 'frame_dir total_frames label' needs "
                    "--format=rawframes, a multi-label line 'path l1 l2 ...' --format=mmaction)")
            records.append((lineno, parts[0], parts[1]))
    out = []
    first = {}  # normalized video path -> (line, label, label text) of its first listing.
    for lineno, rel, label_text in records:
        label = _parse_label(label_text, label_map, f"{path}:{lineno}")
        full = rel if os.path.isabs(rel) else os.path.join(root, rel)
        key = os.path.normpath(full)
        if key in first:
            seen, seen_label, seen_text = first[key]
            if seen_label != label:
                raise AnnotationError(f"{path}:{lineno}: {rel} is labelled {label_text.strip()!r} here and "
                                      f"{seen_text!r} on {path}:{seen}; a video has one label (lists are single-label)")
            logging.warning("%s:%d: %s is listed again (as on line %d with the same label); keeping line %d",
                            path, lineno, rel, seen, seen)
            continue
        first[key] = (lineno, label, label_text.strip())
        media_id = os.path.splitext(rel)[0]
        out.append(VideoRecord(path=full, label=label, media_id=media_id))
    if not out:
        raise AnnotationError(f"annotation list {path} has no entries")
    return out
