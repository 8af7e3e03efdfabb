"""Annotation lists: duplicate lines, conflicting labels, unreadable lists; tfvideo-prepare's one-line errors.

Before: duplicate lines became duplicate records, the same file with two labels was
accepted, and a label missing from the label map or a CSV without `path,label` ended
tfvideo-prepare with a traceback.
"""

import logging
import os

import pytest
from absl import flags
from framecode import frame_code_frames
from shardfiles import run_binary

from tfvideo import data
from trainers import prepare_data


def write(path, text):
    path.write_text(text)
    return str(path)


def test_exact_duplicates_warn_and_keep_one(tmp_path, caplog):
    path = write(tmp_path / "list.txt", "a.mp4 0\nb.mp4 1\n./a.mp4 0\n\nb.mp4 1\n")
    with caplog.at_level(logging.WARNING):
        records = data.read_annotations(path)
    assert [(os.path.basename(r.path), r.label) for r in records] == [("a.mp4", 0), ("b.mp4", 1)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{path}:3: ./a.mp4 is listed again (as on line 1 with the same label); keeping line 1" in warnings
    assert f"{path}:5: b.mp4 is listed again (as on line 2 with the same label); keeping line 2" in warnings
    # A class name and its id are the same label.
    csv = write(tmp_path / "l.csv", "path,label\nx.mp4,run\ny.mp4,walk\nx.mp4,1\n")
    assert [r.label for r in data.read_annotations(csv, label_map=["walk", "run"])] == [1, 0]


def test_same_file_with_two_labels_names_both_lines(tmp_path):
    path = write(tmp_path / "list.txt", "a.mp4 0\nb.mp4 1\nsub/../a.mp4 2\n")
    with pytest.raises(data.AnnotationError) as info:
        data.read_annotations(path)
    assert str(info.value) == (f"{path}:3: sub/../a.mp4 is labelled '2' here and '0' on {path}:1; a video has one "
                               "label (lists are single-label)")
    csv = write(tmp_path / "l.csv", "label,path\nwalk,x.mp4\nrun,x.mp4\n")
    with pytest.raises(data.AnnotationError, match=rf"{csv}:3: x\.mp4 is labelled 'run' here and 'walk' on {csv}:2"):
        data.read_annotations(csv, label_map=["walk", "run"])


def test_unreadable_lists_name_the_file(tmp_path):
    (tmp_path / "dir.txt").mkdir()
    with pytest.raises(data.AnnotationError, match=r"dir\.txt: cannot read the annotation list: Is a directory"):
        data.read_annotations(tmp_path / "dir.txt")
    (tmp_path / "latin1.txt").write_bytes(b"a.mp4 0\ncaf\xe9.mp4 1\n")
    with pytest.raises(data.AnnotationError, match=r"latin1\.txt:2: the annotation list is not UTF-8 text "
                                                   r"\(byte 0xe9 at offset 11\)"):
        data.read_annotations(tmp_path / "latin1.txt")
    (tmp_path / "labels.txt").write_bytes(b"walk\n\xff\xfe\n")
    with pytest.raises(data.AnnotationError, match=r"labels\.txt:2: the label map is not UTF-8 text"):
        data.read_label_map(tmp_path / "labels.txt")
    # A spreadsheet's UTF-8 byte-order mark is not part of the header.
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfpath,label\nv.mp4,0\n")
    assert [r.label for r in data.read_annotations(tmp_path / "bom.csv")] == [0]


def run_prepare(argv, capsys):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["tfvideo-prepare", *argv])
    try:
        status = prepare_data.main([])  # An exception escaping main is a traceback for the user.
    finally:
        flags.FLAGS.unparse_flags()
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("name, content, message", [
    ("unknown.csv", "path,label\nv.mp4,run\nv2.mp4,swim\n", "{list}:3: unknown label 'swim' (not in the label map)"),
    ("noheader.csv", "v.mp4,run\n", "{list}:1: CSV header must name columns 'path' and 'label', got ['v.mp4', 'run']"),
    ("conflict.txt", "v.mp4 0\nv.mp4 1\n", "{list}:2: v.mp4 is labelled '1' here and '0' on {list}:1; a video has "
                                           "one label (lists are single-label)"),
    ("binary.txt", b"v.mp4 0\n\x89PNG\x00\xff\n", "{list}:2: the annotation list is not UTF-8 text (byte 0x89 at "
                                                  "offset 8)"),
    ("directory.txt", None, "{list}: a folder is a dataset only as HMDB51's split folder (*_test_splitN.txt files)"),
])
def test_prepare_bad_list_is_one_line_and_exit_2(tmp_path, capsys, name, content, message):
    listing = tmp_path / name
    if content is None:
        listing.mkdir()
    elif isinstance(content, bytes):
        listing.write_bytes(content)
    else:
        listing.write_text(content)
    labels = write(tmp_path / "labels.txt", "walk\nrun\n")
    status, out, err = run_prepare([f"--annotations={listing}", f"--label_map={labels}",
                                    f"--output_dir={tmp_path / 'out'}", "--noprogress", "--workers=1"], capsys)
    assert status == 2
    assert err.strip().splitlines()[-1] == "tfvideo-prepare: error: " + message.format(list=listing)
    assert out == "" and not (tmp_path / "out").exists()


def test_prepare_unknown_label_as_the_user_sees_it(tmp_path):
    listing = write(tmp_path / "train.csv", "path,label\nv.mp4,walk\nw.mp4,swim\n")
    labels = write(tmp_path / "labels.txt", "walk\nrun\n")
    proc = run_binary("prepare_data", [f"--annotations={listing}", f"--label_map={labels}",
                                       f"--output_dir={tmp_path / 'out'}", "--noprogress"])
    assert proc.returncode == 2
    assert f"tfvideo-prepare: error: {listing}:3: unknown label 'swim' (not in the label map)\n" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_prepare_writes_a_listed_twice_video_once(tmp_path, capsys):
    video = str(tmp_path / "v.mp4")
    data.write_video(video, frame_code_frames(6, 32, 48), fps=6)
    listing = write(tmp_path / "list.txt", f"{video} 1\n{video} 1\n")
    status, out, _ = run_prepare([f"--annotations={listing}", f"--output_dir={tmp_path / 'out'}", "--noprogress",
                                  "--workers=1", "--resize_short=0"], capsys)
    assert status == 0 and "data: 1 videos in 1 shards (0 already complete), 0 skipped" in out
    assert data.count_records(str(tmp_path / "out" / "data-*")) == 1
