"""Reports people read: the confusion figure, per-class accuracy, top confusions, the training report."""

import json
import os
import re

import numpy as np
import pytest

from trainers import _evaluation, _reports

NAMES = ["left_to_right", "right_to_left", "moving_up"]
# 40 + 31 + 10 videos; right_to_left -> left_to_right is the top confusion.
MATRIX = [[36, 3, 1], [31, 9, 0], [0, 2, 8]]


def _texts(fig):
    ax = fig.axes[0]
    return ax, [t.get_text() for t in ax.texts]


def test_confusion_figure_names_axes_counts_cells_and_titles_top1():
    fig = _reports.confusion_figure(MATRIX, NAMES, top1=53 / 90)
    ax, texts = _texts(fig)
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text()) for t in ax.texts}
    assert cells == {(i, j): v for i, row in enumerate(MATRIX) for j, v in enumerate(row) if v}
    assert ax.get_title() == "Confusion matrix: top-1 58.9% (90 videos)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    # Colour is the row share: the image holds the row-normalised matrix.
    np.testing.assert_allclose(ax.images[0].get_array(), np.asarray(MATRIX) / np.sum(MATRIX, 1, keepdims=True))


def test_confusion_png_is_a_readable_picture(tmp_path):
    path = str(tmp_path / "cm.png")
    data = _reports.confusion_png(MATRIX, NAMES, 0.5, path)
    image = _reports.decode_png(open(path, "rb").read())
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 400 <= image.shape[0] <= 900 and 400 <= image.shape[1] <= 1000
    assert image.std() > 20  # Not a blank canvas.


def test_large_class_counts_stay_legible():
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 5, (40, 40)) + np.eye(40, dtype=int) * 20
    ax, texts = _texts(_reports.confusion_figure(matrix, [f"class {i}" for i in range(40)], 0.7))
    assert texts == []  # No cell numbers beyond 30 classes.
    assert len(ax.get_xticklabels()) == 40 and ax.get_xticklabels()[0].get_fontsize() == 8
    assert "row share" in ax.get_title()
    long_names = ["Pushing something from left to right so that it almost falls off but doesn't"] * 5
    ax, _ = _texts(_reports.confusion_figure(np.eye(5, dtype=int), long_names))
    assert all(len(t.get_text()) <= 32 for t in ax.get_yticklabels())
    ax, _ = _texts(_reports.confusion_figure(np.eye(400, dtype=int), [f"k{i}" for i in range(400)]))
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:3] == ["0", "10", "20"] and len(labels) == 40  # Every 10th class id.
    assert "labels.txt" in ax.get_xlabel()
    png = _reports.decode_png(_reports.confusion_png(np.eye(400, dtype=int), None))
    assert max(png.shape[:2]) <= 3200


def test_per_class_accuracy_worst_first_and_top_confusions():
    rows = _reports.per_class_accuracy(MATRIX, NAMES)
    assert rows == [("right_to_left", 9 / 40, 40), ("moving_up", 0.8, 10), ("left_to_right", 0.9, 40)]
    assert _reports.top_confusions(MATRIX, NAMES, 3) == [("right_to_left", "left_to_right", 31),
                                                         ("left_to_right", "right_to_left", 3),
                                                         ("moving_up", "right_to_left", 2)]
    assert _reports.top_confusions(np.eye(3, dtype=int), NAMES) == []
    metrics = {"confusion_matrix": MATRIX}
    lines = _reports.evaluation_text(metrics, NAMES, max_confusions=2)
    assert lines == ["per-class accuracy (worst first):",
                     "  right_to_left   22.5%  (9/40)",
                     "  moving_up       80.0%  (8/10)",
                     "  left_to_right   90.0%  (36/40)",
                     "top confusions (true -> predicted: videos):",
                     "  right_to_left -> left_to_right: 31",
                     "  left_to_right -> right_to_left: 3"]
    # Classes without videos are left out; without names, class ids stand in.
    assert _reports.per_class_accuracy([[1, 0], [0, 0]], None) == [("0", 1.0, 1)]


def _history(path, steps_per_epoch=4, epochs=3, batch=8):
    rows = []
    for step in range(1, steps_per_epoch * epochs + 1):
        epoch = (step - 1) // steps_per_epoch + 1
        rows.append({"step": step, "epoch": epoch, "loss": 2.0 / step, "accuracy": min(1.0, step / 10),
                     "learning_rate": 0.01 * (1 - step / 12), "clips_per_s": batch / 0.5})
        if step % steps_per_epoch == 0:
            rows.append({"step": step, "val_accuracy": 0.25 * epoch})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n{\"step\": 13, \"epo")  # Last line cut by a kill.


def test_training_report_links_existing_curves_and_the_evaluation(tmp_path):
    model_dir = str(tmp_path / "run")
    _history(os.path.join(model_dir, "logs", "train_history.jsonl"))
    config = {"model": "tsm_tiny", "num_classes": 3, "labels": NAMES,
              "preprocess": {"crop_size": 56, "resize_short": 64, "flip": True, "flip_label_map": [1, 0, 2]},
              "train": {"batch_size": 8, "recipe": "auto", "recipe_basis": "tsm_tiny, from scratch",
                        "optimizer": "adam", "learning_rate": 0.002, "lr_schedule": "cosine", "warmup_epochs": 1.0,
                        "flip_label_map_source": "derived from the label names"}}
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f)
    path = _reports.write_training_report(model_dir)
    text = open(path).read()
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert links == ["report/loss.png", "report/accuracy.png", "report/learning_rate.png"]
    for link in links:
        image = _reports.decode_png(open(os.path.join(model_dir, link), "rb").read())
        assert image.shape[0] >= 250 and image.shape[1] >= 400 and image.std() > 10
    with open(os.path.join(model_dir, "metrics.json")) as f:
        epochs = json.load(f)["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3] and [e["val_accuracy"] for e in epochs] == [0.25, 0.5, 0.75]
    assert epochs[0]["loss"] == pytest.approx(np.mean([2.0 / s for s in range(1, 5)]))
    assert epochs[2]["learning_rate"] == pytest.approx(0.0) and epochs[1]["seconds"] == pytest.approx(2.0)
    assert "| 2 | " in text and "flip label map [1, 0, 2] (derived from the label names)" in text
    # The flat `train` layout of the previous version reads as the typed TrainConfig.
    assert "| optimizer | adam, lr 0.002, cosine, warm-up 1.0 epochs |" in text
    assert "## Evaluation" not in text
    # After tfvideo-evaluate wrote eval/, the report shows the evaluation.
    metrics = _evaluation.classification_metrics(np.array([0, 1, 1, 2]), np.eye(3)[[0, 0, 1, 2]], 3)
    _evaluation.write_report(os.path.join(model_dir, "eval"), metrics, ["a", "b", "c", "d"], [0, 1, 1, 2],
                             np.eye(3)[[0, 0, 1, 2]], NAMES)
    text = open(_reports.write_training_report(model_dir)).read()
    assert "![Confusion matrix](eval/confusion_matrix.png)" in text and "top-1 0.7500" in text
    assert "  right_to_left -> left_to_right: 1" in text
    assert os.path.exists(os.path.join(model_dir, "eval", "confusion_matrix.png"))
