"""The field's datasets as they are distributed: list formats, class files and splits.

`read_dataset(path, format=...)` reads one split of a dataset in its published layout
into `VideoRecord`s (video files or frame folders) and its class names:

  list       `path label` lines or a `path,label` CSV (`read_annotations`).
  mmaction   MMAction2 video list `path label`; multi-label `path l1 l2 ...`.
  rawframes  MMAction2 / TSN / TSM frame lists `frame_dir total_frames label [label ...]`;
             folders of `img_{:05d}.jpg` (`filename_tmpl`, `start_index` configurable).
  kinetics   the official CSV `label,youtube_id,time_start,time_end,split`; clips named
             `{youtube_id}_{start:06d}_{end:06d}.mp4` anywhere under the video root
             (the downloader's `<label>/` folders or flat). A missing clip is counted and
             listed in `DatasetListing.missing`, not fatal.
  sthv2      Something-Something V2: `train.json` / `validation.json` entries (`id`,
             `template` with `[something]`), classes from `labels.json` beside them,
             videos `{id}.webm`.
  sthv1, jester  `*-train.csv` / `*-validation.csv` lines `id;label`, classes from the
             `*-labels.csv` beside them, JPEG folders `{id}/{:05d}.jpg`.
  ucf101     `trainlist0N.txt` (`Class/v_x.avi N`, 1-based) / `testlistN.txt` (`Class/v_x.avi`),
             classes from `classInd.txt` (`N Class`, 1-based) beside them.
  hmdb51     the folder of `<class>_test_split<N>.txt` files (lines `video.avi 1|2|0`:
             1 train, 2 test, 0 unused); `subset` picks train or test, `split` N;
             classes sorted by name; videos `<class>/<video>.avi`.

A line that fits no layout is an `AnnotationError` naming the file, the line and the
layout expected. `format="auto"` detects the layout from the file name and contents
where that is unambiguous.

Trainers carry a format through one string, `format_source(path, format, ...)`
(`"ucf101:/d/trainlist01.txt|video_root=/d/UCF-101"`), which `video_dataset` and the
binaries read like a list path.
"""

import csv
import dataclasses
import glob
import io
import json
import os
import re

from absl import logging

from tfvideo.api._export import tf_export
from tfvideo.data import _annotations, _rawframes
from tfvideo.data._annotations import AnnotationError, VideoRecord

FORMATS = ("list", "mmaction", "rawframes", "kinetics", "sthv2", "sthv1", "jester", "ucf101", "hmdb51")
SUBSETS = ("train", "test")
_OPTIONS = ("video_root", "subset", "split", "filename_tmpl", "start_index", "flow_filename_tmpl")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv", ".3gp")
_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<n>\d+)\.txt$")
_UCF_LIST = re.compile(r"^(train|test)list(\d+)\.txt$")


@tf_export("tfvideo.data.DatasetListing")
@dataclasses.dataclass(frozen=True)
class DatasetListing:
    """One split of a dataset: its `records`, `class_names` (None: labels are bare ids),
    the `format` read, `missing` ([(file:line, path)] of listed clips not found; kinetics)
    and `multi_label` (some entry has several labels)."""

    records: list
    class_names: list
    format: str
    missing: list = dataclasses.field(default_factory=list)
    multi_label: bool = False


def _text_lines(path, what):
    return _annotations._read_text(path, what).split("\n")


def _int(text, where, what):
    try:
        return int(text)
    except ValueError:
        raise AnnotationError(f"{where}: {what} {text!r} is not an integer") from None


def _root(path, video_root):
    return os.fspath(video_root) if video_root else os.path.dirname(os.path.abspath(path))


def _check_label(label, class_names, where):
    if label < 0 or (class_names is not None and label >= len(class_names)):
        limit = f"[0, {len(class_names)})" if class_names is not None else ">= 0"
        raise AnnotationError(f"{where}: label {label} out of range {limit}")
    return label


def _names(label_map):
    if isinstance(label_map, (str, os.PathLike)):
        return read_class_names(label_map)
    return list(label_map) if label_map is not None else None


