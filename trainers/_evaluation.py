"""Recognition evaluation: multi-view predictions, metrics, confusion-matrix figure, CSV."""

import csv
import json
import os

import keras
import numpy as np
import tensorflow as tf

from tfvideo import metrics as tfv_metrics
from trainers import _reports

AVERAGE_CLIPS = ("prob", "score")


def _activation(logits, multi_label):
    """Class probabilities of logits [..., K]: softmax, or per-class sigmoids with `multi_label`."""
    logits = np.asarray(logits, np.float64)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def average_clips(view_logits, mode, multi_label=False):
    """Per-view logits [B, V, K] -> one score per video [B, K], MMAction2's `average_clips`.

    "prob": each view's class probabilities (softmax; sigmoids with `multi_label`) averaged;
    "score": the views' logits averaged (what the recognizers do when called on [B, V, ...]).
    The result is in the mode's space: probabilities for "prob", logits for "score"
    (`to_probabilities` turns it into probabilities either way).
    """
    if mode not in AVERAGE_CLIPS:
        raise ValueError(f"--average_clips={mode!r} must be one of {', '.join(AVERAGE_CLIPS)}.")
    view_logits = np.asarray(view_logits, np.float64)
    if mode == "prob":
        return _activation(view_logits, multi_label).mean(axis=1)
    return view_logits.mean(axis=1)


def to_probabilities(scores, mode, multi_label=False):
    """`average_clips`' (or a fusion of them) scores in `mode`'s space -> class probabilities."""
    return np.asarray(scores, np.float64) if mode == "prob" else _activation(scores, multi_label)


def view_logits(model, video):
    """The model's logits of each view: `video` [B, V, T, H, W, C] -> [B, V, K] ([B, 1, K] for 5D)."""
    if len(video.shape) != 6:
        return keras.ops.convert_to_numpy(model(video, training=False))[:, None]
    shape = tf.shape(video)
    flat = tf.reshape(video, tf.concat([[-1], shape[2:]], 0))
    logits = keras.ops.convert_to_numpy(model(flat, training=False))
    return logits.reshape(int(shape[0]), int(shape[1]), logits.shape[-1])


def predict_scores(model, dataset, multi_label=False, average="prob"):
    """Runs `model` over a dict dataset of `video` [B, V, T, S, S, C], one call per batch of views.

    Args:
      average: how the views of a video are averaged, `average_clips`' "prob" or "score".

    Returns:
      (labels int [N], scores float [N, K], media_ids list of str): `average_clips` scores, in
      the mode's space (mean probabilities, or mean logits); with `multi_label` the labels are
      multi-hot [N, K].
    """
    if average not in AVERAGE_CLIPS:
        raise ValueError(f"--average_clips={average!r} must be one of {', '.join(AVERAGE_CLIPS)}.")
    labels, scores, ids = [], [], []
    for element in dataset:
        scores.append(average_clips(view_logits(model, element["video"]), average, multi_label))
        labels.append(element["label"].numpy())
        ids.extend(m.decode() for m in element["media_id"].numpy())
    if not scores:
        raise ValueError("evaluation data is empty")
    return np.concatenate(labels).astype(np.int64), np.concatenate(scores), ids


def predict(model, dataset, multi_label=False, average="prob"):
    """`predict_scores` as class probabilities [N, K] (softmax; per-class sigmoids with `multi_label`):
    (labels, probabilities, media_ids)."""
    labels, scores, ids = predict_scores(model, dataset, multi_label, average)
    return labels, to_probabilities(scores, average, multi_label), ids


def fuse_predictions(streams, weights):
    """Late fusion of several streams' predictions of the same videos (two-stream TSN).

    Args:
      streams: list of (name, labels int [N], scores float [N, K], media_ids) as `predict`
        returns them, one per stream (videos in any order): probabilities, or mean logits
        (`--average_clips=score`: the streams' logits are then fused, MMAction2's
        report_accuracy without --apply-softmax).
      weights: one weight per stream (TSN weighs RGB:flow 1:1.5).

    Returns:
      (labels [M], fused scores [M, K] = sum_s w_s p_s / sum_s w_s, media_ids,
      per-stream scores list of [M, K]) over the videos every stream scored, in the
      first stream's order. ValueError naming the streams when they disagree on a video's
      label, on the classes, or share no video.
    """
    if len(weights) != len(streams):
        raise ValueError(f"--fusion_weights: {len(weights)} weights for {len(streams)} model_dirs.")
    first_name, first_labels, first_probs, first_ids = streams[0]
    order = [dict(zip(ids, range(len(ids)))) for _, _, _, ids in streams]
    common = [m for m in first_ids if all(m in o for o in order[1:])]
    if not common:
        raise ValueError(f"the streams ({', '.join(s[0] for s in streams)}) share no evaluation video (media ids).")
    per_stream = []
    for (name, labels, probs, _), index in zip(streams, order):
        if probs.shape[-1] != first_probs.shape[-1]:
            raise ValueError(f"{name} scores {probs.shape[-1]} classes, {first_name} {first_probs.shape[-1]}.")
        rows = np.array([index[m] for m in common])
        mismatch = np.flatnonzero(labels[rows] != first_labels[np.array([order[0][m] for m in common])])
        if mismatch.size:
            m = common[mismatch[0]]
            raise ValueError(f"video {m!r} is labelled {int(labels[index[m]])} in {name}'s evaluation data and "
                             f"{int(first_labels[order[0][m]])} in {first_name}'s.")
        per_stream.append(probs[rows])
    weights = np.asarray(weights, np.float64)
    fused = sum(w * p for w, p in zip(weights, per_stream)) / weights.sum()
    labels = first_labels[np.array([order[0][m] for m in common])]
    return labels, fused, common, per_stream


