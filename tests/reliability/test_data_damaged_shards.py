"""Counting the examples of a damaged TFRecord shard names the shard and the offset; skip goes on.

Before: the count done before training failed with a raw `DataLossError: corrupted record
at N` naming no file, even with --on_error=skip.
"""

import pytest
from shardfiles import TINY_TRAIN, clip_record, run_binary, write_shard_set

from tfvideo import data

FRAMING = 16  # Bytes around each TFRecord record: length, its CRC, the data's CRC.


@pytest.fixture
def damaged(tmp_path):
    """8 records in 2 shards; shard 1 has a flipped byte inside its record 2 (a data CRC mismatch)."""
    records = [clip_record(i) for i in range(8)]
    shards = write_shard_set(str(tmp_path), "train", 2, records)
    in_shard1 = records[1::2]
    start = sum(len(r) + FRAMING for r in in_shard1[:2])  # Where record 2 of shard 1 begins.
    with open(shards[1], "r+b") as f:
        f.seek(start + 12 + len(in_shard1[2]) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
        size = f.seek(0, 2)
    reason = f"damaged file: 2 records read, then bytes {start}..{size} are corrupt or truncated"
    return str(tmp_path / "train-*"), shards[1], reason


def test_count_names_shard_and_offset_and_skip_counts_the_rest(damaged):
    pattern, shard, reason = damaged
    with pytest.raises(data.VideoDecodeError) as info:
        data.count_records(pattern)
    assert info.value.path == shard and info.value.reason == reason
    skipped = data.SkippedVideos()
    assert data.count_records(pattern, on_error="skip", skipped=skipped) == 6  # 4 + the 2 before the damage.
    assert skipped.items == [(shard, reason)]
    # The trainers count through the same function.
    from trainers import _task

    assert _task.count_examples(pattern, on_error="skip") == 6
    with pytest.raises(data.VideoDecodeError, match=f"{shard}: {reason}"):
        _task.count_examples(pattern)
    # Reading skips the same damaged part: 6 clips.
    ds = data.video_dataset(pattern, data.SegmentSampler(2), preprocess=False, on_error="skip")
    assert len(list(ds.as_numpy_iterator())) == 6


def test_train_names_the_damaged_shard_and_skip_trains_on(damaged, tmp_path):
    pattern, shard, reason = damaged
    failed = run_binary("train", [*TINY_TRAIN, f"--train_data={pattern}", f"--model_dir={tmp_path / 'm1'}",
                                  "--train_steps=2"])
    assert failed.returncode != 0
    assert f"{shard}: {reason}" in failed.stderr and "DataLossError" not in failed.stderr
    skipped = run_binary("train", [*TINY_TRAIN, f"--train_data={pattern}", f"--model_dir={tmp_path / 'm2'}",
                                   "--train_steps=2", "--on_error=skip"])
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert f"Skipping the damaged part of {shard}: {reason}" in skipped.stderr
    assert "training done: step=2" in skipped.stdout and (tmp_path / "m2" / "model.keras").exists()
