"""Published dataset layouts read by `read_dataset` (miniature copies built by dataset_layouts.py),
frame folders read like video files, and lines that fit no layout named."""

import os

import cv2
import dataset_layouts as layouts
import numpy as np
import pytest

from tfvideo import data


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    return {name: build(str(root / name)) for name, build in layouts.BUILDERS.items()}


@pytest.mark.parametrize("name", sorted(layouts.BUILDERS))
def test_published_layout_reads_both_splits(built, name):
    spec = built[name]
    detected = data.detect_format(spec["train"], spec["video_root"])
    # A 2-field MMAction2 video list is the plain `path label` list (same records).
    assert detected == ("list" if name == "mmaction" else name)
    train = data.read_dataset(spec["train"], video_root=spec["video_root"], subset="train")
    test = data.read_dataset(spec["test"], video_root=spec["video_root"], subset="test",
                             label_map=train.class_names)
    if spec["classes"] is not None:
        assert train.class_names == spec["classes"] == test.class_names
    assert {r.media_id: r.label for r in test.records} == spec["expected_test"]
    assert len(train.records) == 4
    for record in train.records + test.records:
        assert os.path.exists(record.path), record
    assert len(train.missing) == spec.get("missing", 0)


def test_ucf101_class_ids_are_one_based(built):
    spec = built["ucf101"]
    listing = data.read_dataset(spec["train"], video_root=spec["video_root"])
    # trainlist01.txt says "Archery/... 2": class 2 of classInd.txt is id 1.
    assert {r.media_id.split("/")[0]: r.label for r in listing.records} == {"ApplyEyeMakeup": 0, "Archery": 1}
    assert data.read_class_names(os.path.join(os.path.dirname(spec["train"]), "classInd.txt")) == spec["classes"]


def test_sthv2_labels_json_is_a_class_map(built):
    labels = os.path.join(os.path.dirname(built["sthv2"]["train"]), "labels.json")
    assert data.read_class_names(labels) == built["sthv2"]["classes"]


def test_kinetics_missing_clip_is_listed(built):
    spec = built["kinetics"]
    listing = data.read_dataset(spec["train"], video_root=spec["video_root"])
    ((where, path),) = listing.missing
    assert where.endswith("train.csv:6") and path.endswith("gone_video1_000005_000015.mp4")


def test_hmdb51_subsets_and_splits(built):
    spec = built["hmdb51"]
    train = data.read_dataset(spec["train"], "hmdb51", video_root=spec["video_root"], subset="train", split=1)
    assert sorted(r.media_id for r in train.records) == sorted(
        f"{c}/April_09_{c}_u_nm_np1_ba_goo_{j}" for c in spec["classes"] for j in (0, 1))
    with pytest.raises(data.AnnotationError, match="has no entries"):
        data.read_dataset(spec["train"], "hmdb51", video_root=spec["video_root"], subset="train", split=2)


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_lines_that_fit_no_layout_are_named(tmp_path, built):
    rawframes = built["rawframes"]
    # A rawframes line in a plain video list is not read as the path "dir 24".
    with pytest.raises(data.AnnotationError, match=r"list\.txt:2: .*has 3 fields.*--format=rawframes"):
        data.read_annotations(_write(tmp_path / "list.txt", "a.mp4 0\ndir 24 0\n"))
    with pytest.raises(data.AnnotationError, match=r"bad\.txt:1: expected 'frame_dir total_frames label"):
        data.read_dataset(_write(tmp_path / "bad.txt", "class0/video_0 twelve 0\n"), "rawframes",
                          video_root=rawframes["video_root"])
    with pytest.raises(data.AnnotationError, match=r"trainlist01\.txt:1: class id 2 .*ApplyEyeMakeup"):
        os.makedirs(tmp_path / "ucf")
        _write(tmp_path / "ucf" / "classInd.txt", "1 ApplyEyeMakeup\n2 Archery\n")
        data.read_dataset(_write(tmp_path / "ucf" / "trainlist01.txt", "ApplyEyeMakeup/v_a.avi 2\n"))
    with pytest.raises(data.AnnotationError, match=r"jester-v1-train\.csv:1: expected 'id;label'"):
        os.makedirs(tmp_path / "j")
        _write(tmp_path / "j" / "jester-v1-labels.csv", "Swiping Left\n")
        data.read_dataset(_write(tmp_path / "j" / "jester-v1-train.csv", "1;Swiping Left;x\n"))
    with pytest.raises(data.AnnotationError, match=r"train\.csv:1: expected the Kinetics header"):
        data.read_dataset(_write(tmp_path / "train.csv", "label,id\nabseiling,x\n"), "kinetics")


def test_multi_label_lines_keep_every_label(tmp_path, built):
    videos = os.path.dirname(built["mmaction"]["train"])
    path = _write(os.path.join(videos, "multi.txt"), "class0_0.mp4 0 1\nclass1_0.mp4 1\n")
    assert data.detect_format(path) == "mmaction"
    listing = data.read_dataset(path)
    assert listing.multi_label and [r.labels for r in listing.records] == [(0, 1), None]
    assert [r.label for r in listing.records] == [0, 1]
    with pytest.raises(ValueError, match="multi-label"):
        data.video_dataset(path, data.SegmentSampler(2, training=False))


