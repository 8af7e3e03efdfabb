"""tfds_dataset on a tiny TFDS builder made in the test (nothing downloaded)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import frame_code_frames, read_frame_code

from tfvideo import data

LENGTHS = [20, 33, 12]


class TinyCodedVideos(tfds.core.GeneratorBasedBuilder):
    """Frame-coded videos (frame i shows i) with ucf101-like features."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {"video": tfds.features.Video(shape=(None, 32, 48, 3)), "label": tfds.features.ClassLabel(num_classes=3)}
            )
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for k, n in enumerate(LENGTHS):
            yield k, {"video": frame_code_frames(n, 32, 48), "label": k}


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    b = TinyCodedVideos(data_dir=str(tmp_path_factory.mktemp("tfds")))
    b.download_and_prepare()
    return b


def test_sampled_frames_are_exact(builder):
    sampler = data.SegmentSampler(4, num_clips=2)
    out = list(data.tfds_dataset(builder, "train", sampler, preprocess=False).as_numpy_iterator())
    assert sorted(int(e["label"]) for e in out) == [0, 1, 2]
    for e in out:
        n = LENGTHS[int(e["label"])]
        assert e["video"].shape == (2, 4, 32, 48, 3) and e["media_id"]
        codes = [[read_frame_code(f) for f in clip] for clip in e["video"]]
        np.testing.assert_array_equal(codes, sampler(n))


def test_training_elements_follow_the_contract(builder):
    config = data.PreprocessConfig(crop_size=24, resize_short=28)
    ds = data.tfds_dataset(builder, "train", data.SegmentSampler(4, training=True), config, batch_size=3, seed=1)
    batch = next(iter(ds))
    assert batch["video"].shape == (3, 1, 4, 24, 24, 3) and batch["label"].dtype.name == "int32"
    again = next(iter(data.tfds_dataset(builder, "train", data.SegmentSampler(4, training=True), config, batch_size=3, seed=1)))
    np.testing.assert_array_equal(batch["video"], again["video"])


def test_unknown_video_key(builder):
    with pytest.raises(KeyError, match="frames"):
        data.tfds_dataset(builder, "train", data.SegmentSampler(4), video_key="frames")
