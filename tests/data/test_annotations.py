"""Annotation lists: txt and CSV forms, label maps, and errors naming file:line."""

import os

import pytest

from tfvideo import data


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture
def label_map(tmp_path):
    return write(tmp_path / "labels.txt", "jump\nrun\nwalk\n")


def test_txt_list_with_spaces_in_paths_comments_and_blank_lines(tmp_path):
    path = write(tmp_path / "train.txt", "# header comment\na/v1.mp4 0\n\nb/my video.avi 2\n/abs/v3.mkv 1\n")
    records = data.read_annotations(path)
    assert [(r.path, r.label, r.media_id) for r in records] == [
        (os.path.join(tmp_path, "a/v1.mp4"), 0, "a/v1"),
        (os.path.join(tmp_path, "b/my video.avi"), 2, "b/my video"),
        ("/abs/v3.mkv", 1, "/abs/v3"),
    ]


def test_video_root_overrides_list_directory(tmp_path):
    path = write(tmp_path / "train.txt", "v1.mp4 4\n")
    assert data.read_annotations(path, video_root="/videos")[0].path == "/videos/v1.mp4"


def test_csv_with_class_names_resolved_by_label_map(tmp_path, label_map):
    path = write(tmp_path / "val.csv", "label,path,extra\nwalk,x/a.mp4,1\nrun,x/b.mp4,2\n1,x/c.mp4,3\n")
    records = data.read_annotations(path, label_map=label_map)
    assert [(os.path.basename(r.path), r.label) for r in records] == [("a.mp4", 2), ("b.mp4", 1), ("c.mp4", 1)]
    assert data.read_annotations(path, label_map=data.read_label_map(label_map)) == records


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("a.txt", "ok.mp4 1\nno_label_here\n", r"a\.txt:2: expected '<video path> <label>'"),
        ("b.txt", "ok.mp4 1\n\nx.mp4 walk\n", r"b\.txt:3: label 'walk' is not an integer and no label map"),
        ("c.csv", "path,label\nok.mp4,run\nx.mp4,swim\n", r"c\.csv:3: unknown label 'swim'"),
        ("d.csv", "path,label\nok.mp4,1\nx.mp4,7\n", r"d\.csv:3: label 7 out of range \[0, 3\)"),
        ("e.csv", "path,label\nok.mp4\n", r"e\.csv:2: expected 2 columns, got 1"),
        ("f.csv", "file,class\nok.mp4,1\n", r"f\.csv:1: CSV header must name columns 'path' and 'label'"),
        ("g.txt", "x.mp4 -1\n", r"g\.txt:1: label -1 out of range"),
        ("h.txt", "# only a comment\n\n", r"h\.txt has no entries"),
    ],
)
def test_malformed_lines_and_unknown_labels_name_file_and_line(tmp_path, name, text, message):
    path = write(tmp_path / name, text)
    label_map = ["jump", "run", "walk"] if name.endswith(".csv") else None
    with pytest.raises(data.AnnotationError, match=message):
        data.read_annotations(path, label_map=label_map)


def test_missing_list_and_bad_label_maps(tmp_path):
    with pytest.raises(data.AnnotationError, match="nope.txt does not exist"):
        data.read_annotations(tmp_path / "nope.txt")
    with pytest.raises(data.AnnotationError, match=r"lm\.txt:2: empty class name"):
        data.read_label_map(write(tmp_path / "lm.txt", "a\n\nb\n"))
    with pytest.raises(data.AnnotationError, match="duplicate"):
        data.read_label_map(write(tmp_path / "dup.txt", "a\nb\na\n"))
    assert data.read_label_map(write(tmp_path / "ok.txt", "a\nb\n\n")) == ["a", "b"]