def test_frame_folder_reads_the_sampled_files(built):
    folder = os.path.join(built["rawframes"]["video_root"], "class1", "video_2")
    frames = data.read_frame_folder(folder, [[3, 0], [11, 3]])
    assert frames.shape == (2, 2) + layouts.SIZE + (3,)
    want = cv2.cvtColor(cv2.imread(os.path.join(folder, "img_00004.jpg")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(frames[0, 0], want)
    np.testing.assert_array_equal(frames[1, 1], want)
    flow = data.read_flow_folder(folder, [0, 5])
    assert flow.shape == (2,) + layouts.SIZE + (2,)
    # The test wrote x = 100 + i and y = 150 - i (JPEG keeps flat grey exactly).
    np.testing.assert_array_equal(flow[:, 0, 0], [[100, 150], [105, 145]])
    assert data.read_frame_folder(folder, [0], filename_tmpl="img_%05d.jpg").shape == (1,) + layouts.SIZE + (3,)
    assert data.count_frame_files(folder) == layouts.FRAMES


def test_frame_folder_errors_name_folder_and_index(tmp_path):
    folder = layouts.write_frame_folder(str(tmp_path / "v"), 0, count=5)
    with pytest.raises(data.VideoDecodeError, match=r"v: has 5 frames .* list entry says 8: frame 6 \(img_00007.jpg\)"):
        data.read_frame_folder(folder, [0, 6], num_frames=8)
    os.remove(os.path.join(folder, "img_00003.jpg"))
    with pytest.raises(data.VideoDecodeError, match=r"has 2 frames .* says 5: frame 2 \(img_00003\.jpg\) is missing"):
        data.read_frame_folder(folder, [2], num_frames=5)
    _write(os.path.join(folder, "img_00001.jpg"), "")
    with pytest.raises(data.VideoDecodeError, match=r"frame 0: file img_00001\.jpg does not decode"):
        data.read_frame_folder(folder, [0])
    with pytest.raises(data.VideoDecodeError, match="frame folder does not exist"):
        data.count_frame_files(str(tmp_path / "nowhere"))


def test_video_dataset_over_frame_folders_matches_sampling(built, tmp_path):
    spec = built["rawframes"]
    source = data.format_source(spec["test"], "rawframes", video_root=spec["video_root"])
    sampler = data.SegmentSampler(4, training=False)
    elements = list(data.video_dataset(source, sampler, preprocess=False))
    listing = data.read_dataset(source)
    assert [e["media_id"].numpy().decode() for e in elements] == [r.media_id for r in listing.records]
    for element, record in zip(elements, listing.records):
        want = data.read_frame_folder(record.path, sampler(layouts.FRAMES, np.random.default_rng(0)))
        np.testing.assert_array_equal(element["video"].numpy(), want)
    # A folder shorter than its list entry fails naming it (or is skipped with on_error="skip").
    short = _write(tmp_path / "short.txt", "class0/video_2 20 0\n")
    with pytest.raises(data.VideoDecodeError, match=r"video_2: has 12 frames .* list entry says 20"):
        list(data.video_dataset(data.format_source(short, "rawframes", video_root=spec["video_root"]),
                                data.SegmentSampler(4, training=False), preprocess=False))
    skipped = data.SkippedVideos()
    ds = data.video_dataset(data.format_source(short, "rawframes", video_root=spec["video_root"]),
                            data.SegmentSampler(4, training=False), preprocess=False, on_error="skip", skipped=skipped)
    assert list(ds) == [] and skipped.count == 1


def test_a_split_without_labels_cannot_train(tmp_path, built):
    from trainers import _task

    spec = built["sthv2"]
    labels_dir = os.path.dirname(spec["train"])
    test_json = _write(os.path.join(labels_dir, "test.json"), '[{"id": "78687"}]')
    listing = data.read_dataset(test_json, video_root=spec["video_root"])
    assert [r.label for r in listing.records] == [-1]
    source = data.format_source(test_json, "sthv2", video_root=spec["video_root"])
    with pytest.raises(ValueError, match=r"--eval_data=sthv2:.*test\.json.*: 78687 has no label"):
        _task.check_labels(source, 2, spec["classes"], "--eval_data")
    _task.check_labels(data.format_source(spec["test"], "sthv2", video_root=spec["video_root"]), 2, spec["classes"])
    with pytest.raises(ValueError, match=r"label \[1\] is not a class id in \[0, 1\)"):
        _task.check_labels(data.format_source(spec["test"], "sthv2", video_root=spec["video_root"]), 1)


def test_frame_folder_of_mixed_sizes_and_resizing(tmp_path):
    folder = layouts.write_frame_folder(str(tmp_path / "v"), 0, count=3)
    small = data.read_frame_folder(folder, [0, 2], short_side=12)
    assert small.shape == (2, 12, 16, 3)
    full = data.read_frame_folder(folder, [0, 2])
    want = cv2.resize(full[1], (16, 12), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(small[1], want)
    cv2.imwrite(os.path.join(folder, "img_00002.jpg"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(data.VideoDecodeError, match=r"v: frame 1 is 10x10, frame 0 32x24; the frames of a folder"):
        data.read_frame_folder(folder, [0, 1])


def test_kinetics_classes_in_mmaction2_order(tmp_path):
    # MMAction2 sorts the names with spaces as '_': "a(c" < "a_b" although "a b" < "a(c".
    layouts.write_clip(str(tmp_path / "x1_000001_000011.mp4"), 0)
    csv_path = _write(tmp_path / "train.csv", "label,youtube_id,time_start,time_end,split\n"
                      "a b,x1,1,11,train\n\"a(c\",x2,1.0,11.0,train\n")
    listing = data.read_dataset(csv_path)
    assert listing.class_names == ["a(c", "a b"]
    assert [(r.media_id, r.label) for r in listing.records] == [("x1_000001_000011", 1)]
    assert [where for where, _ in listing.missing] == [f"{csv_path}:3"]
