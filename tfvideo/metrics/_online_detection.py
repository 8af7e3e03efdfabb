"""Online action detection metrics: per-frame mAP (THUMOS'14), calibrated mAP (TVSeries)
and point-level AP of action starts.

Scores and targets are per chunk ("frame" in the field's wording): `scores` [N, K] and
`targets` [N, K] with column 0 the background class; lists of per-video arrays are
concatenated first, as the protocol pools all test chunks of all videos.
"""

import numpy as np

from tfvideo.api._export import tf_export


def _as_matrix(x, name):
    if isinstance(x, (list, tuple)):
        x = np.concatenate([np.asarray(v) for v in x], axis=0) if len(x) else np.zeros((0, 0))
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, K] (or a list of [T_i, K] arrays), got shape {x.shape}.")
    return x


def _sorted_hits(scores, labels):
    """Labels sorted by descending score, and the index ending each group of tied scores."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    # Ties share one threshold: only the last element of a tied run is a cut point.
    last_of_run = np.r_[s[1:] != s[:-1], True]
    return y, last_of_run


@tf_export("tfvideo.metrics.average_precision")
def average_precision(scores, labels):
    """Non-interpolated AP of one class: sum over thresholds of (R_n - R_{n-1}) P_n.

    Args:
      scores: [N] confidence; labels: [N] 0/1 (or booleans).
    Returns:
      AP in [0, 1], or NaN when there are no positives. Tied scores form one threshold.
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1) > 0
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must have the same length.")
    positives = labels.sum()
    if positives == 0:
        return float("nan")
    y, cut = _sorted_hits(scores, labels)
    tp = np.cumsum(y)[cut]
    seen = (np.arange(len(y)) + 1)[cut]
    precision = tp / seen
    recall_gain = np.diff(np.r_[0, tp]) / positives
    return float(np.sum(precision * recall_gain))


