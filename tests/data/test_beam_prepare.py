"""The Beam conversion (DirectRunner) gives the same examples as the local one and reports bad files.

Skipped where apache-beam is not installed (the `beam` extra; CI installs it).
"""

import json
import os

import pytest
import tensorflow as tf
from absl import flags
from framecode import read_frame_code
from videofiles import write_bad_files, write_code_video

from tfvideo import data
from trainers import prepare_data

beam = pytest.importorskip("apache_beam")

LABELS = ["walk", "run", "jump"]
NUM_FRAMES = 12


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three frame-coded videos and two bad files, as records and as an annotation list."""
    root = tmp_path_factory.mktemp("beam_videos")
    records = [data.VideoRecord(write_code_video(str(root / f"v{i}.mp4"), NUM_FRAMES), i, f"v{i}") for i in range(3)]
    bad = write_bad_files(root, records[0].path)
    records += [data.VideoRecord(bad["corrupt"], 1, "bad_corrupt"), data.VideoRecord(bad["missing"], 2, "bad_missing")]
    listing = root / "list.txt"
    listing.write_text("".join(f"{r.path} {LABELS[r.label]}\n" for r in records))
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return records, bad, str(listing), str(root / "labels.txt")


def examples_by_media_id(shards):
    """{media_id: parsed SequenceExample} over every record of `shards`."""
    out = {}
    for shard in shards:
        for serialized in tf.data.TFRecordDataset(shard).as_numpy_iterator():
            example = tf.train.SequenceExample.FromString(serialized)
            media_id = example.context.feature[data.MEDIA_ID_KEY].bytes_list.value[0].decode()
            assert media_id not in out, f"{media_id} written twice"
            out[media_id] = example
    return out


def test_beam_pipeline_writes_the_same_examples_as_the_local_conversion(videos, tmp_path):
    records, bad, _, _ = videos
    config = data.PrepareConfig(resize_short=32)
    local = data.prepare_tfrecords(records, str(tmp_path / "local"), "t", 2, config, LABELS, workers=1)
    beamed = data.run_beam_prepare(records, str(tmp_path / "beam"), "t", 2, config, LABELS)
    assert [os.path.basename(p) for p in beamed["shards"]] == [os.path.basename(p) for p in local["shards"]] == [
        "t-00000-of-00002.tfrecord", "t-00001-of-00002.tfrecord"]
    assert beamed["written"] == local["written"] == 3

    # Bad files: same paths and reasons from both runners.
    key = lambda failure: failure["path"]  # noqa: E731
    assert sorted(beamed["failures"], key=key) == sorted(local["failures"], key=key)
    reasons = {f["path"]: f["reason"] for f in beamed["failures"]}
    assert set(reasons) == {bad["corrupt"], bad["missing"]}
    assert reasons[bad["missing"]] == "file does not exist" and reasons[bad["corrupt"]].startswith("cannot open container")

    # Which shard a video lands in is the runner's choice; the examples themselves must be
    # equal field by field (decoding and JPEG encoding are deterministic: identical bytes).
    local_examples, beam_examples = examples_by_media_id(local["shards"]), examples_by_media_id(beamed["shards"])
    assert sorted(beam_examples) == sorted(local_examples) == ["v0", "v1", "v2"]
    for media_id, example in beam_examples.items():
        assert example == local_examples[media_id], media_id
        context = example.context.feature
        assert context[data.LABEL_INDEX_KEY].int64_list.value == [int(media_id[1])]
        assert context[data.LABEL_STRING_KEY].bytes_list.value == [LABELS[int(media_id[1])].encode()]
        assert len(example.feature_lists.feature_list[data.IMAGE_KEY].feature) == NUM_FRAMES

    # And the Beam shards read back through the pipeline with exactly the stored frames.
    ds = data.video_dataset(str(tmp_path / "beam" / "t-*.tfrecord"), data.DenseSampler(NUM_FRAMES, 1), preprocess=False)
    elements = list(ds.as_numpy_iterator())
    assert sorted(e["media_id"].decode() for e in elements) == ["v0", "v1", "v2"]
    for e in elements:
        assert e["video"].shape == (1, NUM_FRAMES, 32, 43, 3)  # 48x64 -> short side 32: 32 x round(42.7)
        assert [read_frame_code(f) for f in e["video"][0]] == list(range(NUM_FRAMES))


def test_binary_runs_beam_and_reports_bad_files(videos, tmp_path, capsys):
    records, bad, listing, labels = videos
    out = tmp_path / "out"
    # A completion marker left by an earlier local run into the same directory: the Beam job
    # replaces the shard, so the marker must go (a local rerun would skip the shard).
    out.mkdir()
    stale_marker = out / "b-00000-of-00002.tfrecord.failures.json"
    stale_marker.write_text(json.dumps([{"path": "old.mp4", "reason": "stale"}]))
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["tfvideo-prepare", f"--annotations={listing}", f"--label_map={labels}", f"--output_dir={out}",
                 "--name=b", "--num_shards=2", "--resize_short=0", "--beam", "--beam_args=--runner=DirectRunner"])
    try:
        status = prepare_data.main([])
    finally:
        flags.FLAGS.unparse_flags()
    assert status == prepare_data.EXIT_SKIPPED
    assert not stale_marker.exists()
    report = json.loads((out / "b-report.json").read_text())
    assert report["written"] == 3 and report["skipped_shards"] == []
    assert [os.path.basename(p) for p in report["shards"]] == ["b-00000-of-00002.tfrecord", "b-00001-of-00002.tfrecord"]
    reasons = {f["path"]: f["reason"] for f in report["failures"]}
    assert set(reasons) == {bad["corrupt"], bad["missing"]} and reasons[bad["missing"]] == "file does not exist"
    printed = capsys.readouterr().out
    for path, reason in reasons.items():
        assert f"skipped {path}: {reason}" in printed
    # The label map resolved the class names; the examples carry them.
    examples = examples_by_media_id(report["shards"])
    assert sorted(examples) == sorted(os.path.splitext(r.path)[0] for r in records[:3])
    for media_id, example in examples.items():
        index = int(os.path.basename(media_id)[1])
        assert example.context.feature[data.LABEL_STRING_KEY].bytes_list.value == [LABELS[index].encode()]
        assert len(example.feature_lists.feature_list[data.IMAGE_KEY].feature) == NUM_FRAMES
