"""Miniature copies of the field's datasets as they are distributed (file names, list fields,
split and class files as published), with tiny videos / JPEG folders made on the spot.

Each builder returns a dict: `train` / `test` (what --train_data / --eval_data take),
`format`, `video_root` (None: the list's folder works), `classes` (class names in id
order) and `expected_test` ({media_id: label} the test split must read).
"""

import json
import os

import cv2
import numpy as np

from tfvideo import data

FRAMES = 12
SIZE = (24, 32)  # (height, width)


def _frames(seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (1, SIZE[0], SIZE[1], 3), np.uint8)
    ramp = (np.arange(FRAMES) * 16).astype(np.uint8)[:, None, None, None]
    return (base + ramp).astype(np.uint8)


def write_clip(path, seed, codec="libx264"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data.write_video(path, _frames(seed), fps=10, codec=codec)
    return path


def write_frame_folder(folder, seed, template="img_{:05d}.jpg", count=FRAMES, flow=False):
    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(_frames(seed)[:count]):
        cv2.imwrite(os.path.join(folder, template.format(i + 1)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if flow:
            for axis, value in (("x", 100 + i), ("y", 150 - i)):
                cv2.imwrite(os.path.join(folder, f"flow_{axis}_{i + 1:05d}.jpg"), np.full(SIZE, value, np.uint8))
    return folder


def _write(path, text, newline="\n"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write(text.replace("\n", newline))
    return path


def ucf101(root):
    """UCF101: UCF-101/<Class>/v_<Class>_gNN_cNN.avi; ucfTrainTestlist/classInd.txt (1-based, CRLF)."""
    classes = ["ApplyEyeMakeup", "Archery"]
    lists = os.path.join(root, "ucfTrainTestlist")
    videos = os.path.join(root, "UCF-101")
    train, test = [], []
    for k, cls in enumerate(classes):
        for g in (8, 9, 1):
            rel = f"{cls}/v_{cls}_g{g:02d}_c01.avi"
            write_clip(os.path.join(videos, rel), 10 * k + g, codec="mpeg4")
            (train if g >= 8 else test).append(rel)
    _write(os.path.join(lists, "classInd.txt"), "".join(f"{k + 1} {c}\n" for k, c in enumerate(classes)), "\r\n")
    label = {rel: classes.index(rel.split("/")[0]) for rel in train + test}
    _write(os.path.join(lists, "trainlist01.txt"), "".join(f"{r} {label[r] + 1}\n" for r in train), "\r\n")
    _write(os.path.join(lists, "testlist01.txt"), "".join(f"{r}\n" for r in test), "\r\n")
    return {"format": "ucf101", "train": os.path.join(lists, "trainlist01.txt"),
            "test": os.path.join(lists, "testlist01.txt"), "video_root": videos, "classes": classes,
            "expected_test": {os.path.splitext(r)[0]: label[r] for r in test}}


def hmdb51(root):
    """HMDB51: hmdb51/<class>/<video>.avi; testTrainMulti_7030_splits/<class>_test_split<N>.txt (1 train, 2 test, 0 unused)."""
    classes = ["brush_hair", "cartwheel"]
    splits = os.path.join(root, "testTrainMulti_7030_splits")
    videos = os.path.join(root, "hmdb51")
    expected = {}
    for k, cls in enumerate(classes):
        for n in (1, 2, 3):
            lines = []
            for j, role in enumerate(("1", "1", "2", "0")):
                name = f"April_09_{cls}_u_nm_np1_ba_goo_{j}.avi"
                if n == 1:
                    write_clip(os.path.join(videos, cls, name), 20 * k + j, codec="mpeg4")
                    if role == "2":
                        expected[f"{cls}/{os.path.splitext(name)[0]}"] = k
                lines.append(f"{name} {role if n == 1 else '0'} \n")
            _write(os.path.join(splits, f"{cls}_test_split{n}.txt"), "".join(lines))
    return {"format": "hmdb51", "train": splits, "test": splits, "video_root": videos, "classes": classes,
            "expected_test": expected}


def kinetics(root):
    """Kinetics: the official CSVs; clips <label dir>/<youtube_id>_<start:06d>_<end:06d>.mp4 (one missing)."""
    classes = ["abseiling", "air drumming"]
    base = os.path.join(root, "kinetics400")
    rows = {"train": [], "val": []}
    expected = {}
    for k, cls in enumerate(classes):
        for j, split in enumerate(("train", "train", "val")):
            ytid, start = f"-{k}x{j}Abc_Q9", 10 * j + 1
            clip = f"{ytid}_{start:06d}_{start + 10:06d}"
            rows[split].append(f"{cls},{ytid},{start},{start + 10},{split}\n")
            write_clip(os.path.join(base, split, cls.replace(" ", "_"), clip + ".mp4"), 30 * k + j)
            if split == "val":
                expected[clip] = k
    rows["train"].append("abseiling,gone_video1,5,15,train\n")  # Taken down: not downloaded.
    header = "label,youtube_id,time_start,time_end,split\n"
    _write(os.path.join(base, "annotations", "train.csv"), header + "".join(rows["train"]))
    _write(os.path.join(base, "annotations", "validate.csv"), header + "".join(rows["val"]))
    return {"format": "kinetics", "train": os.path.join(base, "annotations", "train.csv"),
            "test": os.path.join(base, "annotations", "validate.csv"), "video_root": base, "classes": classes,
            "expected_test": expected, "missing": 1}


def sthv2(root):
    """Something-Something V2: labels/labels.json, train.json, validation.json; 20bn-something-something-v2/<id>.webm."""
    classes = ["Holding something next to something", "Pushing something from left to right"]
    labels = os.path.join(root, "labels")
    videos = os.path.join(root, "20bn-something-something-v2")
    _write(os.path.join(labels, "labels.json"), json.dumps({c: str(k) for k, c in enumerate(classes)}, indent=1))
    templates = ["Holding [something] next to [something]", "Pushing [something] from left to right"]
    entries = {"train": [], "validation": []}
    expected = {}
    for k in range(2):
        for j, split in enumerate(("train", "train", "validation")):
            vid = str(78687 + 10 * k + j)
            write_clip(os.path.join(videos, f"{vid}.webm"), 40 * k + j, codec="libvpx-vp9")
            entries[split].append({"id": vid, "label": f"holding potato next to bottle {vid}", "template": templates[k],
                                   "placeholders": ["potato", "bottle"]})
            if split == "validation":
                expected[vid] = k
    for split, items in entries.items():
        _write(os.path.join(labels, f"{split}.json"), json.dumps(items))
    return {"format": "sthv2", "train": os.path.join(labels, "train.json"),
            "test": os.path.join(labels, "validation.json"), "video_root": videos, "classes": classes,
            "expected_test": expected}


def _frames_csv(root, name, folder, classes):
    lists = os.path.join(root, "annotations")
    frames = os.path.join(root, folder)
    _write(os.path.join(lists, f"{name}-labels.csv"), "".join(f"{c}\n" for c in classes))
    rows = {"train": [], "validation": []}
    expected = {}
    for k, cls in enumerate(classes):
        for j, split in enumerate(("train", "train", "validation")):
            vid = str(100218 + 10 * k + j)
            write_frame_folder(os.path.join(frames, vid), 50 * k + j, template="{:05d}.jpg")
            rows[split].append(f"{vid};{cls}\n")
            if split == "validation":
                expected[vid] = k
    for split, lines in rows.items():
        _write(os.path.join(lists, f"{name}-{split}.csv"), "".join(lines))
    return {"train": os.path.join(lists, f"{name}-train.csv"), "test": os.path.join(lists, f"{name}-validation.csv"),
            "video_root": frames, "classes": classes, "expected_test": expected}


def sthv1(root):
    """Something-Something V1: something-something-v1-{labels,train,validation}.csv; JPEG folders <id>/%05d.jpg."""
    return {"format": "sthv1", **_frames_csv(root, "something-something-v1", "20bn-something-something-v1",
                                             ["Holding something", "Turning something upside down"])}


def jester(root):
    """Jester: jester-v1-{labels,train,validation}.csv; JPEG folders 20bn-jester-v1/<id>/%05d.jpg."""
    return {"format": "jester", **_frames_csv(root, "jester-v1", "20bn-jester-v1", ["Swiping Left", "Swiping Right"])}


def rawframes(root):
    """MMAction2 / TSN rawframes: `frame_dir total_frames label` lists; folders of img_%05d.jpg and flow_{x,y}_%05d.jpg."""
    frames = os.path.join(root, "rawframes")
    lists = {"train": [], "val": []}
    expected = {}
    for k in range(2):
        for j, split in enumerate(("train", "train", "val")):
            name = f"class{k}/video_{j}"
            write_frame_folder(os.path.join(frames, name), 60 * k + j, flow=True)
            lists[split].append(f"{name} {FRAMES} {k}\n")
            if split == "val":
                expected[name] = k
    for split, lines in lists.items():
        _write(os.path.join(root, f"mini_{split}_list_rawframes.txt"), "".join(lines))
    return {"format": "rawframes", "train": os.path.join(root, "mini_train_list_rawframes.txt"),
            "test": os.path.join(root, "mini_val_list_rawframes.txt"), "video_root": frames, "classes": None,
            "expected_test": expected}


def mmaction(root):
    """MMAction2 video list `path label`."""
    videos = os.path.join(root, "videos")
    lists = {"train": [], "val": []}
    expected = {}
    for k in range(2):
        for j, split in enumerate(("train", "train", "val")):
            rel = f"class{k}_{j}.mp4"
            write_clip(os.path.join(videos, rel), 70 * k + j)
            lists[split].append(f"{rel} {k}\n")
            if split == "val":
                expected[os.path.splitext(rel)[0]] = k
    for split, lines in lists.items():
        _write(os.path.join(videos, f"mini_{split}_list_videos.txt"), "".join(lines))
    return {"format": "mmaction", "train": os.path.join(videos, "mini_train_list_videos.txt"),
            "test": os.path.join(videos, "mini_val_list_videos.txt"), "video_root": None, "classes": None,
            "expected_test": expected}


BUILDERS = {"ucf101": ucf101, "hmdb51": hmdb51, "kinetics": kinetics, "sthv2": sthv2, "sthv1": sthv1,
            "jester": jester, "rawframes": rawframes, "mmaction": mmaction}