@tf_export("tfvideo.metrics.calibrated_average_precision")
def calibrated_average_precision(scores, labels):
    """TVSeries calibrated AP (De Geest et al. 2016) of one class.

    Precision is calibrated with w = negatives / positives so that the class ratio does
    not change the value: cPrec = w TP / (w TP + FP); cAP = sum_n cPrec(n) [y_n = 1] / P.
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1) > 0
    positives = labels.sum()
    if positives == 0:
        return float("nan")
    w = (len(labels) - positives) / positives
    y, cut = _sorted_hits(scores, labels)
    tp_all = np.cumsum(y)
    fp_all = np.cumsum(~y)
    tp, fp = tp_all[cut], fp_all[cut]
    with np.errstate(invalid="ignore", divide="ignore"):
        cprec = np.where(tp > 0, w * tp / (w * tp + fp), 0.0)
    recall_gain = np.diff(np.r_[0, tp]) / positives
    return float(np.sum(cprec * recall_gain))


def _class_columns(num_columns, background_index, ambiguous_index):
    skip = {i for i in (background_index, ambiguous_index) if i is not None}
    for i in skip:
        if not 0 <= i < num_columns:
            raise ValueError(f"class index {i} is outside the {num_columns} score columns.")
    return [k for k in range(num_columns) if k not in skip]


def _per_class(ap_fn, scores, targets, background_index, ambiguous_index):
    scores = _as_matrix(scores, "scores")
    targets = _as_matrix(targets, "targets")
    if scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} must have the same shape.")
    if ambiguous_index is not None:
        # Ambiguous chunks count neither as positives nor as negatives of any class.
        keep = targets[:, ambiguous_index] <= 0
        scores, targets = scores[keep], targets[keep]
    per_class = {}
    for k in _class_columns(scores.shape[1], background_index, ambiguous_index):
        per_class[k] = ap_fn(scores[:, k], targets[:, k])
    values = [v for v in per_class.values() if not np.isnan(v)]
    mean = float(np.mean(values)) if values else float("nan")
    return mean, per_class


@tf_export("tfvideo.metrics.per_frame_map")
def per_frame_map(scores, targets, background_index=0, ambiguous_index=None):
    """THUMOS'14 per-frame mAP.

    AP of each action class over all chunks of all videos pooled, background (and the
    ambiguous class and its chunks) excluded, averaged over classes that have positives.

    Args:
      scores: [N, K] or a list of per-video [T_i, K] arrays.
      targets: same shape, one-hot (or multi-hot) ground truth.
    Returns:
      (mAP, {class index: AP}).
    """
    return _per_class(average_precision, scores, targets, background_index, ambiguous_index)


@tf_export("tfvideo.metrics.calibrated_map")
def calibrated_map(scores, targets, background_index=0, ambiguous_index=None):
    """TVSeries mean calibrated AP (mcAP); same arguments and returns as `per_frame_map`."""
    return _per_class(calibrated_average_precision, scores, targets, background_index, ambiguous_index)


@tf_export("tfvideo.metrics.action_starts")
def action_starts(labels, chunk_seconds=1.0, scores=None, background_index=0):
    """Action-start points from a per-chunk label sequence.

    A start of class c is where the label changes to c (c != background), including a
    video that starts inside an action. With `scores` [T, K], each start carries the
    score of its class at that chunk (the prediction's confidence).

    Args:
      labels: [T] int class per chunk.
    Returns:
      list of (time_seconds, class, score) with score 1.0 when `scores` is None.
    """
    labels = np.asarray(labels).reshape(-1)
    points = []
    for t, c in enumerate(labels):
        if c == background_index or (t > 0 and labels[t - 1] == c):
            continue
        score = 1.0 if scores is None else float(np.asarray(scores)[t, c])
        points.append((t * chunk_seconds, int(c), score))
    return points


def _point_ap(predictions, ground_truth, offset):
    """AP of one class: predictions [(video, time, score)], ground truth [(video, time)]."""
    if not ground_truth:
        return float("nan")
    unmatched = {}
    for video, time in ground_truth:
        unmatched.setdefault(video, []).append(time)
    hits = []
    for video, time, _ in sorted(predictions, key=lambda p: -p[2]):
        candidates = unmatched.get(video, [])
        best = None
        for i, gt_time in enumerate(candidates):
            dist = abs(gt_time - time)
            if dist <= offset and (best is None or dist < abs(candidates[best] - time)):
                best = i
        hits.append(best is not None)
        if best is not None:
            candidates.pop(best)
    hits = np.asarray(hits, bool)
    if not len(hits):
        return 0.0
    tp = np.cumsum(hits)
    precision = tp / (np.arange(len(hits)) + 1)
    return float(np.sum(precision[hits]) / len(ground_truth))


@tf_export("tfvideo.metrics.point_level_map")
def point_level_map(predictions, ground_truth, offsets=tuple(range(1, 11))):
    """Point-level AP of action starts (ODAS protocol), averaged over classes.

    A predicted start matches the closest not-yet-matched ground-truth start of the same
    video and class within `offset` seconds; predictions are taken by descending score.
    AP per class = sum of precision at each match / number of ground-truth starts.

    Args:
      predictions: iterable of (video_id, time_seconds, class, score).
      ground_truth: iterable of (video_id, time_seconds, class).
      offsets: thresholds in seconds (default 1..10).
    Returns:
      {offset: mAP} over classes that have ground-truth starts.
    """
    predictions, ground_truth = list(predictions), list(ground_truth)
    classes = sorted({g[2] for g in ground_truth})
    results = {}
    for offset in offsets:
        aps = []
        for c in classes:
            preds = [(v, t, s) for v, t, k, s in predictions if k == c]
            gts = [(v, t) for v, t, k in ground_truth if k == c]
            aps.append(_point_ap(preds, gts, offset))
        results[offset] = float(np.mean(aps)) if aps else float("nan")
    return results
