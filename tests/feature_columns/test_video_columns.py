"""Video columns: raw frames -> the same clips as the tfvideo.data test-time pipeline."""

import numpy as np
import pytest
import tensorflow as tf

from tfvideo import data as tfv_data
from tfvideo import feature_columns as fc

MEAN = np.array(tfv_data.IMAGENET_MEAN, np.float32)
STD = np.array(tfv_data.IMAGENET_STD, np.float32)


def random_frames(num_frames, height=20, width=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(num_frames, height, width, 3), dtype=np.uint8)


def encode(frames):
    return [tf.io.encode_jpeg(f, quality=95).numpy() for f in frames]


@pytest.mark.parametrize(
    ("sampler", "num_crops"),
    [(tfv_data.SegmentSampler(4), 1), (tfv_data.DenseSampler(3, 2, num_clips=2), 3)],
    ids=["segment", "dense_2clips_3crops"],
)
def test_matches_video_dataset_on_tfrecord(tmp_path, sampler, num_crops):
    path = str(tmp_path / "clips.tfrecord")
    lengths = (11, 5)
    with tf.io.TFRecordWriter(path) as writer:
        for i, n in enumerate(lengths):
            ex = tfv_data.make_sequence_example(encode(random_frames(n, seed=i)), label=i, media_id=f"v{i}")
            writer.write(ex.SerializeToString())
    preprocess = tfv_data.PreprocessConfig(crop_size=16, resize_short=18, num_crops=num_crops)
    reference = [e["video"].numpy() for e in tfv_data.video_dataset(path, sampler, preprocess, training=False)]

    column = fc.video_column("frames", sampler, size=16, preprocess=preprocess)
    layer = fc.FeatureLayer([column])
    parsed = [tfv_data.parse_sequence_example(r)["frames"] for r in tf.data.TFRecordDataset(path)]
    # One batch, the shorter video padded with "" (the serving layout).
    batch = tf.constant([list(p.numpy()) + [b""] * (max(lengths) - len(p)) for p in parsed])
    out = layer({"frames": batch})["frames"].numpy()
    assert out.shape == (2, sampler.num_views * num_crops, sampler.clip_length, 16, 16, 3)
    assert column.output_shape == out.shape[1:]
    for got, want in zip(out, reference):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_uint8_frames_equal_encoded_frames():
    frames = random_frames(9, seed=3)
    jpegs = encode(frames)
    decoded = np.stack([tf.io.decode_jpeg(j).numpy() for j in jpegs])
    layer = fc.FeatureLayer([fc.video_column("v", tfv_data.SegmentSampler(3), size=16)])
    from_jpeg = layer({"v": tf.constant([jpegs])})["v"].numpy()
    from_uint8 = layer({"v": tf.constant(decoded[None])})["v"].numpy()
    np.testing.assert_allclose(from_uint8, from_jpeg, atol=1e-6)


def test_sampled_indices_follow_the_sampler():
    """Frame i is a flat grey level 8 i; the clip's frame levels reveal which frames were taken."""
    sampler = tfv_data.DenseSampler(4, 3, num_clips=2)
    lengths = (13, 7)
    videos = []
    for n in lengths:
        frames = np.zeros((n, 16, 16, 3), np.uint8) + (8 * np.arange(n, dtype=np.uint8))[:, None, None, None]
        videos.append(encode(frames) + [b""] * (max(lengths) - n))
    layer = fc.FeatureLayer([fc.video_column("v", sampler, size=8)])
    clips = layer({"v": tf.constant(videos)})["v"].numpy()  # [2, 2, 4, 8, 8, 3]
    levels = ((clips * STD + MEAN) * 255.0).mean(axis=(3, 4, 5))
    for got, n in zip(levels, lengths):
        np.testing.assert_array_equal(np.round(got / 8).astype(np.int64), sampler(n))


def test_preprocessed_clips_pass_through_and_shape_is_checked():
    column = fc.video_column("video", {"type": "segment", "num_segments": 4}, size=16)
    layer = fc.FeatureLayer([column, fc.numeric_column("duration")])
    clips = tf.random.stateless_normal([2, 1, 4, 16, 16, 3], seed=[1, 2])
    out = layer({"video": clips, "duration": tf.constant([1.0, 2.0])})
    np.testing.assert_array_equal(out["video"].numpy(), clips.numpy())
    np.testing.assert_array_equal(out["dense"].numpy(), [[1.0], [2.0]])
    with pytest.raises(ValueError, match=r"video_column 'video'.*expected \[B, V, 4, 16, 16, 3\]"):
        layer({"video": tf.zeros([2, 1, 8, 16, 16, 3]), "duration": tf.constant([1.0, 2.0])})
    with pytest.raises(ValueError, match=r"video_column 'video'.*dtype int32"):
        layer({"video": tf.zeros([2, 4], tf.int32), "duration": tf.constant([1.0, 2.0])})


