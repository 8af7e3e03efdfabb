"""Sampler frame indices against references worked out by hand (see the comments)."""

import numpy as np
import pytest

from tfvideo import data


def draws(sampler, num_frames, count=400, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([sampler(num_frames, rng)[0] for _ in range(count)])


def test_segment_training_offsets_stay_in_their_segment_and_cover_it():
    # 20 frames, 4 segments of 5: segment k owns starts [5k, 5k + 5).
    out = draws(data.SegmentSampler(4, training=True), 20)
    for k in range(4):
        assert set(out[:, k]) == set(range(5 * k, 5 * k + 5)), k


def test_segment_training_snippets_are_consecutive():
    # new_length 3 on 20 frames: 18 valid starts, segments of 4.5 -> floor bounds 0,4,9,13,18.
    out = draws(data.SegmentSampler(4, new_length=3, training=True), 20).reshape(-1, 4, 3)
    np.testing.assert_array_equal(out[..., 1:] - out[..., :-1], 1)
    for k, (lo, hi) in enumerate([(0, 4), (4, 9), (9, 13), (13, 18)]):
        assert set(out[:, k, 0]) == set(range(lo, hi)), k


def test_segment_training_more_segments_than_frames():
    # 3 frames, 4 segments of 0.75: each segment has exactly one start, floor(0.75 k).
    np.testing.assert_array_equal(np.unique(draws(data.SegmentSampler(4, training=True), 3, 20), axis=0), [[0, 0, 1, 2]])


@pytest.mark.parametrize(
    "sampler, num_frames, expected",
    [
        # centres floor((k + 0.5) * 5)
        (data.SegmentSampler(4), 20, [[2, 7, 12, 17]]),
        # 18 starts, segments of 4.5: floor(2.25), floor(6.75), floor(11.25), floor(15.75)
        (data.SegmentSampler(4, new_length=3), 20, [[2, 3, 4, 6, 7, 8, 11, 12, 13, 15, 16, 17]]),
        # two clips shift the grid by 1/4 and 3/4 of a segment
        (data.SegmentSampler(4, num_clips=2), 20, [[1, 6, 11, 16], [3, 8, 13, 18]]),
        # 5 frames, 8 segments of 0.625: floor((k + 0.5) * 0.625)
        (data.SegmentSampler(8), 5, [[0, 0, 1, 2, 2, 3, 4, 4]]),
        # snippet of 4 from 3 frames: 0,1,2,3 -> repeat the last frame, or loop to the start
        (data.SegmentSampler(2, new_length=4), 3, [[0, 1, 2, 2, 0, 1, 2, 2]]),
        (data.SegmentSampler(2, new_length=4, short_policy="loop"), 3, [[0, 1, 2, 0, 0, 1, 2, 0]]),
        # dense 4 x 2 spans 7 frames; 13 spare frames, centred start 13 // 2 = 6
        (data.DenseSampler(4, 2), 20, [[6, 8, 10, 12]]),
        # linspace(0, 13, 3) = 0, 6.5, 13 -> round half to even: 0, 6, 13
        (data.DenseSampler(4, 2, num_clips=3), 20, [[0, 2, 4, 6], [6, 8, 10, 12], [13, 15, 17, 19]]),
        # 4 x 3 needs 10 frames, 5 exist: 0, 3, 6, 9 looped (mod 5) or clamped to 4
        (data.DenseSampler(4, 3), 5, [[0, 3, 1, 4]]),
        (data.DenseSampler(4, 3, short_policy="repeat_last"), 5, [[0, 3, 4, 4]]),
        (data.DenseSampler(3, 1), 1, [[0, 0, 0]]),
    ],
    ids=lambda v: repr(v) if isinstance(v, (data.SegmentSampler, data.DenseSampler)) else None,
)
def test_test_time_indices_by_hand(sampler, num_frames, expected):
    out = sampler(num_frames)
    assert out.dtype == np.int64 and out.shape == (sampler.num_views, sampler.clip_length)
    np.testing.assert_array_equal(out, expected)


def test_dense_training_start_is_uniform_over_valid_starts():
    # 4 x 2 spans 7 of 20 frames: starts 0..13, then every 2nd frame.
    out = draws(data.DenseSampler(4, 2, training=True), 20)
    assert set(out[:, 0]) == set(range(14))
    np.testing.assert_array_equal(out - out[:, :1], np.broadcast_to([0, 2, 4, 6], out.shape))


@pytest.mark.parametrize("sampler", [data.SegmentSampler(8, training=True), data.DenseSampler(8, 2, training=True)], ids=repr)
def test_seeded_sampling_is_reproducible(sampler):
    a = [sampler(100, np.random.default_rng(7)) for _ in range(3)]
    b = [sampler(100, np.random.default_rng(7)) for _ in range(3)]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(sampler(100, np.random.default_rng(7)), sampler(100, np.random.default_rng(8)))


def test_config_round_trip_and_bad_arguments():
    for sampler in (data.SegmentSampler(3, 5, num_clips=2, short_policy="loop"), data.DenseSampler(16, 4, True)):
        rebuilt = data.sampler_from_config({"type": "segment" if isinstance(sampler, data.SegmentSampler) else "dense",
                                            **sampler.get_config()})
        assert rebuilt.get_config() == sampler.get_config()
    with pytest.raises(ValueError, match="test-time"):
        data.SegmentSampler(8, training=True, num_clips=2)
    with pytest.raises(ValueError, match="short_policy"):
        data.DenseSampler(8, short_policy="pad")
    with pytest.raises(ValueError, match="no frames"):
        data.SegmentSampler(8)(0)
    with pytest.raises(ValueError, match="Unknown sampler type"):
        data.sampler_from_config({"type": "random"})


@pytest.mark.parametrize("cls, counts", [(data.SegmentSampler, ("num_segments", "new_length", "num_clips")),
                                         (data.DenseSampler, ("clip_len", "frame_interval", "num_clips"))])
def test_both_samplers_validate_counts_policy_and_clips_alike(cls, counts):
    for key in counts:
        for value in (0, -2, 2.5, "4"):
            with pytest.raises(ValueError, match=rf"{cls.__name__}: {key}={value!r}: .* must be integers >= 1"):
                cls(**{key: value})
    with pytest.raises(ValueError, match=rf"{cls.__name__}: num_clips=3 > 1 is a test-time option"):
        cls(training=True, num_clips=3)
    with pytest.raises(ValueError, match=rf"{cls.__name__}: short_policy='pad' must be one of"):
        cls(short_policy="pad")
    assert cls(**{key: 3.0 for key in counts}).get_config()[counts[0]] == 3
