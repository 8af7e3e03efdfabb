"""A user's sampler class registered with tfvideo.data.register_sampler."""

import numpy as np
import pytest
import tensorflow as tf

from tfvideo import data
from tfvideo import feature_columns as fc
from tfvideo.data import _samplers


class EveryNthSampler:
    """`clip_len` frames `stride` apart from the first one, looping over short videos: [1, clip_len]."""

    num_views = 1

    def __init__(self, clip_len=4, stride=3, training=False):
        self.clip_len, self.stride, self.training = int(clip_len), int(stride), bool(training)

    @property
    def clip_length(self):
        return self.clip_len

    def __call__(self, num_frames, rng=None):
        return (np.arange(self.clip_len) * self.stride % int(num_frames))[None].astype(np.int64)

    def tf_indices(self, num_frames):
        offsets = tf.range(self.clip_len, dtype=tf.int64) * self.stride
        return tf.math.floormod(offsets, tf.cast(num_frames, tf.int64))[None]

    def get_config(self):
        return {"clip_len": self.clip_len, "stride": self.stride, "training": self.training}


@pytest.fixture
def every_nth():
    data.register_sampler("user_every_nth", EveryNthSampler)
    yield "user_every_nth"
    _samplers._SAMPLERS.unregister("user_every_nth")  # Tests only: leave the registry as found.


def test_user_sampler_round_trips_through_sampler_from_config(every_nth):
    assert data.list_samplers() == ["dense", "segment", every_nth]
    sampler = data.sampler_from_config({"type": every_nth, "clip_len": 5, "stride": 2})
    assert isinstance(sampler, EveryNthSampler) and (sampler.clip_len, sampler.stride) == (5, 2)
    config = _samplers.sampler_to_config(sampler)
    assert config == {"type": every_nth, "clip_len": 5, "stride": 2, "training": False}
    assert data.sampler_from_config(config).get_config() == sampler.get_config()
    for n in (3, 9, 40):
        np.testing.assert_array_equal(sampler.tf_indices(n).numpy(), sampler(n))
    # The built-in ones still round-trip by their type names.
    assert _samplers.sampler_to_config(data.DenseSampler(8, 2))["type"] == "dense"


def test_user_sampler_drives_a_video_column(every_nth):
    """The column samples in-graph with the user's tf_indices: frame i holds the value 10 * i."""
    column = fc.video_column("video", {"type": every_nth, "clip_len": 4, "stride": 3}, size=8,
                             preprocess={"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)})
    frames = np.broadcast_to((10 * np.arange(20, dtype=np.uint8))[:, None, None, None], (20, 8, 8, 3))
    clip = fc.FeatureLayer([column])({"video": tf.constant(frames[None])})["video"]
    assert clip.shape == (1, 1, 4, 8, 8, 3)
    np.testing.assert_allclose(np.asarray(clip)[0, 0, :, 4, 4, 0] * 255, [0, 30, 60, 90], atol=0.5)
    rebuilt = type(column).from_config(column.get_config())
    assert isinstance(rebuilt.sampler, EveryNthSampler) and rebuilt.sampler.stride == 3


def test_register_sampler_refuses_bad_classes_names_and_duplicates(every_nth):
    with pytest.raises(ValueError, match=r"^Sampler type 'user_every_nth' is already registered; pass overwrite=True"):
        data.register_sampler(every_nth, EveryNthSampler)
    data.register_sampler(every_nth, EveryNthSampler, overwrite=True)

    class NoTfIndices:
        def __call__(self, num_frames, rng=None):
            return np.zeros((1, 1), np.int64)

        def get_config(self):
            return {}

    with pytest.raises(TypeError, match=r"^register_sampler\('half'\): NoTfIndices lacks tf_indices \(a sampler "
                                        r"defines __call__, get_config, tf_indices\)\.$"):
        data.register_sampler("half", NoTfIndices)
    with pytest.raises(TypeError, match=r"is not a class"):
        data.register_sampler("half", EveryNthSampler())
    assert "half" not in data.list_samplers()
    with pytest.raises(ValueError) as e:
        data.sampler_from_config({"type": "random", "num_segments": 8})
    assert str(e.value) == "Unknown sampler type 'random'; available: dense, segment, user_every_nth."
    with pytest.raises(ValueError, match=r"^NoTfIndices is not a registered sampler class"):
        _samplers.sampler_to_config(NoTfIndices())
