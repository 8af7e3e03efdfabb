"""Phase "source": where the examples come from, before anything is decoded.

Three sources, each a dataset of undecoded examples: a list of video files (paths,
labels, media ids), TFRecord shards of SequenceExamples (`_tfrecord.read_shard` records,
still serialized), and a locally prepared `tensorflow_datasets` dataset (frames still
encoded). Parsing, sampling and decoding come after (`_decode`).
"""

import os

import numpy as np
import tensorflow as tf

from tfvideo.data import _tfrecord


def is_tfrecord_source(source):
    return isinstance(source, str) and not source.endswith((".txt", ".csv", ".list")) and (
        "tfrecord" in source or any(c in source for c in "*?[")
    )


def decoding_threads():
    """tf.data threads for pipelines that decode video files: twice the cores, at least 4.

    A file read spends most of its time in FFmpeg's decoder with the GIL released; with
    tf.data's default pool (one thread per core) shared by the decodes in flight and the
    TensorFlow preprocessing, a process whose cores are shared with a trainer got half the
    CPU time MMAction2's two worker processes got (benchmarks/loader_vs_mmaction2.py,
    docs/notes/data.md). More threads than cores keep the decoder busy; CPU per clip is
    unchanged.
    """
    return max(4, 2 * (os.cpu_count() or 1))


def multi_hot(records, num_classes):
    """float32 [N, num_classes]: 1 at each class of each record (its `labels`, else `label`; none for -1)."""
    out = np.zeros((len(records), num_classes), np.float32)
    for i, record in enumerate(records):
        for k in record.labels or (record.label,):
            if k >= num_classes:
                raise ValueError(f"{record.media_id}: label {k} out of range [0, {num_classes})")
            if k >= 0:
                out[i, k] = 1.0
    return out


def file_source(records, multi_label=None):
    """Dataset of (path, label, media_id, folder) of `VideoRecord`s, in list order.

    `label`: int32, or with `multi_label` = C classes the float32 multi-hot [C].
    `folder`: (frame template, start index int64, listed frame count int64) of a frame
    folder; ("", 0, -1) for a video file.

    Carries tf.data options that give the whole pipeline `decoding_threads()` threads
    (options set on an input apply to the datasets built on it).
    """
    paths = [r.path for r in records]
    if multi_label:
        labels = multi_hot(records, int(multi_label))
    else:
        labels = np.array([r.label for r in records], np.int32)
    ids = [r.media_id for r in records]
    templates = [r.frame_template or "" for r in records]
    starts = np.array([r.start_index if r.frame_template else 0 for r in records], np.int64)
    counts = np.array([-1 if r.num_frames is None else r.num_frames for r in records], np.int64)
    options = tf.data.Options()
    options.threading.private_threadpool_size = decoding_threads()
    return tf.data.Dataset.from_tensor_slices((paths, labels, ids, (templates, starts, counts))).with_options(options)


def tfrecord_source(pattern, *, training, seed, deterministic):
    """Records (`read_shard` dicts: shard, record index, serialized bytes, fault) of the shards matching `pattern`.

    In training the shard order is shuffled; up to 8 shards are read interleaved.
    """
    files = _tfrecord.match_shards(pattern)
    if not files:
        raise FileNotFoundError(f"No TFRecord files match {pattern!r}.")
    sizes = np.array([tf.io.gfile.stat(f).length for f in files], np.int64)
    ds = tf.data.Dataset.from_tensor_slices((files, sizes))
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return ds.interleave(
        _tfrecord.read_shard, cycle_length=min(len(files), 8), num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
    )


def tfds_source(name_or_builder, split, *, training, seed, data_dir, video_key, label_key):
    """TFDS examples, `parse(example)` and a description naming the dataset and split for errors.

    `parse` makes {frames string [N] (still encoded: TFDS `SkipDecoding`), label int32 (-1
    if the example has none), media_id (TFDS id)}. Nothing is downloaded: the dataset must
    already be prepared in `data_dir`.
    """
    import tensorflow_datasets as tfds  # Optional import: only this source needs it.

    builder = tfds.builder(name_or_builder, data_dir=data_dir) if isinstance(name_or_builder, str) else name_or_builder
    if video_key not in builder.info.features:
        raise KeyError(f"tfds_dataset: {builder.info.full_name} has no feature {video_key!r}; features: {list(builder.info.features)}")
    ds = builder.as_dataset(
        split=split,
        shuffle_files=training,
        decoders={video_key: tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(add_tfds_id=True, shuffle_seed=seed),
    )

    def parse(example):
        return {
            "frames": example[video_key],
            "label": tf.cast(example[label_key], tf.int32) if label_key in example else tf.constant(-1, tf.int32),
            "media_id": example["tfds_id"],
        }

    return ds, parse, f"tfds {builder.info.full_name} split {split!r}"