def _same_classes(found, given, where):
    """The dataset's own classes, checked against a label map given by the caller."""
    if given is not None and list(given) != list(found):
        if len(given) != len(found):
            raise AnnotationError(f"{where}: {len(found)} classes, the label map given has {len(given)}")
        k = next(i for i, (a, b) in enumerate(zip(found, given)) if a != b)
        raise AnnotationError(f"{where}: class {k} is {found[k]!r}, the label map given says {given[k]!r}")
    return found


# --- class files -----------------------------------------------------------------------

def _read_class_index(path):
    """UCF101's `classInd.txt`: `N ClassName` lines, N = 1..C in order (1-based) -> names."""
    names = []
    for lineno, line in enumerate(_text_lines(path, "class index"), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise AnnotationError(f"{path}:{lineno}: expected '<1-based class id> <class name>' (UCF101 classInd.txt), "
                                  f"got {line!r}")
        if int(parts[0]) != len(names) + 1:
            raise AnnotationError(f"{path}:{lineno}: class id {parts[0]} where {len(names) + 1} was expected "
                                  "(classInd.txt numbers classes 1, 2, ... in order)")
        names.append(parts[1])
    if not names:
        raise AnnotationError(f"{path}: the class index has no classes")
    return names


def _read_labels_json(path):
    """Something-Something V2's `labels.json`: {"class name": "id"} with ids 0..C-1 -> names."""
    try:
        mapping = json.loads(_annotations._read_text(path, "labels.json"))
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(mapping, dict) or not mapping:
        raise AnnotationError(f"{path}: expected an object {{\"class name\": \"id\", ...}} (SSv2 labels.json)")
    names = [None] * len(mapping)
    for name, value in mapping.items():
        try:
            k = int(value)
        except (TypeError, ValueError):
            k = -1
        if not 0 <= k < len(names) or names[k] is not None:
            raise AnnotationError(f"{path}: class {name!r} has id {value!r}; ids must be 0..{len(names) - 1}, each once")
        names[k] = name
    return names


@tf_export("tfvideo.data.read_class_names")
def read_class_names(path):
    """Class names (index = class id) of a label map in any published form.

    A text file with one name per line (also `*-labels.csv` of Something-Something V1 /
    Jester and MMAction2's `label_map_*.txt`), UCF101's 1-based `classInd.txt`
    (`N ClassName` lines numbered 1..C), or SSv2's `labels.json` ({"name": "id"}).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AnnotationError(f"label map {path} does not exist")
    if path.endswith(".json"):
        return _read_labels_json(path)
    lines = [line.strip() for line in _text_lines(path, "label map") if line.strip()]
    if lines and all(re.fullmatch(r"\d+\s+\S+", line) for line in lines) and lines[0].split()[0] == "1":
        return _read_class_index(path)
    return _annotations.read_label_map(path)


# --- detection -------------------------------------------------------------------------

def _first_line(path):
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            for line in f:
                if line.strip() and not line.lstrip().startswith("#"):
                    return line.strip()
    except OSError:
        return ""
    return ""


def _looks_like_video(path):
    return path.lower().endswith(VIDEO_EXTENSIONS)


@tf_export("tfvideo.data.detect_format")
def detect_format(path, video_root=None):
    """The format of a dataset file or folder (one of `FORMATS`), or raises `AnnotationError`.

    From the published names (`trainlist01.txt`, `*_test_split1.txt`, `*.json`,
    `*-train.csv`) and the first line's fields; a `path n m` line is rawframes when `path`
    is a folder under the video root and a multi-label video list when it is a video file.
    """
    path = os.fspath(path)
    name = os.path.basename(path.rstrip("/"))
    if os.path.isdir(path):
        if glob.glob(os.path.join(glob.escape(path), "*_test_split*.txt")):
            return "hmdb51"
        raise AnnotationError(f"{path}: a folder is a dataset only as HMDB51's split folder (*_test_splitN.txt files)")
    if _SPLIT_FILE.match(name):
        return "hmdb51"
    if _UCF_LIST.match(name):
        return "ucf101"
    if name.endswith(".json"):
        return "sthv2"
    first = _first_line(path)
    if name.endswith(".csv"):
        header = [c.strip() for c in first.split(",")]
        if "youtube_id" in header:
            return "kinetics"
        if ";" in first:
            if "jester" in name.lower():
                return "jester"
            if "something" in name.lower():
                return "sthv1"
            raise AnnotationError(f"{path}:1: 'id;label' lines are Something-Something V1 or Jester; give "
                                  "--format=sthv1 or --format=jester")
        return "list"
    fields = first.split()
    if len(fields) <= 2 or not all(re.fullmatch(r"-?\d+", f) for f in fields[1:]):
        return "list"
    root = _root(path, video_root)
    target = os.path.join(root, fields[0])
    if os.path.isdir(target):
        return "rawframes"
    if os.path.isfile(target) or _looks_like_video(fields[0]):
        return "mmaction"
    raise AnnotationError(f"{path}:1: {first!r} is a rawframes line ('frame_dir total_frames label') or a multi-label "
                          f"video line ('path l1 l2 ...') and {target} does not exist to tell which; give "
                          "--format=rawframes or --format=mmaction (and --video_root)")


# --- readers ---------------------------------------------------------------------------

def _lines(path, what):
    """(line number, stripped line) of the non-empty, non-comment lines."""
    for lineno, line in enumerate(_text_lines(path, what), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield lineno, line


def _read_mmaction(path, root, class_names, rawframes, filename_tmpl, start_index):
    layout = ("'frame_dir total_frames label [label ...]' (rawframes list)" if rawframes
              else "'path label [label ...]' (MMAction2 video list)")
    first = 3 if rawframes else 2
    records = []
    for lineno, line in _lines(path, "annotation list"):
        where = f"{path}:{lineno}"
        parts = line.split()
        if len(parts) < first or not all(re.fullmatch(r"-?\d+", p) for p in parts[1:]):
            raise AnnotationError(f"{where}: expected {layout}, got {line!r}")
        labels = tuple(_check_label(int(p), class_names, where) for p in parts[first - 1:])
        if len(set(labels)) != len(labels):
            raise AnnotationError(f"{where}: label repeated in {line!r}")
        rel = parts[0]
        full = rel if os.path.isabs(rel) else os.path.join(root, rel)
        extra = {}
        if rawframes:
            count = int(parts[1])
            if count < 1:
                raise AnnotationError(f"{where}: total_frames {count} must be >= 1 in {line!r}")
            extra = dict(num_frames=count, frame_template=filename_tmpl, start_index=start_index)
        media_id = rel if rawframes else os.path.splitext(rel)[0]
        records.append(VideoRecord(path=full, label=labels[0], media_id=media_id,
                                   labels=labels if len(labels) > 1 else None, **extra))
    return records


def _kinetics_name(text):
    return text.replace('"', "").replace(" ", "_").strip()


def _index_clips(root):
    """{file name without extension: path} of every video file under `root` (one walk)."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if _looks_like_video(name):
                found.setdefault(os.path.splitext(name)[0], os.path.join(folder, name))
    return found


def _time(text, where, column):
    try:
        return int(float(text))
    except ValueError:
        raise AnnotationError(f"{where}: {column} {text!r} is not a number") from None


def _read_kinetics(path, root, class_names):
    text = _annotations._read_text(path, "Kinetics CSV")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [c.strip() for c in next(reader, [])]
    needed = ("youtube_id", "time_start", "time_end")
    if not all(c in header for c in needed):
        raise AnnotationError(f"{path}:1: expected the Kinetics header 'label,youtube_id,time_start,time_end,split', "
                              f"got {','.join(header)!r}")
    col = {c: header.index(c) for c in header}
    rows = []
    for row in reader:
        if not row or not any(c.strip() for c in row):
            continue
        where = f"{path}:{reader.line_num}"
        if len(row) != len(header):
            raise AnnotationError(f"{where}: expected {len(header)} columns ({','.join(header)}), got {len(row)}")
        rows.append((where, row))
    if not rows:
        raise AnnotationError(f"annotation list {path} has no entries")
    has_label = "label" in col
    if class_names is None and has_label:
        # MMAction2's order (tools/data/parse_file_list.py): sorted by the name with spaces as '_'.
        class_names = sorted({row[col["label"]].replace('"', "").strip() for _, row in rows}, key=_kinetics_name)
    by_name = {_kinetics_name(n): k for k, n in enumerate(class_names or [])}
    clips = _index_clips(root)
    records, missing = [], []
    for where, row in rows:
        ytid = row[col["youtube_id"]].strip()
        start, end = (_time(row[col[c]], where, c) for c in ("time_start", "time_end"))
        clip = f"{ytid}_{start:06d}_{end:06d}"
        label = -1
        if has_label:
            name = _kinetics_name(row[col["label"]])
            if name not in by_name:
                raise AnnotationError(f"{where}: unknown label {row[col['label']]!r} (not in the label map)")
            label = by_name[name]
        if clip not in clips:
            missing.append((where, os.path.join(root, clip + ".mp4")))
            continue
        records.append(VideoRecord(path=clips[clip], label=label, media_id=clip))
    return records, class_names, missing


def _beside(path, patterns, what, fix):
    folder = os.path.dirname(os.path.abspath(path))
    for pattern in patterns:
        found = sorted(glob.glob(os.path.join(glob.escape(folder), pattern)))
        if found:
            return found[0]
    raise AnnotationError(f"{path}: {what} not found beside it ({' or '.join(patterns)}); {fix}")


def _read_sthv2(path, root, class_names):
    labels_file = _beside(path, ["labels.json", "*-labels.json"], "the SSv2 class file labels.json",
                          "put it there or pass --label_map")
    own = _read_labels_json(labels_file)
    class_names = _same_classes(own, class_names, labels_file)
    index = {name: k for k, name in enumerate(class_names)}
    try:
        items = json.loads(_annotations._read_text(path, "SSv2 list"))
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(items, list):
        raise AnnotationError(f"{path}: expected a list of {{\"id\", \"template\", ...}} entries (SSv2 train.json)")
    records = []
    for k, item in enumerate(items):
        where = f"{path}: entry {k}"
        if not isinstance(item, dict) or "id" not in item:
            raise AnnotationError(f"{where}: expected {{\"id\": ..., \"template\": ...}}, got {str(item)[:80]!r}")
        label = -1
        if "template" in item:
            template = str(item["template"]).replace("[", "").replace("]", "")
            if template not in index:
                raise AnnotationError(f"{where} (id {item['id']}): template {item['template']!r} is not a class of "
                                      f"{labels_file}")
            label = index[template]
        vid = str(item["id"])
        records.append(VideoRecord(path=os.path.join(root, f"{vid}.webm"), label=label, media_id=vid))
    return records, class_names


def _read_frames_csv(path, root, class_names, fmt, filename_tmpl, start_index):
    stem = os.path.basename(path)
    prefix = stem.rsplit("-", 1)[0] if "-" in stem else ""
    labels_file = _beside(path, [f"{prefix}-labels.csv", "*-labels.csv"], f"the {fmt} class file *-labels.csv",
                          "put it there or pass --label_map")
    own = _annotations.read_label_map(labels_file)
    class_names = _same_classes(own, class_names, labels_file)
    index = {name: k for k, name in enumerate(class_names)}
    records = []
    for lineno, line in _lines(path, f"{fmt} list"):
        where = f"{path}:{lineno}"
        parts = line.split(";")
        if len(parts) > 2 or not parts[0].strip():
            raise AnnotationError(f"{where}: expected 'id;label' ({fmt} list), got {line!r}")
        label = -1
        if len(parts) == 2:
            if parts[1].strip() not in index:
                raise AnnotationError(f"{where}: unknown label {parts[1].strip()!r} (not in {labels_file})")
            label = index[parts[1].strip()]
        vid = parts[0].strip()
        records.append(VideoRecord(path=os.path.join(root, vid), label=label, media_id=vid,
                                   frame_template=filename_tmpl, start_index=start_index))
    return records, class_names


def _read_ucf101(path, root, class_names):
    index_file = _beside(path, ["classInd.txt"], "UCF101's classInd.txt", "it ships with the split lists")
    own = _read_class_index(index_file)
    class_names = _same_classes(own, class_names, index_file)
    by_name = {name.lower(): k for k, name in enumerate(class_names)}
    records = []
    for lineno, line in _lines(path, "UCF101 list"):
        where = f"{path}:{lineno}"
        parts = line.split()
        if len(parts) not in (1, 2) or "/" not in parts[0]:
            raise AnnotationError(f"{where}: expected 'Class/v_Class_gNN_cNN.avi [1-based class id]' (UCF101 "
                                  f"train/testlist), got {line!r}")
        folder = parts[0].split("/")[0]
        if folder.lower() not in by_name:
            raise AnnotationError(f"{where}: class folder {folder!r} is not in {index_file}")
        label = by_name[folder.lower()]
        if len(parts) == 2:
            given = _int(parts[1], where, "class id")
            if given - 1 != label:
                raise AnnotationError(f"{where}: class id {given} (1-based, {index_file}) is "
                                      f"{class_names[given - 1] if 0 < given <= len(class_names) else 'no class'}, "
                                      f"the folder says {folder!r}")
        records.append(VideoRecord(path=os.path.join(root, parts[0]), label=label,
                                   media_id=os.path.splitext(parts[0])[0]))
    return records, class_names


def _read_hmdb51(path, root, class_names, subset, split):
    folder, split_from_name = path, None
    if os.path.isfile(path):
        match = _SPLIT_FILE.match(os.path.basename(path))
        if not match:
            raise AnnotationError(f"{path}: expected HMDB51's split folder or a '<class>_test_split<N>.txt' file")
        folder, split_from_name = os.path.dirname(os.path.abspath(path)), int(match.group("n"))
    split = split or split_from_name or 1
    if subset not in SUBSETS:
        raise AnnotationError(f"{path}: HMDB51 needs subset 'train' or 'test' (got {subset!r})")
    files = {}
    for name in os.listdir(folder):
        match = _SPLIT_FILE.match(name)
        if match and int(match.group("n")) == split:
            files[match.group("cls")] = os.path.join(folder, name)
    if not files:
        raise AnnotationError(f"{folder}: no '<class>_test_split{split}.txt' files (HMDB51 split {split})")
    own = sorted(files)
    class_names = _same_classes(own, class_names, folder)
    wanted = "1" if subset == "train" else "2"
    records = []
    for label, cls in enumerate(class_names):
        for lineno, line in _lines(files[cls], "HMDB51 split"):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise AnnotationError(f"{files[cls]}:{lineno}: expected '<video>.avi 0|1|2' (HMDB51 split: 1 train, "
                                      f"2 test, 0 unused), got {line!r}")
            if parts[1] == wanted:
                rel = f"{cls}/{parts[0]}"
                records.append(VideoRecord(path=os.path.join(root, rel), label=label,
                                           media_id=os.path.splitext(rel)[0]))
    return records, class_names


def _check_option(name, value, ok, rule):
    if value is not None and not ok:
        raise ValueError(f"{name}={value!r} must be {rule}")


@tf_export("tfvideo.data.read_dataset")
def read_dataset(path, format="auto", *, video_root=None, label_map=None, subset=None, split=None, filename_tmpl=None,
                 start_index=None):
    """Reads one split of a dataset in its published layout (see the formats above).

    Args:
      path: the list / CSV / JSON file of the split (HMDB51: its split folder), or a
        `format_source` string (its format and options apply unless given here).
      format: one of `FORMATS`, or "auto" (from the name and first line).
      video_root: where the videos / frame folders are (default: the list's folder).
      label_map: class names (list or file); formats that ship a class file are checked
        against it, the others map names / range-check ids with it.
      subset: "train" or "test" (HMDB51's split files hold both).
      split: HMDB51 split number (default 1, or the file's).
      filename_tmpl, start_index: frame files of rawframes (`img_{:05d}.jpg`, 1) and
        sthv1 / jester (`{:05d}.jpg`, 1) folders.
    Returns:
      `DatasetListing`.
    """
    parsed = parse_source(path)
    if parsed is not None:
        path, fmt, options = parsed
        format = fmt if format == "auto" else format
        video_root = video_root or options.get("video_root")
        subset = subset or options.get("subset")
        split = split or options.get("split")
        filename_tmpl = filename_tmpl or options.get("filename_tmpl")
        start_index = options.get("start_index") if start_index is None else start_index
    path = os.fspath(path)
    if format not in FORMATS + ("auto",):
        raise ValueError(f"format={format!r} is not one of {('auto',) + FORMATS}")
    _check_option("split", split, split is None or (isinstance(split, int) and split >= 1), "an integer >= 1")
    _check_option("start_index", start_index, isinstance(start_index, int) and start_index >= 0, "an integer >= 0")
    if not os.path.exists(path):
        raise AnnotationError(f"annotation list {path} does not exist")
    if format == "auto":
        format = detect_format(path, video_root)
    class_names = _names(label_map)
    root = _root(path, video_root)
    start = 1 if start_index is None else int(start_index)
    missing = []
    if format == "list":
        records = _annotations.read_annotations(path, video_root, class_names)
    elif format in ("mmaction", "rawframes"):
        template = _rawframes.normalize_template(filename_tmpl or _rawframes.RGB_TEMPLATE)
        records = _read_mmaction(path, root, class_names, format == "rawframes", template, start)
    elif format == "kinetics":
        records, class_names, missing = _read_kinetics(path, root, class_names)
    elif format == "sthv2":
        records, class_names = _read_sthv2(path, root, class_names)
    elif format in ("sthv1", "jester"):
        template = _rawframes.normalize_template(filename_tmpl or "{:05d}.jpg")
        records, class_names = _read_frames_csv(path, root, class_names, format, template, start)
    elif format == "ucf101":
        records, class_names = _read_ucf101(path, root, class_names)
    else:
        records, class_names = _read_hmdb51(path, root, class_names, subset or "train", split)
    if missing:
        shown = "; ".join(f"{where}: {clip}" for where, clip in missing[:5])
        logging.warning("%s: %d of %d listed clips are missing (%s%s)", path, len(missing), len(missing) + len(records),
                        shown, "; ..." if len(missing) > 5 else "")
    if not records:
        raise AnnotationError(f"annotation list {path} has no entries" + (
            f" whose clip exists ({len(missing)} listed clips missing under {root}, e.g. {missing[0][1]})"
            if missing else ""))
    multi = any(r.labels is not None for r in records)
    return DatasetListing(records=records, class_names=class_names, format=format, missing=missing, multi_label=multi)


# --- source strings --------------------------------------------------------------------

@tf_export("tfvideo.data.format_source")
def format_source(path, format, **options):
    """The one-string form of a dataset in a `format`: `"<format>:<path>|key=value|..."`.

    `video_dataset`, `read_dataset` and the binaries (config.json's train_data) take it
    like a list path. Options: video_root, subset, split, filename_tmpl, start_index,
    flow_filename_tmpl (the flow files of frame folders read with modality "flow", see
    `video_dataset`; None values are left out). format "list" gives the plain path.
    """
    if format not in FORMATS:
        raise ValueError(f"format={format!r} is not one of {FORMATS}")
    for key in options:
        if key not in _OPTIONS:
            raise ValueError(f"format_source: unknown option {key!r} (known: {', '.join(_OPTIONS)})")
    path = os.fspath(path)
    if format == "list" and not any(v is not None for v in options.values()):
        return path
    text = f"{format}:{path}"
    for key in _OPTIONS:
        value = options.get(key)
        if value is not None:
            if "|" in str(value) or "|" in path:
                raise ValueError(f"format_source: {key}={value!r} or path {path!r} contains '|'")
            text += f"|{key}={value}"
    return text


def parse_source(source):
    """(path, format, options) of a `format_source` string, else None (a plain path or pattern)."""
    if not isinstance(source, str):
        return None
    head, sep, rest = source.partition(":")
    if not sep or head not in FORMATS:
        return None
    path, *pairs = rest.split("|")
    options = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in _OPTIONS:
            raise ValueError(f"{source}: unknown option {key!r} (known: {', '.join(_OPTIONS)})")
        options[key] = int(value) if key in ("split", "start_index") else value
    return path, head, options


def source_path(source):
    """The file (or folder) a source string names: the path of a `format_source` string, else itself."""
    parsed = parse_source(source)
    return parsed[0] if parsed else source


def is_listing_source(source):
    """True for a format_source string or a list file (anything `read_dataset` reads)."""
    return parse_source(source) is not None or (isinstance(source, str) and source.endswith((".txt", ".csv", ".list")))
