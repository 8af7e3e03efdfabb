"""Frame-wise segmentation metrics against values worked out by hand."""

import numpy as np
import pytest

from tfvideo import metrics

LABELS = [0, 0, 1, 1, 2, 2]
PREDS = [0, 1, 1, 1, 2, 0]


def test_frame_accuracy():
    assert metrics.frame_accuracy(PREDS, LABELS) == pytest.approx(4 / 6)
    # ignore_index drops the chunks labelled 2: 3 of 4 right.
    assert metrics.frame_accuracy(PREDS, LABELS, ignore_index=2) == pytest.approx(3 / 4)


def test_mean_class_accuracy():
    # Recalls: class 0 1/2, class 1 2/2, class 2 1/2.
    assert metrics.mean_class_accuracy(PREDS, LABELS, 3) == pytest.approx((0.5 + 1 + 0.5) / 3)


def test_mean_iou():
    # IoU: class 0 1/(2+1), class 1 2/(2+1), class 2 1/2.
    assert metrics.mean_iou(PREDS, LABELS, 3) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    # Lists of per-video sequences are pooled.
    assert metrics.mean_iou([PREDS[:3], PREDS[3:]], [LABELS[:3], LABELS[3:]], 3) == pytest.approx(0.5)


def test_confusion_matrix_rejects_out_of_range_ids():
    np.testing.assert_array_equal(metrics.confusion_matrix([0, 1], [1, 1], 2), [[0, 0], [1, 1]])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        metrics.confusion_matrix([0, 2], [0, 1], 2)
