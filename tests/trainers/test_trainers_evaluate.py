"""End-to-end: train a tiny model, evaluate it multi-view, extract chunk features."""

import csv
import json
import os
import re

import numpy as np
import pytest
import trainers_testlib as lib

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(moving_shapes, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("trained") / "run")
    proc = lib.run("train", lib.TINY + [f"--train_data={moving_shapes['train']}", f"--label_map={moving_shapes['label_map']}",
                                        f"--model_dir={model_dir}", "--epochs=1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return model_dir


def test_evaluate_multi_view_reports_agree(trained, moving_shapes, tmp_path):
    out = str(tmp_path / "eval")
    proc = lib.run("evaluate", [f"--model_dir={trained}", f"--eval_data={moving_shapes['val']}", "--num_clips=2",
                                "--num_crops=3", "--batch_size=3", f"--output_dir={out}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    printed = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    assert float(printed["top-1"]) == pytest.approx(metrics["top1"], abs=1e-4)
    assert float(printed["mean class accuracy"]) == pytest.approx(metrics["mean_class_accuracy"], abs=1e-4)
    # Recompute every metric independently from the per-video CSV.
    with open(os.path.join(out, "predictions.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == metrics["num_videos"] == 8
    labels = np.array([int(r["label"]) for r in rows])
    preds = np.array([int(r["prediction"]) for r in rows])
    matrix = np.zeros((4, 4), int)
    for t, p in zip(labels, preds):
        matrix[t, p] += 1
    assert matrix.tolist() == metrics["confusion_matrix"]
    assert metrics["top1"] == pytest.approx(np.mean(labels == preds))
    per_class = [np.mean(preds[labels == c] == c) for c in range(4)]
    assert metrics["mean_class_accuracy"] == pytest.approx(np.mean(per_class))
    top5 = [[int(c) for c in r["top5"].split()] for r in rows]
    assert all(len(t) == 4 and t[0] == p for t, p in zip(top5, preds))
    # Per-class accuracy (worst first) and the top confusions are printed from the same matrix.
    names = open(os.path.join(trained, "labels.txt")).read().split()
    per_class = {name: (int(n), int(d)) for name, n, d in re.findall(r"^  (\S+) +[\d.]+%  \((\d+)/(\d+)\)$",
                                                                    proc.stdout, re.M)}
    assert per_class == {names[c]: (matrix[c, c], matrix[c].sum()) for c in range(4)}
    printed = {(a, b): int(n) for a, b, n in re.findall(r"^  (\S+) -> (\S+): (\d+)$", proc.stdout, re.M)}
    assert printed == {(names[i], names[j]): matrix[i, j] for i in range(4) for j in range(4) if i != j and matrix[i, j]}
    import cv2

    png = cv2.imread(os.path.join(out, "confusion_matrix.png"))
    assert png is not None and 400 <= png.shape[0] <= 900 and 400 <= png.shape[1] <= 1000
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(os.path.join(trained, "logs", "eval")))


def test_average_clips_prob_and_score_are_the_per_view_averages(trained, moving_shapes, tmp_path):
    """2 clips a video: --average_clips=prob (the default) averages the views' softmax, score their logits."""
    import shutil

    import keras
    import tensorflow as tf

    from tfvideo import _experiment
    from trainers import _task

    # After one epoch the tiny model's two views give near-equal logits (the two modes can differ by less than
    # the tolerance below), and a fixed sharpening can saturate the softmax instead. The classifier is linear
    # (logits = W h + b), so a copy whose W and b are centred and scaled by s gives s * (logits - c) exactly:
    # s is picked where the two modes differ most (logits of moderate size), and the copy is what evaluate runs.
    model, config = _experiment.load_trained_model(trained)
    ds = _task.dataset(config, moving_shapes["val"], False, 4, num_clips=2)

    def per_view_logits():
        views, ids = [], []
        for element in ds:  # Each view through the model on its own.
            views.append(np.stack([model(element["video"][:, v], training=False).numpy() for v in range(2)], 1))
            ids += [m.decode() for m in element["media_id"].numpy()]
        return np.concatenate(views).astype(np.float64), ids

    def modes(views):
        return {"prob": tf.nn.softmax(views).numpy().mean(1), "score": tf.nn.softmax(views.mean(1)).numpy()}

    def gap(views):
        want = modes(views)
        return np.abs(want["prob"] - want["score"]).max()

    views, _ = per_view_logits()
    centre = views.reshape(-1, views.shape[-1]).mean(0)
    # Logits spread up to 3 (standard deviation): the softmax stays far from saturation and from ties.
    spread = (views - centre).std()
    scale = max(np.geomspace(0.1, 3.0, 30) / spread, key=lambda s: gap(s * (views - centre)))
    head = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Dense)][-1]
    kernel, bias = head.get_weights()
    head.set_weights([kernel * scale, (bias - centre) * scale])
    sharp = str(tmp_path / "sharp")
    shutil.copytree(trained, sharp)
    model.save(os.path.join(sharp, _experiment.MODEL_FILE))
    views, ids = per_view_logits()
    want = modes(views)
    assert gap(views) > 1e-3  # The two modes tell apart here: 500x the tolerance on the scores below.
    for mode, flags in (("prob", []), ("score", ["--average_clips=score"])):
        out = str(tmp_path / mode)
        proc = lib.run("evaluate", [f"--model_dir={sharp}", f"--eval_data={moving_shapes['val']}", "--num_clips=2",
                                    f"--output_dir={out}", *flags])
        assert proc.returncode == 0, proc.stderr[-3000:]
        what = "probabilities (softmax, then mean)" if mode == "prob" else "logits (mean, then softmax)"
        assert f"(2 clips x 1 crops, averaged as {what}: --average_clips={mode})" in proc.stdout
        with open(os.path.join(out, "metrics.json")) as f:
            assert json.load(f)["average_clips"] == mode
        with open(os.path.join(out, "predictions.csv")) as f:
            rows = {r["media_id"]: r for r in csv.DictReader(f)}
        for i, media_id in enumerate(ids):
            top = int(rows[media_id]["prediction"])
            assert top == int(np.argmax(want[mode][i]))
            assert float(rows[media_id]["score"]) == pytest.approx(want[mode][i, top], abs=2e-6)


def test_evaluate_rejects_bad_num_crops(trained):
    proc = lib.run("evaluate", [f"--model_dir={trained}", "--num_crops=2"])
    assert proc.returncode == 2 and "--num_crops=2" in proc.stderr


def test_extract_features_per_chunk(trained, moving_shapes, tmp_path):
    out = str(tmp_path / "features")
    proc = lib.run("extract_features", [f"--model_dir={trained}", f"--data={moving_shapes['val']}",
                                        f"--output_dir={out}", "--chunk_size=6"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(out, "manifest.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    for row in rows:
        feats = np.load(os.path.join(out, f"{row['media_id']}.npy"))
        # 16 frames / 6 per chunk -> 3 chunks; tsm_tiny's last stage has 16 * 8 = 128 channels.
        assert feats.shape == (3, 128) and feats.dtype == np.float32
        assert int(row["num_chunks"]) == 3 and int(row["num_frames"]) == 16
        assert np.all(np.isfinite(feats)) and np.all(feats >= 0)  # Pooled ReLU outputs.
        assert not np.allclose(feats[0], feats[2])  # The shape moved between chunks.
    # Parity for one video with a hand-written chunking through the loaded model.
    import keras
    import tensorflow as tf

    from tfvideo import data

    model = keras.saving.load_model(os.path.join(trained, "model.keras"))
    record = data.read_annotations(moving_shapes["val"])[3]
    frames, _ = data.read_all_frames(record.path)
    # Centres of 4 equal parts of each 6-frame chunk: 0.75, 2.25, 3.75, 5.25 -> floor; clamped at frame 15.
    picks = [[0, 2, 3, 5], [6, 8, 9, 11], [12, 14, 15, 15]]
    expected = []
    for chunk in picks:
        clip = data.preprocess_eval(tf.constant(np.asarray(frames)[chunk][None]), data.PreprocessConfig(32, 32))[0]
        expected.append(model.pool(model.backbone(clip, training=False)).numpy().mean(0))
    got = np.load(os.path.join(out, f"{record.media_id}.npy"))
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-4, atol=1e-5)