def test_training_sampler_is_used_at_test_time_and_flow_has_two_channels():
    column = fc.video_column("flow", tfv_data.SegmentSampler(2, training=True), size=8, modality="flow")
    assert not column.sampler.training
    frames = random_frames(6, 12, 12, seed=5)
    out = fc.FeatureLayer([column])({"flow": tf.constant(frames[None])})["flow"].numpy()
    assert out.shape == (1, 1, 2, 8, 8, 2)
    # Flow is normalised as the training pipeline does it (normalize_flow): with the column's RGB
    # mean/std, v / 127.5 - 1, i.e. mean = std = 0.5 of 0..1 (not the first two ImageNet values).
    expected = tfv_data.preprocess_eval(
        tf.gather(frames, tfv_data.SegmentSampler(2)(6))[..., :2],
        tfv_data.PreprocessConfig(crop_size=8, resize_short=9, mean=(0.5, 0.5), std=(0.5, 0.5)),
    )
    np.testing.assert_allclose(out[0], expected.numpy(), atol=1e-5)


def test_frame_feature_column():
    column = fc.frame_feature_column("chunks", 6)
    layer = fc.FeatureLayer([column])
    seq = np.random.default_rng(0).normal(size=(2, 5, 6)).astype(np.float32)
    np.testing.assert_array_equal(layer({"chunks": tf.constant(seq)})["chunks"].numpy(), seq)
    ragged = tf.ragged.constant([seq[0, :3].tolist(), seq[1].tolist()], ragged_rank=1)
    padded = layer({"chunks": ragged})["chunks"].numpy()
    np.testing.assert_array_equal(padded[0, 3:], 0.0)
    np.testing.assert_allclose(padded[1], seq[1])
    with pytest.raises(ValueError, match=r"frame_feature_column 'chunks'.*expected \[B, T, 6\]"):
        layer({"chunks": tf.zeros([2, 5, 4])})
    assert layer.serving_input_signature()["chunks"].shape.as_list() == [None, None, 6]


def test_video_column_spec_round_trip():
    layer = fc.FeatureLayer(
        [
            fc.video_column(
                "v",
                tfv_data.DenseSampler(4, 2, num_clips=2),
                size=16,
                preprocess=tfv_data.PreprocessConfig(num_crops=3),
            )
        ]
    )
    clone = fc.FeatureLayer.from_spec(layer.to_spec())
    column = clone.columns[0]
    assert column.sampler.get_config() == tfv_data.DenseSampler(4, 2, num_clips=2).get_config()
    assert column.preprocess == tfv_data.PreprocessConfig(crop_size=16, num_crops=3)
    assert column.output_shape == (6, 4, 16, 16, 3)


def test_clip_spec_argument_gives_the_spec_clip():
    """video_column(clip_spec=...) samples and preprocesses as the spec says, the same as the
    equivalent sampler= / preprocess= column, and round-trips through its config."""
    from tfvideo import models

    spec = models.default_clip_spec("i3d_tiny", crop_size=16, resize_short=18, num_clips=2)
    column = fc.video_column("video", clip_spec=spec)
    assert column.output_shape == (2, 8, 16, 16, 3) and column.clip_spec == spec.replace(flip=column.preprocess.flip)
    same = fc.video_column("video", spec.sampler(training=False), size=16, preprocess=spec.preprocess)
    batch = tf.constant([encode(random_frames(30, seed=3)), encode(random_frames(21, seed=4)) + [b""] * 9])
    got = fc.FeatureLayer([column])({"video": batch})["video"].numpy()
    np.testing.assert_allclose(got, fc.FeatureLayer([same])({"video": batch})["video"].numpy(), atol=1e-6)
    expected = spec.clip_from_encoded(batch[1]).numpy()  # The 21-frame video, padding left out.
    np.testing.assert_allclose(got[1], expected, atol=1e-6)
    again = type(column).from_config(column.get_config())
    assert again.clip_spec == column.clip_spec
    with pytest.raises(ValueError, match=r"video_column 'video': give clip_spec= or sampler=/preprocess="):
        fc.video_column("video", spec.sampler(training=False), clip_spec=spec)
    with pytest.raises(ValueError, match=r"size=32 differs from the clip spec's crop_size=16"):
        fc.video_column("video", size=32, clip_spec=spec)
    with pytest.raises(ValueError, match=r"video_column 'video': needs sampler= or clip_spec="):
        fc.video_column("video")