def confusion_matrix(labels, predictions, num_classes):
    """int64 [K, K]: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def top_k_accuracy(labels, scores, k):
    k = min(k, scores.shape[-1])
    top = np.argsort(-scores, axis=-1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=-1)))


def classification_metrics(labels, scores, num_classes):
    """top-1, top-5, mean class accuracy (over classes present) and the confusion matrix."""
    labels = np.asarray(labels)
    predictions = np.argmax(scores, -1)
    matrix = confusion_matrix(labels, predictions, num_classes)
    support = matrix.sum(1)
    present = support > 0
    per_class = np.where(present, np.diag(matrix) / np.maximum(support, 1), np.nan)
    return {
        "top1": top_k_accuracy(labels, scores, 1),
        "top5": top_k_accuracy(labels, scores, 5),
        "mean_class_accuracy": float(np.mean(per_class[present])),
        "per_class_accuracy": [None if np.isnan(a) else float(a) for a in per_class],
        "num_videos": len(labels),
        "confusion_matrix": matrix.tolist(),
    }


def write_predictions_csv(path, media_ids, labels, scores, class_names):
    """One row per video: media_id, label, prediction, their names, score and the top-5."""
    names = list(class_names) or [str(i) for i in range(scores.shape[-1])]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["media_id", "label", "label_name", "prediction", "prediction_name", "score", "top5"])
        for media_id, label, p in zip(media_ids, labels, scores):
            top = np.argsort(-p, kind="stable")[:5]
            writer.writerow([media_id, int(label), names[int(label)], int(top[0]), names[int(top[0])],
                             f"{p[top[0]]:.6f}", " ".join(str(int(c)) for c in top)])


def write_report(output_dir, metrics, media_ids, labels, scores, class_names, log_dir=None):
    """metrics.json, predictions.csv, confusion_matrix.png (+ TensorBoard image/scalars in log_dir).

    The confusion matrix is a labelled figure (`_reports.confusion_figure`): class names on
    both axes, counts in the cells, top-1 in the title. Returns the PNG's path.
    """
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    write_predictions_csv(os.path.join(output_dir, "predictions.csv"), media_ids, labels, scores, class_names)
    path = os.path.join(output_dir, "confusion_matrix.png")
    png = _reports.confusion_png(metrics["confusion_matrix"], class_names, metrics["top1"], path)
    if log_dir:
        with tf.summary.create_file_writer(log_dir).as_default():
            tf.summary.image("confusion_matrix", tf.io.decode_png(png, channels=3)[None], step=0)
            for key in ("top1", "top5", "mean_class_accuracy"):
                tf.summary.scalar(key, metrics[key], step=0)
    return path


def multilabel_metrics(labels, scores):
    """Multi-label evaluation: mean average precision (MMAction2's `mean_average_precision`).

    labels: multi-hot [N, K]; scores [N, K]. AP per class (non-interpolated,
    `tfvideo.metrics.average_precision`), averaged over the classes that have a positive;
    `top1`: share of videos whose top-scoring class is one of their labels.
    """
    labels, scores = np.asarray(labels) > 0, np.asarray(scores, np.float64)
    per_class = [tfv_metrics.average_precision(scores[:, k], labels[:, k]) for k in range(scores.shape[-1])]
    present = [ap for ap in per_class if not np.isnan(ap)]
    return {
        "mean_average_precision": float(np.mean(present)) if present else float("nan"),
        "per_class_ap": [None if np.isnan(ap) else float(ap) for ap in per_class],
        "top1": float(np.mean(labels[np.arange(len(labels)), np.argmax(scores, -1)])),
        "num_videos": len(labels),
    }


def write_multilabel_report(output_dir, metrics, media_ids, labels, scores, class_names):
    """metrics.json and predictions.csv (media_id, labels, their names, top-5 classes and scores)."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    names = list(class_names) or [str(i) for i in range(scores.shape[-1])]
    with open(os.path.join(output_dir, "predictions.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["media_id", "labels", "label_names", "top5", "top5_scores"])
        for media_id, label, p in zip(media_ids, labels, scores):
            positive = np.flatnonzero(label > 0)
            top = np.argsort(-p, kind="stable")[:5]
            writer.writerow([media_id, " ".join(str(int(k)) for k in positive), "|".join(names[k] for k in positive),
                             " ".join(str(int(c)) for c in top), " ".join(f"{p[c]:.6f}" for c in top)])
