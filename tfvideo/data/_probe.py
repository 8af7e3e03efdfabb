"""Frame sizes of a data source, read from a few of its videos (no full decoding)."""

import numpy as np
import tensorflow as tf

from tfvideo.api._export import tf_export
from tfvideo.data import _annotations, _formats, _rawframes, _tfrecord, _video_io


def _spread(items, count):
    """Up to `count` items evenly spread over `items` (first and last included)."""
    if len(items) <= count:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def _is_list(source):
    return isinstance(source, str) and source.endswith((".txt", ".csv", ".list"))


@tf_export("tfvideo.data.probe_frame_sizes")
def probe_frame_sizes(source, max_videos=8, label_map=None, video_root=None):
    """(height, width) of up to `max_videos` videos of `source`, without decoding them.

    Args:
      source: an annotation list (files spread over the list are probed with PyAV) or a
        TFRecord pattern (the first JPEG frame of the first records of the first shards).
      max_videos: how many videos to look at.
      label_map: class names, for lists whose labels are names.
    Returns:
      list of (height, width); videos that cannot be read are left out (the input
      pipeline reports them by name).
    """
    if max_videos < 1:
        raise ValueError(f"probe_frame_sizes: max_videos={max_videos} must be >= 1")
    sizes = []
    if _formats.parse_source(source) is not None or _is_list(source):
        if _formats.parse_source(source) is not None:
            records = _formats.read_dataset(source, video_root=video_root, label_map=label_map).records
        else:
            records = _annotations.read_annotations(source, video_root, label_map)
        for record in _spread(records, max_videos):
            try:
                info = _rawframes.probe_record(record)  # A video file or a frame folder.
            except _video_io.VideoDecodeError:
                continue
            sizes.append((int(info.height), int(info.width)))
        return sizes
    files = _tfrecord.match_shards(source)
    records = iter(_tfrecord.shard_records(files[:max_videos], on_error="skip").take(max_videos))
    while True:
        try:
            serialized = next(records)
        except StopIteration:
            break
        except tf.errors.OpError:  # A damaged shard: the counting and the input pipeline name it.
            break
        try:
            frames = _tfrecord.parse_sequence_example(serialized)["frames"]
            if int(tf.size(frames)) == 0:
                continue
            shape = tf.io.extract_jpeg_shape(frames[0]).numpy()
        except (tf.errors.InvalidArgumentError, ValueError):
            continue
        sizes.append((int(shape[0]), int(shape[1])))
    return sizes
