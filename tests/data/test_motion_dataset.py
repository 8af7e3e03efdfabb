"""The 8-motion synthetic set (direction pairs, mixed sizes/codecs/rates) and frame-size probing."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfvideo import data
from tfvideo.data import _synthetic


def _shape_masks(frames):
    """Bright-shape mask per frame (the shape is 150..240, the background 16..80, noise +-12)."""
    return frames.astype(np.int32).mean(-1) > 110


def _centroids(frames):
    out = []
    for mask in _shape_masks(frames):
        ys, xs = np.nonzero(mask)
        out.append((ys.mean(), xs.mean(), mask.sum()))
    return np.array(out)


@pytest.mark.parametrize("name,axis,sign", [("left_to_right", 1, 1), ("right_to_left", 1, -1),
                                            ("moving_up", 0, -1), ("moving_down", 0, 1)])
def test_translations_move_the_way_their_names_say(name, axis, sign):
    c = _centroids(_synthetic.moving_shape_frames(name, np.random.default_rng(0), 12, (40, 56)))
    steps = np.diff(c[:, axis])
    assert np.all(sign * steps >= 0) and sign * (c[-1, axis] - c[0, axis]) > 5
    assert np.ptp(c[:, 1 - axis]) < 1.0  # No drift across.


@pytest.mark.parametrize("name,sign", [("rotating_clockwise", 1), ("rotating_anticlockwise", -1)])
def test_rotations_turn_clockwise_on_screen_or_against(name, sign):
    h, w = 48, 64
    c = _centroids(_synthetic.moving_shape_frames(name, np.random.default_rng(1), 10, (h, w)))
    # Image y points down, so a clockwise turn on screen increases atan2(y, x) about the centre.
    angles = np.unwrap(np.arctan2(c[:, 0] - h / 2, c[:, 1] - w / 2))
    assert np.all(sign * np.diff(angles) > 0.1)
    assert np.ptp(c[:, 2]) < 0.35 * c[:, 2].mean()  # Same hand, only turned.


@pytest.mark.parametrize("name,sign", [("approaching", 1), ("receding", -1)])
def test_approach_grows_and_recede_shrinks(name, sign):
    c = _centroids(_synthetic.moving_shape_frames(name, np.random.default_rng(2), 8, (48, 48)))
    assert np.all(sign * np.diff(c[:, 2]) > 0)
    assert np.ptp(c[:, 0]) < 2 and np.ptp(c[:, 1]) < 2


def test_unknown_motion_is_rejected():
    with pytest.raises(ValueError, match="unknown motion 'sideways'"):
        _synthetic.moving_shape_frames("sideways", np.random.default_rng(0))


def test_motion_dataset_mixes_sizes_codecs_and_rates(tmp_path):
    sizes = ((32, 48), (40, 56))
    out = data.make_motion_dataset(str(tmp_path), videos_per_class=(2, 1), sizes=sizes, num_frames=(8, 12),
                                   fps=(10, 25), codecs=("libx264", "mpeg4"), seed=3)
    assert data.read_label_map(out["label_map"]) == list(data.MOTION_CLASSES)
    records = data.read_annotations(out["train"], label_map=out["label_map"])
    assert len(records) == 16 and len(data.read_annotations(out["val"], label_map=out["label_map"])) == 8
    assert [r.label for r in records] == [k for k in range(8) for _ in range(2)]
    infos = [data.probe_video(r.path) for r in records]
    assert {(i.height, i.width) for i in infos} == set(sizes)
    assert {i.codec for i in infos} == {"h264", "mpeg4"}
    assert {round(i.fps) for i in infos} == {10, 25}
    assert {i.num_frames for i in infos} == {8, 12}
    assert all(r.path.endswith(".mp4" if i.codec == "h264" else ".avi") for r, i in zip(records, infos))
    with pytest.raises(ValueError, match="size 33x48 must be even"):
        data.make_motion_dataset(str(tmp_path / "bad"), sizes=((33, 48),))


def test_probe_frame_sizes_of_lists_and_tfrecords(tmp_path, moving_shapes):
    assert data.probe_frame_sizes(moving_shapes["train"], max_videos=3) == [(32, 32)] * 3
    jpegs = [tf.io.encode_jpeg(np.zeros((24, 40, 3), np.uint8)).numpy()] * 2
    path = str(tmp_path / "train-00000-of-00001")
    with tf.io.TFRecordWriter(path) as writer:
        for k in range(3):
            writer.write(data.make_sequence_example(jpegs, label=0, media_id=f"v{k}").SerializeToString())
    assert data.probe_frame_sizes(str(tmp_path / "train-*"), max_videos=2) == [(24, 40)] * 2
    # An unreadable video is left out (the pipeline names it later).
    broken = tmp_path / "list.txt"
    (tmp_path / "empty.mp4").write_bytes(b"")
    first = data.read_annotations(moving_shapes["train"])[0].path
    broken.write_text(f"empty.mp4 0\n{first} 1\n")
    assert data.probe_frame_sizes(str(broken)) == [(32, 32)]
    with pytest.raises(ValueError, match="max_videos=0"):
        data.probe_frame_sizes(str(broken), max_videos=0)
    assert os.path.exists(first)
