"""on_error="raise" raises the library's `VideoDecodeError` (path, reason), not TensorFlow's error.

Before: iterating a `video_dataset` with a bad video or record raised
`tf.errors.InvalidArgumentError`, whose message held a Python traceback. TFDS sources are
checked in tests/data/test_tfds_source.py.
"""

import numpy as np
import pytest
import tensorflow as tf
from framecode import frame_code_frames
from shardfiles import clip_record

from tfvideo import data

RAW = False  # preprocess=False: decoded frames as they are.


@pytest.fixture(scope="module")
def video_list(tmp_path_factory):
    root = tmp_path_factory.mktemp("decode_errors")
    good = str(root / "good.mp4")
    data.write_video(good, frame_code_frames(8, 32, 48), fps=8)
    bad = root / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    listing = root / "list.txt"
    listing.write_text(f"{good} 0\n{bad} 1\n")
    return str(listing), str(bad)


def test_video_files_raise_video_decode_error(video_list):
    listing, bad = video_list
    assert issubclass(data.VideoDecodeError, ValueError)
    ds = data.video_dataset(listing, data.SegmentSampler(2), preprocess=RAW)
    with pytest.raises(data.VideoDecodeError) as info:
        for _ in ds:
            pass
    assert info.value.path == bad and info.value.reason.startswith("cannot open container")
    assert str(info.value) == f"{bad}: {info.value.reason}"
    # Datasets made from it keep raising the library's error.
    for derived in (data.to_supervised(ds), ds.take(5), ds.map(lambda e: e["label"]).batch(2),
                    ds.apply(lambda d: d.prefetch(1))):
        with pytest.raises(data.VideoDecodeError) as info:
            list(derived.as_numpy_iterator())
        assert info.value.path == bad
    with pytest.raises(data.VideoDecodeError):
        iterator = iter(ds)
        next(iterator)
        iterator.get_next()


def test_tfrecord_records_raise_video_decode_error(tmp_path):
    broken = data.make_sequence_example([b"not a jpeg"] * 4, 1, media_id="broken").SerializeToString()
    shard = str(tmp_path / "s.tfrecord")
    with tf.io.TFRecordWriter(shard) as writer:
        for record in (clip_record(0), broken):
            writer.write(record)
    with pytest.raises(data.VideoDecodeError) as info:
        list(data.video_dataset(shard, data.SegmentSampler(2), preprocess=RAW).as_numpy_iterator())
    assert info.value.path == shard
    assert info.value.reason.startswith("record 1 (media_id 'broken'): image/encoded frame 0 of 4 does not decode")


def test_inside_tf_function_the_library_error_is_recovered(video_list):
    listing, bad = video_list
    ds = data.video_dataset(listing, data.SegmentSampler(2), preprocess=RAW)

    @tf.function
    def count(dataset):
        n = tf.constant(0)
        for _ in dataset:
            n += 1
        return n

    with pytest.raises(tf.errors.OpError) as info:
        count(ds)
    found = data.VideoDecodeError.from_error(info.value)
    assert isinstance(found, data.VideoDecodeError) and found.path == bad
    assert found.reason.startswith("cannot open container") and found.__cause__ is info.value
    assert data.VideoDecodeError.from_error(tf.errors.InvalidArgumentError(None, None, "other")) is None
