"""tfds_dataset on a tiny TFDS builder made in the test (nothing downloaded)."""

import io
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds
from framecode import frame_code_frames, read_frame_code

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


def _prepared(builder_cls, tmp_path_factory):
    b = builder_cls(data_dir=str(tmp_path_factory.mktemp(builder_cls.__name__)))
    b.download_and_prepare()
    return b


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    return _prepared(TinyCodedVideos, tmp_path_factory)


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


class TinyWithBadExamples(TinyCodedVideos):
    """Two good frame-coded videos around one with no frames and one whose frame 1 is not an image."""

    def _generate_examples(self):
        yield 0, {"video": frame_code_frames(20, 32, 48), "label": 0}
        yield 1, {"video": np.zeros((0, 32, 48, 3), np.uint8), "label": 1}
        corrupt = [frame_code_frames(4, 32, 48)[0], io.BytesIO(b"not an image at all"), frame_code_frames(4, 32, 48)[2]]
        yield 2, {"video": corrupt, "label": 2}
        yield 3, {"video": frame_code_frames(12, 32, 48), "label": 0}


@pytest.fixture(scope="module")
def bad_builder(tmp_path_factory):
    return _prepared(TinyWithBadExamples, tmp_path_factory)


def test_bad_examples_raise_naming_the_example_by_default(bad_builder):
    ds = data.tfds_dataset(bad_builder, "train", data.SegmentSampler(4), preprocess=False)
    with pytest.raises(data.VideoDecodeError, match=r"tfds tiny_with_bad_examples/1.0.0 split 'train': example '[^']+': ") as info:
        list(ds.as_numpy_iterator())
    assert info.value.path == "tfds tiny_with_bad_examples/1.0.0 split 'train'"
    assert re.match(r"example '[^']+': (the video has no frames|.*)", info.value.reason)


def test_bad_examples_are_skipped_and_counted(bad_builder):
    skipped = data.SkippedVideos()
    sampler = data.SegmentSampler(3)
    ds = data.tfds_dataset(bad_builder, "train", sampler, preprocess=False, on_error="skip", skipped=skipped)
    out = list(ds.as_numpy_iterator())
    assert sorted(e["video"].shape[1] for e in out) == [3, 3]
    codes = sorted([read_frame_code(f) for f in e["video"][0]] for e in out)
    assert codes == sorted([list(sampler(20)[0]), list(sampler(12)[0])])
    assert skipped.count == 2
    reasons = sorted(reason for _, reason in skipped.items)
    assert any("the video has no frames" in r for r in reasons), reasons
    assert sum("example '" in r for r in reasons) == 2
    with pytest.raises(ValueError, match="on_error='ignore'"):
        data.tfds_dataset(bad_builder, "train", sampler, on_error="ignore")
