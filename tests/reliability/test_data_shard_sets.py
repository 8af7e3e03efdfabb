"""Readers never mix shard sets: a pattern matches one complete -of-N set or is refused naming the sets.

Before: an old `-of-00002` set beside a new `-of-00004` one was read as one data set
(`--train_data='dir/train-*'` trained on 16 records for 8 videos without a word).
"""

import os
import re

import pytest
from shardfiles import TINY_TRAIN, clip_record, run_binary, write_shard_set

from tfvideo import data


@pytest.fixture
def two_sets(tmp_path):
    """The same 8 records as a 2-shard and a 4-shard set of `train` (what two prepare runs left)."""
    records = [clip_record(i) for i in range(8)]
    old = write_shard_set(str(tmp_path), "train", 2, records)
    new = write_shard_set(str(tmp_path), "train", 4, records)
    return str(tmp_path), old, new


def test_two_sets_are_refused_naming_both(two_sets):
    root, old, new = two_sets
    pattern = os.path.join(root, "train-*")
    expected = re.escape(f"'{pattern}' matches 2 shard sets, which would be read as one: "
                         f"{root}/train-*-of-00002.tfrecord (2 files); {root}/train-*-of-00004.tfrecord (4 files)")
    with pytest.raises(data.ShardSetError, match=expected):
        data.match_shards(pattern)
    with pytest.raises(data.ShardSetError, match=expected):
        data.video_dataset(pattern, data.SegmentSampler(2), preprocess=False)
    with pytest.raises(data.ShardSetError, match=expected):
        data.count_records(pattern)
    # One set named: read alone, 8 records.
    assert data.match_shards(os.path.join(root, "train-*-of-00004.tfrecord")) == new
    assert data.count_records(os.path.join(root, "train-*-of-00002.tfrecord")) == 8
    ids = [e["media_id"] for e in data.video_dataset(os.path.join(root, "train-*-of-00004*"), data.SegmentSampler(2),
                                                     preprocess=False).as_numpy_iterator()]
    assert sorted(ids) == sorted(f"v{i}".encode() for i in range(8))


def test_incomplete_set_is_refused_and_a_picked_subset_of_a_complete_one_is_read(two_sets):
    root, old, new = two_sets
    os.remove(new[2])  # As a killed run that finished shards 0, 1 and 3 leaves it.
    pattern = os.path.join(root, "train-*-of-00004.tfrecord")
    with pytest.raises(data.ShardSetError, match=rf"shard set {root}/train-\*-of-00004\.tfrecord \(3 files\) is "
                                                 rf"incomplete: 3 of 4 shards exist, {new[2]} missing"):
        data.match_shards(pattern)
    # A pattern may pick shards of a complete set on purpose; a path named exactly is read as asked.
    assert data.match_shards(os.path.join(root, "train-00001-of-0000[2]*")) == [old[1]]
    assert data.match_shards(new[3]) == [new[3]]


def test_loose_files_and_other_names_are_other_sets(tmp_path):
    records = [clip_record(i) for i in range(4)]
    train = write_shard_set(str(tmp_path), "train", 2, records)
    write_shard_set(str(tmp_path), "val", 1, records[:1])
    for bookkeeping in ("train-manifest.json", "train-00000-of-00002.tfrecord.failures.json",
                        "train-00001-of-00002.tfrecord.tmp-123", "train-report.json"):
        (tmp_path / bookkeeping).write_text("{}")
    assert data.match_shards(str(tmp_path / "train-*")) == train  # Bookkeeping files are not shards.
    with pytest.raises(data.ShardSetError, match=r"val-\*-of-00001\.tfrecord \(1 file\)"):
        data.match_shards(str(tmp_path / "*.tfrecord"))
    (tmp_path / "train-extra.tfrecord").write_bytes(b"")
    with pytest.raises(data.ShardSetError, match=r"1 file not named as shards \(.*train-extra\.tfrecord\)"):
        data.match_shards(str(tmp_path / "train-*"))
    # Files not named as shards form one set of their own (a user's own files).
    (tmp_path / "other").mkdir()
    for name in ("a.tfrecord", "b.tfrecord"):
        (tmp_path / "other" / name).write_bytes(b"")
    assert len(data.match_shards(str(tmp_path / "other" / "*"))) == 2


def test_train_refuses_a_pattern_over_two_sets(two_sets, tmp_path):
    root, _, _ = two_sets
    model_dir = tmp_path / "model"
    proc = run_binary("train", [*TINY_TRAIN, f"--train_data={root}/train-*", f"--model_dir={model_dir}",
                                "--train_steps=1"])
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert f"{root}/train-*-of-00002.tfrecord (2 files)" in proc.stderr
    assert f"{root}/train-*-of-00004.tfrecord (4 files)" in proc.stderr
    assert not (model_dir / "model.keras").exists() and not (model_dir / "checkpoints").exists()
