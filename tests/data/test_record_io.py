"""TFRecords written without TensorFlow (`_record_io`, what tfvideo-prepare's workers use) are
byte for byte what TensorFlow writes: the record framing with its CRC-32C, and the
SequenceExample's protobuf bytes (`SerializeToString(deterministic=True)`)."""

import numpy as np
import pytest
import tensorflow as tf

from tfvideo import data
from tfvideo.data import _record_io


def table_crc32c(payload):
    """CRC-32C one byte at a time (the textbook table loop): the reference for short inputs."""
    table = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ 0x82F63B78 if n & 1 else n >> 1
        table.append(n)
    crc = 0xFFFFFFFF
    for byte in payload:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_values_and_continuation():
    # RFC 3720 (iSCSI) B.4 test vectors, and the classic "123456789" check value.
    assert _record_io.crc32c(b"\x00" * 32) == 0x8A9136AA
    assert _record_io.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert _record_io.crc32c(bytes(range(32))) == 0x46DD794E
    assert _record_io.crc32c(b"123456789") == 0xE3069283
    rng = np.random.default_rng(0)
    payload = rng.integers(0, 256, 9000, np.uint8).tobytes()
    for size in (0, 1, 3, 255, 256, 257, 511, 1024, 1027, 4097, 9000):  # Around the 256-byte chunks.
        assert _record_io.crc32c(payload[:size]) == table_crc32c(payload[:size]), size
    cut = 3001
    assert _record_io.crc32c(payload[cut:], _record_io.crc32c(payload[:cut])) == table_crc32c(payload)


def test_tfrecord_file_is_byte_identical_to_tensorflows(tmp_path):
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (1 << 22) * 2 + 5, np.uint8).tobytes()  # Over two CRC blocks of the writer.
    records = [b"", b"x", big[:255], big[:100_003], big]
    with tf.io.TFRecordWriter(str(tmp_path / "tf.tfrecord")) as writer:
        for record in records:
            writer.write(record)
    with _record_io.TFRecordFileWriter(tmp_path / "ours.tfrecord") as writer:
        for i, record in enumerate(records):  # As one bytes object, and as pieces of one record.
            writer.write(record if i % 2 else [record[:7], record[7:1000], b"", record[1000:]])
    assert (tmp_path / "ours.tfrecord").read_bytes() == (tmp_path / "tf.tfrecord").read_bytes()
    read = [r.numpy() for r in tf.data.TFRecordDataset(str(tmp_path / "ours.tfrecord"))]
    assert read == records


@pytest.mark.parametrize("kwargs", [
    {"jpeg_frames": []},
    {"jpeg_frames": [b"\xff\xd8a", b"", b"b" * 300], "label": 3, "label_string": "walk", "media_id": "v1",
     "frame_rate": 29.97, "flow_frames": [b"f1", b"f" * 200, b""]},
    {"jpeg_frames": [b"j" * 70_000], "label": -1, "media_id": "été", "frame_rate": 0.0},
    {"jpeg_frames": [b"a", b"b"], "label": 2**40, "label_string": ""},
])
def test_video_example_is_tensorflows_serialization(kwargs):
    ours = _record_io.video_example(**kwargs).SerializeToString()
    reference = data.make_sequence_example(**kwargs)
    assert ours == reference.SerializeToString(deterministic=True)
    assert tf.train.SequenceExample.FromString(ours) == reference
    sequence = {data.IMAGE_KEY: tf.io.FixedLenSequenceFeature([], tf.string)}
    if kwargs.get("flow_frames") is not None:
        sequence[data.FLOW_KEY] = tf.io.FixedLenSequenceFeature([], tf.string)
    context = {data.MEDIA_ID_KEY: tf.io.FixedLenFeature([], tf.string),
               data.FRAME_RATE_KEY: tf.io.FixedLenFeature([], tf.float32)}
    parsed_context, parsed, _ = tf.io.parse_sequence_example([ours], context, sequence)
    assert parsed[data.IMAGE_KEY].numpy()[0].tolist() == kwargs["jpeg_frames"]
    if kwargs.get("flow_frames") is not None:
        assert parsed[data.FLOW_KEY].numpy()[0].tolist() == kwargs["flow_frames"]
    assert parsed_context[data.MEDIA_ID_KEY].numpy()[0].decode() == kwargs.get("media_id", "")
    assert parsed_context[data.FRAME_RATE_KEY].numpy()[0] == np.float32(kwargs.get("frame_rate", 0.0))
