"""tfvideo-prepare reruns: a shard set records its inputs; other inputs rebuild (--overwrite) or refuse.

Before: a rerun with another list, label map, setting or --num_shards reported "(2 already
complete)", exited 0 and kept the old shards (and left an old -of-N set beside a new one).
"""

import json
import os

import pytest
import tensorflow as tf
from absl import flags
from framecode import frame_code_frames

from tfvideo import data
from trainers import prepare_data

LABELS = ["walk", "run", "jump"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Four 8-frame videos (list files are written per test)."""
    root = tmp_path_factory.mktemp("rerun_videos")
    paths = []
    for i in range(4):
        path = str(root / f"v{i}.mp4")
        data.write_video(path, frame_code_frames(8, 32, 48), fps=8)
        paths.append(path)
    return paths


def records(paths, labels):
    return [data.VideoRecord(p, label, os.path.splitext(os.path.basename(p))[0]) for p, label in zip(paths, labels)]


def labels_in(pattern):
    """{media_id: label} of every record `pattern` reads."""
    out = {}
    for shard in data.match_shards(pattern):
        for serialized in tf.data.TFRecordDataset(shard).as_numpy_iterator():
            parsed = data.parse_sequence_example(serialized)
            out[parsed["media_id"].numpy().decode()] = int(parsed["label"])
    return out


def shard_names(out):
    return sorted(n for n in os.listdir(out) if n.endswith(".tfrecord"))


def test_rerun_with_other_inputs_refuses_saying_what_differs(videos, tmp_path):
    out = str(tmp_path / "out")
    config = data.PrepareConfig(resize_short=0)
    first = data.prepare_tfrecords(records(videos, [0, 1, 2, 0]), out, "t", 2, config, LABELS, workers=1)
    assert first["skipped_shards"] == [] and first["written"] == 4
    manifest = json.loads((tmp_path / "out" / "t-manifest.json").read_text())
    assert manifest["videos"] == 4 and manifest["num_shards"] == 2 and manifest["label_names"] == LABELS
    assert manifest["config"]["resize_short"] == 0 and len(manifest["records_sha256"]) == 64

    # The same inputs: finished shards are skipped, nothing is rebuilt.
    again = data.prepare_tfrecords(records(videos, [0, 1, 2, 0]), out, "t", 2, config, LABELS, workers=1)
    assert again["skipped_shards"] == first["shards"]

    # Another list (one label changed), another setting, another label map: refused, each named.
    with pytest.raises(data.ShardSetError, match=r"annotation list: 4 videos \(sha256 [0-9a-f]{12}\.\.\.\) before, "
                                                 r"4 videos \(sha256 [0-9a-f]{12}\.\.\.\) now") as info:
        data.prepare_tfrecords(records(videos, [0, 1, 2, 1]), out, "t", 2, config, LABELS, workers=1)
    assert "overwrite" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(data.ShardSetError, match=r"resize_short: 0 before, 32 now") as info:
        data.prepare_tfrecords(records(videos, [0, 1, 2, 0]), out, "t", 2, data.PrepareConfig(resize_short=32),
                               LABELS, workers=1)
    assert "annotation list" not in str(info.value)
    with pytest.raises(data.ShardSetError, match=r"label map: class 2 was 'jump', now 'hop'"):
        data.prepare_tfrecords(records(videos, [0, 1, 2, 0]), out, "t", 2, config, ["walk", "run", "hop"], workers=1)
    assert labels_in(out + "/t-*") == {"v0": 0, "v1": 1, "v2": 2, "v3": 0}  # Nothing was touched.

    # overwrite=True rebuilds from the new inputs.
    rebuilt = data.prepare_tfrecords(records(videos, [0, 1, 2, 1]), out, "t", 2, config, LABELS, workers=1,
                                     overwrite=True)
    assert rebuilt["skipped_shards"] == [] and rebuilt["written"] == 4
    assert labels_in(out + "/t-*") == {"v0": 0, "v1": 1, "v2": 2, "v3": 1}
    # overwrite=True with the same inputs forces a rebuild (video contents are not in the manifest).
    forced = data.prepare_tfrecords(records(videos, [0, 1, 2, 1]), out, "t", 2, config, LABELS, workers=1,
                                    overwrite=True)
    assert forced["skipped_shards"] == [] and forced["written"] == 4


def test_another_num_shards_removes_the_old_set_only_with_overwrite(videos, tmp_path):
    out = str(tmp_path / "out")
    config = data.PrepareConfig(resize_short=0)
    recs = records(videos, [0, 1, 2, 0])
    data.prepare_tfrecords(recs, out, "t", 2, config, workers=1)
    with pytest.raises(data.ShardSetError, match=r"num_shards: 2 before, 4 now.*shard set .*t-\*-of-00002\.tfrecord "
                                                 r"\(2 files\) would be left beside the new one"):
        data.prepare_tfrecords(recs, out, "t", 4, config, workers=1)
    assert shard_names(out) == ["t-00000-of-00002.tfrecord", "t-00001-of-00002.tfrecord"]
    result = data.prepare_tfrecords(recs, out, "t", 4, config, workers=1, overwrite=True)
    assert shard_names(out) == [f"t-0000{i}-of-00004.tfrecord" for i in range(4)] == [
        os.path.basename(p) for p in result["shards"]]
    assert not [n for n in os.listdir(out) if "of-00002" in n]  # Completion markers went too.
    assert sorted(labels_in(out + "/t-*")) == ["v0", "v1", "v2", "v3"]  # 4 records, not 8.


def test_shards_without_a_manifest_are_not_reused_silently(videos, tmp_path):
    out = tmp_path / "out"
    result = data.prepare_tfrecords(records(videos[:2], [0, 1]), str(out), "t", 1, data.PrepareConfig(resize_short=0),
                                    workers=1)
    os.remove(out / "t-manifest.json")  # As left by a version that did not record its inputs.
    with pytest.raises(data.ShardSetError, match=r"no readable t-manifest\.json records what they were built from"):
        data.prepare_tfrecords(records(videos[:2], [0, 1]), str(out), "t", 1, data.PrepareConfig(resize_short=0),
                               workers=1)
    again = data.prepare_tfrecords(records(videos[:2], [0, 1]), str(out), "t", 1, data.PrepareConfig(resize_short=0),
                                   workers=1, overwrite=True)
    assert again["skipped_shards"] == [] and again["shards"] == result["shards"]


def test_counts_are_validated():
    with pytest.raises(ValueError, match=r"num_shards=0 must be an integer >= 1"):
        data.prepare_tfrecords([], "/nonexistent-out", "t", num_shards=0)
    with pytest.raises(ValueError, match=r"workers=-2 must be an integer >= 1"):
        data.prepare_tfrecords([], "/nonexistent-out", "t", workers=-2)
    with pytest.raises(ValueError, match=r"PrepareConfig\.jpeg_quality=0 must be in \[1, 100\]"):
        data.PrepareConfig(jpeg_quality=0)
    with pytest.raises(ValueError, match=r"PrepareConfig\.resize_short=-1 must be >= 0"):
        data.PrepareConfig(resize_short=-1)


def run_binary(argv, capsys):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["tfvideo-prepare", *argv])
    try:
        status = prepare_data.main([])
    finally:
        flags.FLAGS.unparse_flags()
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_binary_refuses_other_inputs_with_one_line_and_exit_2(videos, tmp_path, capsys):
    listing = tmp_path / "list.txt"
    out = tmp_path / "out"
    common = [f"--annotations={listing}", f"--output_dir={out}", "--name=t", "--num_shards=2", "--resize_short=0",
              "--workers=1", "--noprogress"]
    listing.write_text("".join(f"{p} {i % 2}\n" for i, p in enumerate(videos)))
    assert run_binary(common, capsys)[0] == 0
    status, stdout, _ = run_binary(common, capsys)
    assert status == 0 and "t: 4 videos in 2 shards (2 already complete), 0 skipped" in stdout

    listing.write_text("".join(f"{p} {i % 2}\n" for i, p in enumerate(videos[:3])))  # One video fewer.
    status, stdout, stderr = run_binary(common, capsys)
    assert status == 2 and stdout == ""
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("tfvideo-prepare: error:")]
    assert f"{out}/t-*: the shards there do not match this run" in line
    assert "annotation list: 4 videos" in line and "3 videos" in line and "--overwrite" in line

    status, stdout, stderr = run_binary([*common[:3], "--num_shards=3", *common[4:]], capsys)
    assert status == 2 and "num_shards: 2 before, 3 now" in stderr

    status, stdout, _ = run_binary([*common[:3], "--num_shards=3", *common[4:], "--overwrite"], capsys)
    assert status == 0 and "t: 3 videos in 3 shards (0 already complete), 0 skipped" in stdout
    assert shard_names(out) == [f"t-0000{i}-of-00003.tfrecord" for i in range(3)]
    report = json.loads((out / "t-report.json").read_text())
    assert report["written"] == 3


def test_beam_path_checks_and_records_the_same_manifest(videos, tmp_path):
    pytest.importorskip("apache_beam")
    out = str(tmp_path / "out")
    config = data.PrepareConfig(resize_short=0)
    recs = records(videos[:2], [0, 1])
    data.prepare_tfrecords(recs, out, "t", 2, config, LABELS, workers=1)
    local_manifest = json.loads((tmp_path / "out" / "t-manifest.json").read_text())
    # Other inputs: Beam refuses like the local run (before starting the job).
    with pytest.raises(data.ShardSetError, match=r"annotation list"):
        data.run_beam_prepare(records(videos[:2], [1, 1]), out, "t", 2, config, LABELS)
    with pytest.raises(data.ShardSetError, match=r"num_shards: 2 before, 1 now"):
        data.run_beam_prepare(recs, out, "t", 1, config, LABELS)
    # With overwrite the old -of-00002 set goes and Beam's -of-00001 set is the only one.
    result = data.run_beam_prepare(recs, out, "t", 1, config, LABELS, overwrite=True)
    assert shard_names(out) == ["t-00000-of-00001.tfrecord"] and result["written"] == 2
    assert labels_in(out + "/t-*") == {"v0": 0, "v1": 1}
    beam_manifest = json.loads((tmp_path / "out" / "t-manifest.json").read_text())
    assert beam_manifest == {**local_manifest, "num_shards": 1}
    # A local rerun with the inputs Beam recorded is not refused (it rewrites: Beam left no markers).
    again = data.prepare_tfrecords(recs, out, "t", 1, config, LABELS, workers=1)
    assert again["written"] == 2 and shard_names(out) == ["t-00000-of-00001.tfrecord"]
