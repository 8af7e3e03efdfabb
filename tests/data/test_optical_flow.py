"""tfvideo.data.optical_flow: the --flow_method choices measure the same motion."""

import numpy as np
import pytest

from tfvideo import data


def _moving_square(num_frames=3, size=64, step=2):
    rng = np.random.default_rng(0)
    texture = rng.integers(60, 200, (20, 20, 3), dtype=np.uint8)
    frames = np.full((num_frames, size, size, 3), 30, np.uint8)
    for t in range(num_frames):
        frames[t, 20:40, 10 + step * t:30 + step * t] = texture
    return frames


@pytest.mark.parametrize("method", data.FLOW_METHODS)
def test_each_method_measures_the_square_moving_right(method):
    flow = data.optical_flow(_moving_square(), method)
    assert flow.shape == (3, 64, 64, 2) and flow.dtype == np.float32
    inside = flow[0, 24:36, 16:26]  # The square moves 2 px right per frame.
    assert abs(np.median(inside[..., 0]) - 2.0) < 0.5 and abs(np.median(inside[..., 1])) < 0.5, method
    np.testing.assert_array_equal(flow[-1], flow[-2])  # The last frame repeats the previous flow.


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match=r"optical_flow: method='raft' must be one of dis, tvl1, farneback"):
        data.optical_flow(_moving_square(), "raft")
    with pytest.raises(ValueError, match=r"PrepareConfig\.flow_method='raft' must be one of dis, tvl1, farneback"):
        data.PrepareConfig(flow=True, flow_method="raft")
    assert data.PrepareConfig().flow_method == "dis"
