"""Phases "sample" and "decode": per-element seeds -> frame indices -> decoded uint8 frames.

An element's seed drives its sampler (so sampling is reproducible and new each epoch);
only the sampled frames are decoded: encoded JPEG/PNG frames of TFRecord and TFDS
examples with `decode_encoded`, video files with PyAV in `file_decoder`. Decoders return
elements {frames uint8 [V, T, H, W, 3] and/or flow uint8 [V, T, H, W, 2], label,
media_id, ok}.
"""

import numpy as np
import tensorflow as tf

from tfvideo.data import _errors, _rawframes, _tfrecord, _video_io


def element_seeds(seed):
    """A dataset of int32 [2] stateless seeds: reproducible given `seed`, new each epoch."""
    ds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return ds.map(lambda r: tf.stack([tf.cast(r % 2147483647, tf.int32), tf.cast((r // 2147483647) % 2147483647, tf.int32)]))


def _numpy_rng(seed):
    return np.random.default_rng([int(s) & 0x7FFFFFFF for s in np.asarray(seed).reshape(-1)])


def sample_indices(sampler, num_frames, seed):
    """Runs the (NumPy) sampler inside the graph: int64 [views, T]."""

    def run(n, s):
        return sampler(int(n), _numpy_rng(s))

    out = tf.numpy_function(run, [num_frames, seed], tf.int64, stateful=False)
    return tf.reshape(out, [sampler.num_views, sampler.clip_length])


def decode_images(encoded):
    """string [N] (JPEG/PNG) -> uint8 [N, H, W, 3]; every frame of a video must have one size."""
    return tf.map_fn(
        lambda b: tf.ensure_shape(tf.io.decode_image(b, channels=3, expand_animations=False), [None, None, 3]),
        encoded,
        fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
    )


def decode_encoded(encoded, indices, channels):
    """Decodes only the sampled frames: `encoded` string [N] (JPEG/PNG) or uint8 [N, H, W, C].

    Returns uint8 [V, T, H, W, channels] for int64 `indices` [V, T]; `preprocess_eval` of
    it is the evaluation clip.
    """
    selected = tf.gather(encoded, tf.reshape(indices, [-1]))
    frames = decode_images(selected) if encoded.dtype == tf.string else selected
    frames = frames[..., :channels]
    shape = tf.concat([tf.shape(indices), tf.shape(frames)[1:]], 0)
    return tf.reshape(frames, shape)


def encoded_decoder(sampler, modality):
    """decode(parsed, seed) for sources holding encoded frames (TFRecord, TFDS)."""
    wants_rgb = modality != "flow"
    wants_flow = "flow" in modality

    def decode(parsed, seed):
        count = tf.shape(parsed["flow" if not wants_rgb else "frames"])[0]
        indices = sample_indices(sampler, count, seed)
        out = {"label": parsed["label"], "media_id": parsed["media_id"], "ok": tf.constant(True)}
        if wants_rgb:
            out["frames"] = decode_encoded(parsed["frames"], indices, 3)
        if wants_flow:
            out["flow"] = decode_encoded(parsed["flow"], indices, 2)
        return out

    return decode


def record_decoder(sampler, *, modality, training, multi_label=None):
    """decode(record, seed) for `_tfrecord.read_shard` records: parse, then sample and decode.

    `multi_label` = C classes: `label` is the multi-hot [C] of the record's labels.

    Parsing happens here, so a record that does not parse (or a damaged shard, or a
    missing label in training) fails like one whose JPEG frames do not decode, and the
    error guard can name it.
    """
    with_flow = "flow" in modality
    decode_parsed = encoded_decoder(sampler, modality)

    def decode(record, seed):
        checks = [tf.debugging.assert_equal(record["fault"], "", message="damaged shard")]
        with tf.control_dependencies(checks):
            parsed = _tfrecord.parse_sequence_example(tf.identity(record["serialized"]), with_flow=with_flow,
                                                      multi_label=multi_label)
        if training:
            if multi_label:
                checks = [tf.debugging.Assert(tf.reduce_any(parsed["label"] > 0), ["record has no label"])]
            else:
                checks = [tf.debugging.assert_non_negative(parsed["label"], message="record has no label")]
            with tf.control_dependencies(checks):
                parsed["label"] = tf.identity(parsed["label"])
        return decode_parsed(parsed, seed)

    return decode


def file_decoder(sampler, *, on_error, skipped, short_side=None, flow_templates=None):
    """decode((path, label, media_id, folder), seed) for video files (PyAV) and frame folders.

    With `short_side`, frames are resized while converting to RGB (FFmpeg's bilinear
    scaler), so preprocessing's `resize_short_side` to the same size is skipped. An
    unreadable file raises or is skipped (ok=False) per `on_error`. With `flow_templates`
    (the (x, y) file templates), frame folders give their precomputed flow instead:
    `flow` uint8 [V, T, H, W, 2] as stored (128 = no motion), not resized here, so it is
    sampled and preprocessed exactly as flow from TFRecords.
    """
    channels = 2 if flow_templates else 3

    def load(path, seed, template, start, count):
        path = path.decode()
        try:
            if flow_templates:  # Precomputed flow: the listed count (else the x files), then the sampled pairs.
                start, count = int(start), int(count)
                count = count if count >= 0 else _rawframes.count_frame_files(path, flow_templates[0], start)
                indices = sampler(count, _numpy_rng(seed))
                return _rawframes.read_flow_folder(path, indices, flow_templates, start, count), True
            if template:  # A frame folder: its listed count (else its files), then the sampled files.
                template, start, count = template.decode(), int(start), int(count)
                count = count if count >= 0 else _rawframes.count_frame_files(path, template, start)
                indices = sampler(count, _numpy_rng(seed))
                return _rawframes.read_frame_folder(path, indices, template, start, count, short_side), True
            # One pass over the packets indexes the file for the sampler and the read. One
            # decoding thread per clip: tf.data already decodes clips in parallel.
            with _video_io.VideoReader(path, num_threads=1) as video:
                indices = sampler(video.num_frames, _numpy_rng(seed))
                return video.read(indices, short_side=short_side), True
        except _video_io.VideoDecodeError as e:
            _errors.report_unreadable(e, on_error, skipped)
            return np.zeros((sampler.num_views, sampler.clip_length, 1, 1, channels), np.uint8), False

    def decode(element, seed):
        path, label, media_id, (template, start, count) = element
        frames, ok = tf.numpy_function(load, [path, seed, template, start, count], [tf.uint8, tf.bool], stateful=False)
        frames = tf.ensure_shape(frames, [sampler.num_views, sampler.clip_length, None, None, channels])
        key = "flow" if flow_templates else "frames"
        return {key: frames, "label": label, "media_id": media_id, "ok": tf.ensure_shape(ok, [])}

    return decode
