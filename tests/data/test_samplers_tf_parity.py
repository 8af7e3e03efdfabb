"""The TensorFlow (export-graph) test-time sampler equals the NumPy sampler."""

import numpy as np
import pytest

from tfvideo import data


@pytest.mark.parametrize(
    "sampler",
    [
        data.SegmentSampler(8),
        data.SegmentSampler(3, new_length=5, num_clips=4),
        data.SegmentSampler(8, short_policy="loop"),
        data.DenseSampler(8, 2),
        data.DenseSampler(4, 3, num_clips=5),
        data.DenseSampler(16, 4, short_policy="repeat_last"),
    ],
    ids=repr,
)
def test_tf_indices_match_numpy(sampler):
    for n in (1, 2, 5, 8, 9, 31, 64, 301):
        np.testing.assert_array_equal(sampler.tf_indices(n).numpy(), sampler(n), err_msg=f"num_frames={n}")


def test_segment_sampler_test_mode_by_hand():
    # 80 frames, 8 segments of 10 frames: centres at 5, 15, ..., 75.
    np.testing.assert_array_equal(data.SegmentSampler(8)(80), [[5, 15, 25, 35, 45, 55, 65, 75]])


def test_tf_indices_refuses_training_sampler():
    with pytest.raises(ValueError, match="test-time"):
        data.SegmentSampler(8, training=True).tf_indices(10)
