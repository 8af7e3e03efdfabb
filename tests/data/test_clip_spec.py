"""tfvideo.data.ClipSpec: exact JSON round trip, immutability, samplers per use, bad fields named
on one line, and the in-graph test-time path against the NumPy sampler + preprocess_eval."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from framecode import frame_code_frames, read_frame_code

from tfvideo import data as tfv_data

DENSE = {"type": "dense", "clip_len": 4, "frame_interval": 3, "num_clips": 2, "short_policy": "repeat_last"}


def _spec(**preprocess):
    pre = {"crop_size": 48, "resize_short": 0, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), **preprocess}
    return tfv_data.ClipSpec(DENSE, pre)


def test_json_round_trip_is_exact():
    spec = tfv_data.ClipSpec(DENSE, {"crop_size": 112, "resize_short": 128, "num_crops": 3,
                                     "flip_label_map": [1, 0, 2], "mean": [0.5, 0.5], "std": [0.25, 0.25]}, "flow")
    text = spec.to_json()
    again = tfv_data.ClipSpec.from_json(text)
    assert again == spec and again.to_json() == text and hash(again) == hash(spec)
    assert tfv_data.ClipSpec.from_config(spec.get_config()) == spec
    assert again.preprocess == spec.preprocess and again.preprocess.flip_label_map == (1, 0, 2)
    assert again.sampler_config == {**DENSE}
    # A sampler object and its config give the same spec; training is not part of the spec.
    sampler = tfv_data.DenseSampler(4, 3, training=False, num_clips=2, short_policy="repeat_last")
    assert tfv_data.ClipSpec(sampler, spec.preprocess, "flow") == spec
    assert spec != tfv_data.ClipSpec(DENSE, spec.preprocess, "rgb")


def test_samplers_views_and_immutability():
    spec = tfv_data.ClipSpec({"type": "segment", "num_segments": 3, "new_length": 2}, {"num_crops": 3})
    train = spec.sampler(training=True)
    assert isinstance(train, tfv_data.SegmentSampler) and train.training and train.num_clips == 1
    test = spec.sampler(training=False, num_clips=2)
    assert not test.training and test.num_clips == 2 and test.clip_length == 6
    assert spec.clip_length == 6 and spec.num_clips == 1 and spec.num_crops == 3 and spec.num_views == 3
    wider = spec.replace(num_clips=2, crop_size=112, num_segments=4)
    assert (wider.num_views, wider.crop_size, wider.clip_length) == (6, 112, 8) and spec.crop_size == 224
    with pytest.raises(AttributeError, match="ClipSpec is immutable"):
        spec.modality = "flow"
    copy = spec.preprocess
    copy.crop_size = 1  # A copy: the spec keeps its own.
    assert spec.crop_size == 224
    assert "segment" in spec.describe() and "6 frames at 224 px" in spec.describe()


@pytest.mark.parametrize("make, message", [
    (lambda: tfv_data.ClipSpec({"type": "bogus"}), r"ClipSpec\.sampler: type='bogus' is not one of"),
    (lambda: tfv_data.ClipSpec({"type": "dense", "clip_len": 0}), r"ClipSpec\.sampler: DenseSampler: clip_len=0"),
    (lambda: tfv_data.ClipSpec({"type": "dense", "num_segments": 4}),
     r"ClipSpec\.sampler: dense sampler has no field num_segments"),
    (lambda: tfv_data.ClipSpec({"type": "segment", "num_clips": 1.5}), r"num_clips=1\.5"),
    (lambda: tfv_data.ClipSpec(preprocess={"crop_size": -1}), r"PreprocessConfig\.crop_size=-1 must be an integer"),
    (lambda: tfv_data.ClipSpec(preprocess={"crop": 3}), r"ClipSpec\.preprocess: PreprocessConfig has no field crop"),
    (lambda: tfv_data.ClipSpec(preprocess={"num_crops": 2}), r"PreprocessConfig\.num_crops=2 must be 1, 3 or 10"),
    (lambda: tfv_data.ClipSpec(modality="depth"), r"ClipSpec\.modality='depth' is not one of"),
    (lambda: tfv_data.ClipSpec("segment"), r"ClipSpec\.sampler: 'segment' is not a tfvideo\.data sampler"),
    (lambda: tfv_data.ClipSpec.from_json("{", "config.json 'clip'"), r"^config\.json 'clip': not JSON"),
    (lambda: tfv_data.ClipSpec.from_config({"sampler": {}, "views": 2}), r"unknown field views"),
    (lambda: tfv_data.ClipSpec().replace(num_clips=0), r"num_clips=0"),
])
def test_bad_fields_are_named_on_one_line(make, message):
    with pytest.raises(ValueError, match=message) as error:
        make()
    assert "\n" not in str(error.value)


def _jpegs(frames):
    return [tf.io.encode_jpeg(f, quality=95).numpy() for f in frames]


def test_clip_from_encoded_is_the_sampler_then_preprocess_eval():
    """Frame-coded JPEGs (padded with "") through the graph path: the decoded clip shows the
    frames the NumPy test sampler picks, and equals preprocess_eval of them."""
    spec = _spec()
    frames = frame_code_frames(23, height=48, width=48)
    encoded = tf.constant(_jpegs(frames) + [b""] * 5)  # Padding of a batch of several videos.
    clip = tf.function(spec.clip_from_encoded)(encoded).numpy()
    indices = spec.sampler(training=False)(23)  # [2, 4]
    assert clip.shape == (2, 4, 48, 48, 3)
    codes = [[read_frame_code(np.uint8(np.round(f * 255))) for f in view] for view in clip]
    assert codes == indices.tolist()
    assert indices[0].tolist() == [0, 3, 6, 9] and np.all(np.diff(indices, axis=1) == 3)
    decoded = np.stack([tf.io.decode_jpeg(_jpegs(frames[i : i + 1])[0]).numpy() for i in indices.reshape(-1)])
    expected = tfv_data.preprocess_eval(tf.constant(decoded.reshape(2, 4, 48, 48, 3)), spec.preprocess)
    np.testing.assert_allclose(clip, expected.numpy(), atol=1e-6)
    # Decoded frames of the whole video take the same path.
    np.testing.assert_allclose(spec.clip_from_frames(tf.constant(frames)).numpy(),
                               tfv_data.preprocess_eval(tf.constant(frames[indices]), spec.preprocess).numpy(),
                               atol=1e-6)


def test_three_crops_and_flow_channels():
    spec = _spec(crop_size=32, num_crops=3)
    frames = frame_code_frames(12, height=40, width=48)
    clip = spec.preprocess_frames(tf.constant(frames[:8]))  # Already sampled: 2 clips x 4 frames.
    assert clip.shape == (6, 4, 32, 32, 3)
    flow = tfv_data.ClipSpec(DENSE, dataclasses.replace(spec.preprocess, num_crops=1), "flow")
    assert flow.preprocess_frames(tf.constant(frames[:8])).shape == (2, 4, 32, 32, 2)
    with pytest.raises(ValueError, match=r"ClipSpec\.modality='rgb\+flow': the in-graph test-time path takes rgb or flow"):
        tfv_data.ClipSpec(DENSE, modality="rgb+flow").preprocess_frames(tf.constant(frames[:8]))


def test_video_dataset_takes_a_clip_spec(tmp_path):
    # The spec's sampler (test-time rule), preprocessing and modality: the same clips as passing them apart.
    from tests.data.videofiles import write_code_video

    path = str(tmp_path / "a.mp4")
    write_code_video(path, num_frames=24, codec="mpeg4")
    records = [tfv_data.VideoRecord(path, 0, "a")]
    spec = tfv_data.ClipSpec({"type": "dense", "clip_len": 4, "frame_interval": 2, "num_clips": 2},
                             {"crop_size": 32, "resize_short": 36, "num_crops": 3})
    got = next(iter(tfv_data.video_dataset(records, spec)))["video"].numpy()
    want = next(iter(tfv_data.video_dataset(records, spec.sampler(False), spec.preprocess, training=False)))["video"]
    assert got.shape == (6, 4, 32, 32, 3) == tuple(want.shape)
    np.testing.assert_array_equal(got, want.numpy())
    with pytest.raises(ValueError, match="a ClipSpec carries the preprocessing"):
        tfv_data.video_dataset(records, spec, spec.preprocess)
    with pytest.raises(TypeError):  # Everything after preprocess is keyword-only.
        tfv_data.video_dataset(records, spec.sampler(False), spec.preprocess, 2)
