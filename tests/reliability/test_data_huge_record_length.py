"""A TFRecord record whose length header claims more bytes than the file holds (issue 26, item 3).

Before: TensorFlow's reader allocates the declared length before reading, so a header
claiming 2**40 bytes (with a valid CRC) killed every reader with a segmentation fault
(exit 139): tfvideo-train, tfvideo-evaluate, the record counting, the feature readers.
2**32 already gave the one-line "damaged file" error. Now both give it, from every reader.
The readers run in subprocesses: a crash must fail the test, not kill pytest.
"""

import json
import os
import struct
import subprocess
import sys

import pytest
from shardfiles import REPO, TINY_TRAIN, clip_record, run_binary, write_shard_set

from tfvideo import data

pytestmark = pytest.mark.slow


def _crc32c(data_bytes):
    crc = 0xFFFFFFFF
    for byte in data_bytes:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _masked_crc(data_bytes):
    """TFRecord's masked CRC32C of `data_bytes`."""
    crc = _crc32c(data_bytes)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _claim_length(path, first_record_bytes, length):
    """Rewrites record 1's header of `path` to declare `length` bytes, with a valid header CRC.

    Returns the reason every reader must give: 1 record read, the rest damaged.
    """
    start = first_record_bytes + 16
    header = struct.pack("<Q", length)
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(header + struct.pack("<I", _masked_crc(header)))
        size = f.seek(0, 2)
    return f"damaged file: 1 records read, then bytes {start}..{size} are corrupt or truncated"


def _damaged_sets(root, length):
    """Clip shards (shard 1 damaged), a chunk-feature file and a warm-up file, each damaged at record 1."""
    os.makedirs(root)
    records = [clip_record(i) for i in range(8)]
    shards = write_shard_set(root, "train", 2, records)
    reasons = {"clips": (shards[1], _claim_length(shards[1], len(records[1]), length))}
    features = os.path.join(root, "features.tfrecord")
    chunk = [data.make_chunk_feature_example([[float(k)] * 4] * 10, [(1, 3, 0)], media_id=f"f{k}").SerializeToString()
             for k in range(3)]
    with _writer(features) as writer:
        for record in chunk:
            writer.write(record)
    reasons["features"] = (features, _claim_length(features, len(chunk[0]), length))
    warmup_dir = os.path.join(root, "version", "assets.extra")
    os.makedirs(warmup_dir)
    warmup = os.path.join(warmup_dir, "tf_serving_warmup_requests")
    with _writer(warmup) as writer:
        for _ in range(2):
            writer.write(b"")  # An empty PredictionLog.
    reasons["warmup"] = (warmup, _claim_length(warmup, 0, length))
    return reasons


def _writer(path):
    import tensorflow as tf

    return tf.io.TFRecordWriter(path)


# Every library reader of TFRecord files on one damaged input; prints {case: result}.
_READERS = r"""
import json, sys
from tfvideo import data
from tfvideo.export import _warmup
from trainers import _online, _task


def run(name, fn):
    try:
        results[name] = ["ok", fn()]
    except Exception as e:
        results[name] = [type(e).__name__, str(e)]

every = {}
for root in sys.argv[1:]:
    pattern, features, version = root + "/train-*", root + "/features.tfrecord", root + "/version"
    every[root] = results = {}

    run("count", lambda: data.count_records(pattern))
    run("count_skip", lambda: data.count_records(pattern, on_error="skip"))
    run("task_count", lambda: _task.count_examples(pattern))
    run("video_dataset", lambda: len(list(data.video_dataset(pattern, data.SegmentSampler(2), preprocess=False))))
    run("video_dataset_skip", lambda: len(list(data.video_dataset(pattern, data.SegmentSampler(2), preprocess=False,
                                                                  on_error="skip"))))
    run("probe", lambda: len(data.probe_frame_sizes(pattern)))
    run("check_labels", lambda: _task.check_labels(pattern, 2))
    run("feature_windows", lambda: len(list(data.feature_window_dataset(features, history=4, batch_size=1, feature_dim=4,
                                                                         num_columns=2))))
    run("online_videos", lambda: len(_online.load_videos(features, None, None, feature_dim=4, num_columns=2)))
    run("warmup", lambda: len(_warmup.read_warmup_requests(version)))
print("RESULTS" + json.dumps(every))
"""


def _reader_results(*roots):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), CUDA_VISIBLE_DEVICES="",
               TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _READERS, *roots], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.split("RESULTS", 1)[1])


def test_every_reader_names_a_record_claiming_2_pow_40_bytes_as_it_does_2_pow_32(tmp_path):
    roots = {length: str(tmp_path / f"len{length}") for length in (2**32, 2**40)}
    reasons = {length: _damaged_sets(root, length) for length, root in roots.items()}
    results = _reader_results(*roots.values())
    for length, root in roots.items():
        clips, features, warmup = (f"{path}: {reason}" for path, reason in reasons[length].values())
        assert results[root] == {
            "count": ["VideoDecodeError", clips],
            "count_skip": ["ok", 5],  # 4 in shard 0 + the one before the damage.
            "task_count": ["VideoDecodeError", clips],
            "video_dataset": ["VideoDecodeError", clips],
            "video_dataset_skip": ["ok", 5],
            "probe": ["ok", 5],
            "check_labels": ["ok", None],  # Labels are fine; the damage is left to the pipeline to name.
            "feature_windows": ["VideoDecodeError", features],
            "online_videos": ["VideoDecodeError", features],
            "warmup": ["VideoDecodeError", warmup],
        }, length
    same = json.dumps(results[roots[2**40]]).replace(roots[2**40], roots[2**32])
    assert json.loads(same) == results[roots[2**32]]  # Word for word but the folder.


def test_train_and_evaluate_stop_with_one_line_on_a_2_pow_40_record(tmp_path):
    reasons = _damaged_sets(str(tmp_path / "data"), 2**40)
    shard, reason = reasons["clips"]
    pattern = str(tmp_path / "data" / "train-*")
    failed = run_binary("train", [*TINY_TRAIN, f"--train_data={pattern}", f"--model_dir={tmp_path / 'm1'}",
                                  "--train_steps=2"])
    assert failed.returncode == 1, failed.stderr[-3000:]  # 139 (SIGSEGV) before.
    assert failed.stderr.splitlines()[-1] == f"tfvideo-train: error: {shard}: {reason}"
    model_dir = tmp_path / "m2"
    skipped = run_binary("train", [*TINY_TRAIN, f"--train_data={pattern}", f"--model_dir={model_dir}",
                                   "--train_steps=2", "--on_error=skip"])
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert f"Skipping the damaged part of {shard}: {reason}" in skipped.stderr
    with open(model_dir / "config.json") as f:
        config = json.load(f)
    config["train"]["on_error"] = "raise"  # Evaluation reads as the run did: make it stop on damage.
    with open(model_dir / "config.json", "w") as f:
        json.dump(config, f)
    evaluated = run_binary("evaluate", [f"--model_dir={model_dir}", f"--eval_data={pattern}"])
    assert evaluated.returncode in (1, 2), evaluated.stderr[-3000:]  # An error, not a signal (139 before).
    assert evaluated.stderr.splitlines()[-1] == f"tfvideo-evaluate: error: {shard}: {reason}"
