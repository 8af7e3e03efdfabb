"""Multi-label lists (`path l1 l2 ...`): multi-hot labels, sigmoid / binary cross-entropy, and mAP
against MMAction2 1.2.0's `mean_average_precision` (mmaction/evaluation/functional/accuracy.py,
open-mmlab/mmaction2 4d6c93474730cad2f25e51109adcf96824efc7a3)."""

import csv
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
import trainers_testlib as lib

from tfvideo import data
from trainers import _evaluation, _task

sys.path.insert(0, os.path.join(lib.REPO, "tests", "data"))
import dataset_layouts as layouts  # noqa: E402


def test_map_matches_mmaction2():
    functional = pytest.importorskip("mmaction.evaluation.functional")
    rng = np.random.default_rng(0)
    labels = (rng.random((40, 6)) < 0.3).astype(np.int64)
    labels[:, 5] = 0  # A class without positives is left out of the mean by both.
    scores = rng.random((40, 6))
    scores[:5, 0] = scores[5:10, 0] = 0.5  # Tied scores share one threshold.
    ours = _evaluation.multilabel_metrics(labels, scores)
    reference = functional.mean_average_precision(list(scores), list(labels))
    assert ours["mean_average_precision"] == pytest.approx(reference, abs=1e-12)
    assert ours["per_class_ap"][5] is None


def test_binary_cross_entropy_per_example():
    labels = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]], np.float32)
    p = 1 / (1 + np.exp(-logits))
    want = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p), -1)
    np.testing.assert_allclose(_task.per_example_loss(labels, logits, multi_label=True), want, rtol=1e-5)
    np.testing.assert_array_equal(_task.top1_hits(tf.constant(labels), tf.constant(logits)), [1.0, 0.0])


@pytest.fixture(scope="module")
def multi_list(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("multi"))
    lines = []
    for j, labels in enumerate([(0, 2), (1,), (2, 0, 1), (1, 2)]):
        layouts.write_clip(os.path.join(root, f"v{j}.mp4"), j)
        lines.append(f"v{j}.mp4 " + " ".join(map(str, labels)))
    path = os.path.join(root, "train_list_videos.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


MULTI_HOT = [[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 1, 1]]


def test_video_dataset_gives_multi_hot_labels(multi_list):
    ds = data.video_dataset(multi_list, data.SegmentSampler(2, training=False), preprocess=False, multi_label=3)
    assert [e["label"].numpy().tolist() for e in ds] == MULTI_HOT


def test_prepared_shards_keep_every_label(multi_list, tmp_path):
    # Before: tfvideo-prepare refused multi-label lists and video_dataset refused multi_label on TFRecords.
    from tfvideo.data import _prepare

    records = data.read_dataset(multi_list, "mmaction").records
    out = str(tmp_path / "tfr")
    result = data.prepare_tfrecords(records, out, "m", 1, data.PrepareConfig(resize_short=0), ["a", "b", "c"], workers=1)
    assert not result["failures"]
    pattern = os.path.join(out, "m-*.tfrecord")
    assert _prepare.shard_set_manifest(pattern)["multi_label"] is True
    first = next(iter(tf.data.TFRecordDataset(result["shards"])))
    context = tf.train.SequenceExample.FromString(first.numpy()).context.feature
    assert list(context[data.LABEL_INDEX_KEY].int64_list.value) == [0, 2]
    assert list(context[data.LABEL_STRING_KEY].bytes_list.value) == [b"a", b"c"]
    sampler = data.SegmentSampler(2, training=False)
    ds = data.video_dataset(pattern, sampler, preprocess=False, multi_label=3)
    elements = list(ds)
    assert [e["label"].numpy().tolist() for e in elements] == MULTI_HOT
    assert [e["media_id"].numpy().decode() for e in elements] == [r.media_id for r in records]
    training = data.video_dataset(pattern, data.SegmentSampler(2, training=True), preprocess=False, multi_label=3, seed=0)
    assert sorted(e["label"].numpy().tolist() for e in training) == sorted(MULTI_HOT)
    with pytest.raises(data.VideoDecodeError, match=r"record 0 .*label outside \[0, 2\)"):
        list(data.video_dataset(pattern, sampler, preprocess=False, multi_label=2))


def _train_and_evaluate_multi_label(train_data, tmp_path):
    """tfvideo-train (3 classes, 2 steps) then tfvideo-evaluate on `train_data`: the run trained
    multi-label; returns evaluate's process and its predictions.csv rows."""
    model_dir = str(tmp_path / "run")
    steps = ["--model=tsm_tiny", "--num_segments=2", "--crop_size=32", "--resize_short=32", "--batch_size=2",
             "--dropout=0", "--verbose=0", "--recipe=none", "--train_steps=2", "--checkpoint_every_steps=0"]
    proc = lib.run("train", steps + ["--num_classes=3", f"--train_data={train_data}", f"--model_dir={model_dir}",
                                     f"--eval_data={train_data}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(model_dir, "config.json")) as f:
        assert json.load(f)["train"]["multi_label"] is True
    proc = lib.run("evaluate", [f"--model_dir={model_dir}", "--batch_size=2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(model_dir, "eval", "predictions.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["labels"] for r in rows] == ["0 2", "1", "0 1 2", "1 2"]
    return proc, rows


@pytest.mark.slow
def test_train_and_evaluate_multi_label(multi_list, tmp_path):
    proc, rows = _train_and_evaluate_multi_label(multi_list, tmp_path)
    # mAP recomputed from the CSV's scores (3 classes: the top-5 lists all of them).
    scores = np.zeros((4, 3))
    labels = np.zeros((4, 3))
    for i, row in enumerate(rows):
        scores[i, [int(c) for c in row["top5"].split()]] = [float(s) for s in row["top5_scores"].split()]
        labels[i, [int(c) for c in row["labels"].split()]] = 1
    printed = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    want = _evaluation.multilabel_metrics(labels, scores)["mean_average_precision"]
    assert float(printed["mAP"]) == pytest.approx(want, abs=1e-4)


@pytest.mark.slow
def test_prepare_then_train_and_evaluate_multi_label_tfrecords(multi_list, tmp_path):
    # tfvideo-prepare stores every label; tfvideo-train reads the set's manifest and trains
    # multi-label (sigmoid / BCE), tfvideo-evaluate reports mAP, as from the list itself.
    out = str(tmp_path / "tfr")
    proc = lib.run("prepare_data", [f"--annotations={multi_list}", f"--output_dir={out}", "--name=m",
                                    "--resize_short=32", "--workers=1", "--noprogress"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc, _ = _train_and_evaluate_multi_label(os.path.join(out, "m-*.tfrecord"), tmp_path)
    assert "mAP: " in proc.stdout
