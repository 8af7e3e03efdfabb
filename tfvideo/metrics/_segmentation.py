"""Frame-wise segmentation metrics: the pixel-accuracy analogues over chunks."""

import numpy as np

from tfvideo.api._export import tf_export


def _labels(predictions, labels, ignore_index):
    predictions = np.concatenate([np.asarray(p).reshape(-1) for p in predictions]) if isinstance(
        predictions, (list, tuple)) else np.asarray(predictions).reshape(-1)
    labels = np.concatenate([np.asarray(y).reshape(-1) for y in labels]) if isinstance(
        labels, (list, tuple)) else np.asarray(labels).reshape(-1)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} must have the same length.")
    if ignore_index is not None:
        keep = labels != ignore_index
        predictions, labels = predictions[keep], labels[keep]
    return predictions.astype(np.int64), labels.astype(np.int64)


@tf_export("tfvideo.metrics.confusion_matrix")
def confusion_matrix(predictions, labels, num_classes, ignore_index=None):
    """[num_classes, num_classes] counts, rows = ground truth, columns = prediction."""
    p, y = _labels(predictions, labels, ignore_index)
    if len(y) and (y.max() >= num_classes or p.max() >= num_classes or min(y.min(), p.min()) < 0):
        raise ValueError(f"class ids must lie in [0, {num_classes}); got labels up to {y.max()}, "
                         f"predictions up to {p.max()}.")
    return np.bincount(y * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@tf_export("tfvideo.metrics.frame_accuracy")
def frame_accuracy(predictions, labels, ignore_index=None):
    """Fraction of chunks whose predicted class equals the label."""
    p, y = _labels(predictions, labels, ignore_index)
    return float(np.mean(p == y)) if len(y) else float("nan")


@tf_export("tfvideo.metrics.mean_class_accuracy")
def mean_class_accuracy(predictions, labels, num_classes, ignore_index=None):
    """Recall of each class present in `labels`, averaged over those classes."""
    cm = confusion_matrix(predictions, labels, num_classes, ignore_index)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


@tf_export("tfvideo.metrics.mean_iou")
def mean_iou(predictions, labels, num_classes, ignore_index=None):
    """IoU = TP / (TP + FP + FN) per class, averaged over classes seen in labels or predictions."""
    cm = confusion_matrix(predictions, labels, num_classes, ignore_index)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    present = union > 0
    return float(np.mean(tp[present] / union[present]))
