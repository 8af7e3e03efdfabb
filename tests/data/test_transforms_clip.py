"""Clip consistency: random crops, flips and jitter are the same for every frame of a clip."""

import numpy as np
import pytest
import tensorflow as tf

from tfvideo import data


def still_clip(views=1, frames=4, height=40, width=56, seed=0):
    """[V, T, H, W, 3]: every frame the same random image, so any per-frame difference shows."""
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    return tf.constant(np.broadcast_to(image, (views, frames, height, width, 3)).copy())


@pytest.mark.parametrize(
    "transform",
    [
        lambda v, s: data.multi_scale_crop(v, 24, s),
        lambda v, s: data.multi_scale_crop(v, 24, s, fix_crop=False),
        lambda v, s: data.random_resized_crop(v, 24, s),
        lambda v, s: data.random_flip(v, s)[0],
        lambda v, s: data.color_jitter(v, s, 0.3, 0.3),
    ],
    ids=["multi_scale", "multi_scale_free", "random_resized", "flip", "jitter"],
)
def test_same_random_transform_for_every_frame(transform):
    video = still_clip()
    for seed in range(5):
        out = transform(video, tf.constant([seed, 7])).numpy()
        for t in range(1, out.shape[1]):
            np.testing.assert_array_equal(out[:, t], out[:, 0], err_msg=f"seed {seed} frame {t}")
        again = transform(video, tf.constant([seed, 7])).numpy()
        np.testing.assert_array_equal(out, again)


def test_preprocess_train_is_clip_consistent_and_flips_labels():
    config = data.PreprocessConfig(crop_size=24, resize_short=32, flip=True, flip_label_map=(1, 0, 2), color_jitter=0.2)
    video = still_clip(frames=3)
    labels = set()
    for seed in range(8):
        out, label = data.preprocess_train(video, tf.constant(0), tf.constant([seed, 1]), config)
        out = out.numpy()
        assert out.shape == (1, 3, 24, 24, 3)
        np.testing.assert_array_equal(out[:, 1:], np.broadcast_to(out[:, :1], out[:, 1:].shape))
        # preprocess_train flips with the second of three split seeds (random_flip's coin).
        flip_seed = tf.random.split(tf.constant([seed, 1]), 3)[1]
        flipped = bool(tf.random.stateless_uniform([], flip_seed) < 0.5)
        assert int(label) == (1 if flipped else 0), seed
        labels.add(int(label))
    assert labels == {0, 1}


def test_ten_and_three_crop_by_hand():
    video = tf.constant(np.arange(2 * 6 * 8 * 1, dtype=np.float32).reshape(1, 2, 6, 8, 1))
    ten = data.ten_crop(video, 4).numpy()
    assert ten.shape == (10, 1, 2, 4, 4, 1)
    v = video.numpy()
    for k, (top, left) in enumerate([(0, 0), (0, 4), (2, 0), (2, 4), (1, 2)]):
        np.testing.assert_array_equal(ten[k], v[..., top : top + 4, left : left + 4, :])
        np.testing.assert_array_equal(ten[k + 5], ten[k][..., ::-1, :])
    three = data.three_crop(video, 6).numpy()  # wide frames: crops slide along the width
    for k, left in enumerate([0, 1, 2]):
        np.testing.assert_array_equal(three[k], v[..., 0:6, left : left + 6, :])


@pytest.mark.parametrize("num_crops, clips", [(1, 1), (3, 2), (10, 1)])
def test_eval_views_are_clip_major(num_crops, clips):
    config = data.PreprocessConfig(crop_size=16, resize_short=20, num_crops=num_crops)
    video = tf.concat([still_clip(1, 2, seed=s) for s in range(clips)], 0)
    out = data.preprocess_eval(video, config)
    assert out.shape == (clips * num_crops, 2, 16, 16, 3)
    single = data.preprocess_eval(video[1:] if clips > 1 else video, config)
    np.testing.assert_allclose(out[-num_crops:], single, atol=1e-6)


def test_rgb_difference_stays_inside_snippets():
    video = tf.constant(np.arange(6, dtype=np.float32)[:, None, None, None] ** 2 * np.ones((1, 1, 1, 1), np.float32))
    # Frames 0,1,4,9,16,25 as two snippets of 3: differences (1,3) and (7,9); 9-4 is never taken.
    np.testing.assert_array_equal(data.rgb_difference(video, 3).numpy().ravel(), [1, 3, 7, 9])
    np.testing.assert_array_equal(data.rgb_difference(video).numpy().ravel(), [1, 3, 5, 7, 9])


