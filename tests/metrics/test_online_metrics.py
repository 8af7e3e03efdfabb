"""Online detection metrics against values worked out by hand."""

import numpy as np
import pytest

from tfvideo import metrics


def test_average_precision_by_hand():
    # Positives at ranks 1 and 3: AP = (1/1 + 2/3) / 2.
    assert metrics.average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(5 / 6)


def test_average_precision_ties_share_a_threshold():
    # Threshold 0.5 keeps 2 chunks (1 positive): P = 1/2, recall 1/2; threshold 0.1: P = 2/3.
    assert metrics.average_precision([0.5, 0.5, 0.1], [1, 0, 1]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_average_precision_without_positives_is_nan():
    assert np.isnan(metrics.average_precision([0.3, 0.2], [0, 0]))


def test_calibrated_average_precision_by_hand():
    # P = 2, N = 3, w = 1.5; rank 1: cPrec 1; rank 3: 1.5 * 2 / (1.5 * 2 + 1) = 0.75.
    scores, labels = [0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 0, 0]
    assert metrics.calibrated_average_precision(scores, labels) == pytest.approx((1 + 0.75) / 2)
    # One negative ranked above the only positive among 21 negatives: w = 21, cPrec = 21 / 22
    # while plain precision there is 1/2.
    many = [0.95] + [0.1] * 20
    assert metrics.calibrated_average_precision(many + [0.9], [0] * 21 + [1]) == pytest.approx(21 / 22)


def test_per_frame_map_excludes_background_and_ambiguous():
    # Columns: background, class 1, class 2, ambiguous.
    targets = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0]], np.float32)
    scores = np.array(
        [[0.1, 0.9, 0.0, 0.0],   # background scored high for class 1: a false positive.
         [0.0, 0.8, 0.1, 0.0],
         [0.0, 0.1, 0.7, 0.0],
         [0.0, 0.99, 0.99, 0.0],  # ambiguous chunk: dropped, so its high scores do not count.
         [0.0, 0.2, 0.3, 0.0]], np.float32)
    mean, per_class = metrics.per_frame_map(scores, targets, ambiguous_index=3)
    assert sorted(per_class) == [1, 2]
    # Class 1 ranks: 0.9 (neg), 0.8 (pos), 0.2 (pos), 0.1 (neg): AP = (1/2 + 2/3) / 2.
    assert per_class[1] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert per_class[2] == pytest.approx(1.0)
    assert mean == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1) / 2)
    # A list of per-video arrays pools the chunks the same way.
    pooled, _ = metrics.per_frame_map([scores[:2], scores[2:]], [targets[:2], targets[2:]], ambiguous_index=3)
    assert pooled == pytest.approx(mean)


def test_calibrated_map_by_hand():
    targets = np.eye(3)[[1, 0, 1, 0, 0]]
    scores = np.stack([np.zeros(5), [0.9, 0.8, 0.7, 0.6, 0.5], np.zeros(5)], axis=1)
    mean, per_class = metrics.calibrated_map(scores, targets)
    assert per_class[1] == pytest.approx(0.875)
    assert np.isnan(per_class[2])  # No positives: left out of the mean.
    assert mean == pytest.approx(0.875)


def test_per_frame_map_shape_mismatch_names_inputs():
    with pytest.raises(ValueError, match="scores .* targets"):
        metrics.per_frame_map(np.zeros((3, 2)), np.zeros((3, 3)))


def test_action_starts_from_labels():
    starts = metrics.action_starts([0, 2, 2, 0, 1, 1, 2], chunk_seconds=0.5)
    assert starts == [(0.5, 2, 1.0), (2.0, 1, 1.0), (3.0, 2, 1.0)]
    scored = metrics.action_starts([1, 1], scores=np.array([[0.2, 0.8], [0.1, 0.9]]))
    assert scored == [(0.0, 1, 0.8)]


def test_point_level_map_by_hand():
    gt = [("a", 2.0, 1), ("a", 10.0, 1), ("b", 5.0, 2)]
    preds = [("a", 3.5, 1, 0.9), ("a", 9.0, 1, 0.8), ("a", 20.0, 1, 0.7)]
    result = metrics.point_level_map(preds, gt, offsets=(1, 2, 10))
    # offset 1: only the 2nd prediction matches (rank 2): class 1 AP = (1/2) / 2; class 2 AP = 0.
    assert result[1] == pytest.approx((0.25 + 0.0) / 2)
    # offset 2: ranks 1 and 2 match: class 1 AP = 1.
    assert result[2] == pytest.approx(0.5)
    # offset 10: each ground-truth start matches once; the third prediction finds none left.
    assert result[10] == pytest.approx(0.5)
    assert sorted(metrics.point_level_map(preds, gt)) == list(range(1, 11))


def test_point_level_matches_within_video_only():
    result = metrics.point_level_map([("b", 2.0, 1, 0.9)], [("a", 2.0, 1)], offsets=(5,))
    assert result[5] == 0.0
