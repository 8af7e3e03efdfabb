"""`tf.train.SequenceExample` layout for videos (MediaSequence / DMVR / Model Garden keys)."""

import tensorflow as tf

from tfvideo.api._export import export_constant, tf_export

IMAGE_KEY = export_constant("tfvideo.data.IMAGE_KEY", "image/encoded")
FLOW_KEY = export_constant("tfvideo.data.FLOW_KEY", "FORWARD_FLOW/image/encoded")
LABEL_INDEX_KEY = export_constant("tfvideo.data.LABEL_INDEX_KEY", "clip/label/index")
LABEL_STRING_KEY = export_constant("tfvideo.data.LABEL_STRING_KEY", "clip/label/string")
MEDIA_ID_KEY = export_constant("tfvideo.data.MEDIA_ID_KEY", "clip/media_id")
FRAME_RATE_KEY = export_constant("tfvideo.data.FRAME_RATE_KEY", "image/frame_rate")


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


@tf_export("tfvideo.data.make_sequence_example")
def make_sequence_example(jpeg_frames, label=None, label_string=None, media_id="", frame_rate=0.0, flow_frames=None):
    """Builds a `tf.train.SequenceExample` holding one JPEG per frame.

    Args:
      jpeg_frames: list of encoded JPEG bytes, one per frame.
      label: integer class id (or None for unlabelled media).
      label_string: class name.
      media_id: the video's identifier.
      frame_rate: frames per second of the stored frames.
      flow_frames: optional list of encoded flow JPEGs (x, y in the first two channels).
    """
    ex = tf.train.SequenceExample()
    ctx = ex.context.feature
    ctx[MEDIA_ID_KEY].bytes_list.value.append(media_id.encode())
    ctx[FRAME_RATE_KEY].float_list.value.append(float(frame_rate))
    if label is not None:
        ctx[LABEL_INDEX_KEY].int64_list.value.append(int(label))
    if label_string is not None:
        ctx[LABEL_STRING_KEY].bytes_list.value.append(label_string.encode())
    ex.feature_lists.feature_list[IMAGE_KEY].feature.extend(_bytes([f]) for f in jpeg_frames)
    if flow_frames is not None:
        ex.feature_lists.feature_list[FLOW_KEY].feature.extend(_bytes([f]) for f in flow_frames)
    return ex


@tf_export("tfvideo.data.parse_sequence_example")
def parse_sequence_example(serialized, with_flow=False):
    """Parses one serialized SequenceExample into encoded frames and context.

    Returns a dict: `frames` string [N] (encoded JPEG), `label` int32 (-1 if absent),
    `media_id` string, `frame_rate` float32, and `flow` string [N] if asked
    (one flow JPEG per frame, see `prepare_tfrecords`).
    """
    context_spec = {
        MEDIA_ID_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
        LABEL_INDEX_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        FRAME_RATE_KEY: tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
    }
    sequence_spec = {IMAGE_KEY: tf.io.FixedLenSequenceFeature([], tf.string)}
    if with_flow:
        sequence_spec[FLOW_KEY] = tf.io.FixedLenSequenceFeature([], tf.string)
    context, sequences = tf.io.parse_single_sequence_example(serialized, context_spec, sequence_spec)
    out = {
        "frames": sequences[IMAGE_KEY],
        "label": tf.cast(context[LABEL_INDEX_KEY], tf.int32),
        "media_id": context[MEDIA_ID_KEY],
        "frame_rate": context[FRAME_RATE_KEY],
    }
    if with_flow:
        out["flow"] = sequences[FLOW_KEY]
    return out


# Bookkeeping files that `prepare_tfrecords` writes beside its shards (a failures list per
# shard, a report, temp files of a killed run); a pattern like `train-*` matches them too.
_NOT_SHARDS = (".json", ".jsonl")
TMP_MARK = ".tmp-"


@tf_export("tfvideo.data.match_shards")
def match_shards(pattern):
    """Sorted TFRecord shard paths matching `pattern`, without preparation bookkeeping files."""
    return sorted(f for f in tf.io.gfile.glob(pattern) if not f.endswith(_NOT_SHARDS) and TMP_MARK not in f)