@pytest.mark.parametrize("size", [(40, 56), (50, 70), (48, 40), (30, 42), (24, 24)], ids=str)
def test_resize_equals_the_antialiased_bilinear_resize(size):
    # The fast paths (same size: no-op; no side shrinking: plain bilinear) give the values of
    # the antialiased resize, which is the reference for every size.
    video = still_clip(views=2, frames=3)
    want = tf.image.resize(tf.cast(tf.reshape(video, [-1, 40, 56, 3]), tf.float32), size, antialias=True)
    got = data.resize(video, size)
    assert got.shape == (2, 3, *size, 3) and got.dtype == tf.float32
    np.testing.assert_allclose(tf.reshape(got, [-1, *size, 3]), want, atol=1e-4)  # of 0..255
    if size == (40, 56):
        np.testing.assert_array_equal(got, tf.cast(video, tf.float32))


def test_normalize_by_hand():
    video = tf.constant([[0, 128, 255]], tf.uint8)[..., None, :]  # one pixel, 3 channels
    want = (np.array([0, 128, 255], np.float32) / 255.0 - np.array(data.IMAGENET_MEAN)) / np.array(data.IMAGENET_STD)
    np.testing.assert_allclose(data.normalize(video).numpy().ravel(), want, rtol=1e-6, atol=1e-6)


def ramp_clip(channels=3, frames=3, height=48, width=64):
    """uint8 [1, T, H, W, C]: channel 0 = 3x, channel 1 = 4y (+ 90 for a third): any box shift or flip shows."""
    y, x = np.mgrid[0:height, 0:width]
    planes = [3 * x, 4 * y, np.full_like(x, 90)][:channels]
    return tf.constant(np.broadcast_to(np.stack(planes, -1).astype(np.uint8), (1, frames, height, width, channels)).copy())


@pytest.mark.parametrize("train_crop", ["multi_scale", "random_resized", "center"])
@pytest.mark.parametrize("resize_short", [40, 0])
def test_pipeline_training_crop_on_uint8_is_preprocess_train(train_crop, resize_short):
    """The data pipeline crops, resizes and flips uint8 frames with OpenCV (and normalizes by table look-up):
    preprocess_train's box and flip for every seed, its pixels up to interpolation (exact on a ramp)."""
    from tfvideo.data import _preprocess

    config = data.PreprocessConfig(crop_size=32, resize_short=resize_short, train_crop=train_crop)
    video = ramp_clip()
    flips = set()
    for seed in range(8):
        seed = tf.constant([seed, 5])
        want, _ = data.preprocess_train(video, tf.constant(0), seed, config)
        got = _preprocess._preprocess_modalities({"frames": video, "label": tf.constant(0), "media_id": "m"}, seed,
                                                 training=True, config=config, modality="rgb", snippet_length=None)
        got = got["video"].numpy()
        assert got.shape == want.shape == (1, 3, 32, 32, 3) and got.dtype == np.float32
        levels = np.abs(got - want.numpy()) * 255 * np.array(config.std)  # Back to 0..255 levels.
        # A box one pixel off moves the ramp by >= 3 levels everywhere; a wrong flip by up to ~90.
        assert levels.mean() < 0.6 and np.median(levels) < 0.6, (seed, levels.mean())
        flips.add(bool(got[0, 0, 0, 0, 0] > got[0, 0, 0, -1, 0]))
    assert flips == {True, False}
    if train_crop == "center" and not resize_short:  # No interpolation at all: the same numbers.
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


@pytest.mark.parametrize("channels", [1, 2])
def test_pipeline_training_crop_on_uint8_takes_flow_channels(channels):
    from tfvideo.data import _preprocess

    config = data.PreprocessConfig(crop_size=24, resize_short=40, mean=(0.5, 0.5), std=(0.5, 0.5))
    video = ramp_clip(channels)
    seeds = tf.random.split(tf.constant([3, 1]), 3)
    want, want_flip = _preprocess._train_spatial(video, seeds, config)
    got, got_flip = _preprocess._train_spatial_uint8(video, seeds, config)
    assert got.dtype == tf.uint8 and got.shape == (1, 3, 24, 24, channels)
    assert bool(got_flip) == bool(want_flip)
    assert np.abs(got.numpy() - want.numpy()).mean() < 0.6
