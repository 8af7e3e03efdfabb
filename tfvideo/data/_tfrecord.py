"""`tf.train.SequenceExample` layout for videos (MediaSequence / DMVR / Model Garden keys)."""

import os
import re
import struct

import numpy as np
import tensorflow as tf
from absl import logging

from tfvideo.api._export import tf_export
from tfvideo.data import _record_io, _video_io
from tfvideo.data._record_io import (  # The keys live where prepare's workers, which do not import TensorFlow, write them.
    FLOW_KEY,
    FRAME_RATE_KEY,
    IMAGE_KEY,
    LABEL_INDEX_KEY,
    LABEL_STRING_KEY,
    MEDIA_ID_KEY,
    TMP_MARK,
)


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


@tf_export("tfvideo.data.make_sequence_example")
def make_sequence_example(jpeg_frames, label=None, label_string=None, media_id="", frame_rate=0.0, flow_frames=None):
    """Builds a `tf.train.SequenceExample` holding one JPEG per frame.

    Args:
      jpeg_frames: list of encoded JPEG bytes, one per frame.
      label: integer class id (or None for unlabelled media); a multi-label clip's list
        of class ids (all stored under `LABEL_INDEX_KEY`, see `parse_sequence_example`).
      label_string: class name (a list of them with a list of labels).
      media_id: the video's identifier.
      frame_rate: frames per second of the stored frames.
      flow_frames: optional list of encoded flow JPEGs (x, y in the first two channels).
    """
    ex = tf.train.SequenceExample()
    ctx = ex.context.feature
    ctx[MEDIA_ID_KEY].bytes_list.value.append(media_id.encode())
    ctx[FRAME_RATE_KEY].float_list.value.append(float(frame_rate))
    if label is not None:
        ctx[LABEL_INDEX_KEY].int64_list.value.extend(int(v) for v in _record_io.as_list(label))
    if label_string is not None:
        ctx[LABEL_STRING_KEY].bytes_list.value.extend(v.encode() for v in _record_io.as_list(label_string))
    ex.feature_lists.feature_list[IMAGE_KEY].feature.extend(_bytes([f]) for f in jpeg_frames)
    if flow_frames is not None:
        ex.feature_lists.feature_list[FLOW_KEY].feature.extend(_bytes([f]) for f in flow_frames)
    return ex


@tf_export("tfvideo.data.parse_sequence_example")
def parse_sequence_example(serialized, with_flow=False, multi_label=None):
    """Parses one serialized SequenceExample into encoded frames and context.

    Returns a dict: `frames` string [N] (encoded JPEG), `label` int32 (-1 if absent),
    `media_id` string, `frame_rate` float32, and `flow` string [N] if asked
    (one flow JPEG per frame, see `prepare_tfrecords`). With `multi_label` = C classes
    (records of a multi-label list: all their labels under `LABEL_INDEX_KEY`), `label`
    is the float32 multi-hot [C] of the labels stored (zeros if none; a label outside
    [0, C) fails).
    """
    label_spec = (tf.io.VarLenFeature(tf.int64) if multi_label else
                  tf.io.FixedLenFeature([], tf.int64, default_value=-1))
    context_spec = {
        MEDIA_ID_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
        LABEL_INDEX_KEY: label_spec,
        FRAME_RATE_KEY: tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
    }
    sequence_spec = {IMAGE_KEY: tf.io.FixedLenSequenceFeature([], tf.string)}
    if with_flow:
        sequence_spec[FLOW_KEY] = tf.io.FixedLenSequenceFeature([], tf.string)
    context, sequences = tf.io.parse_single_sequence_example(serialized, context_spec, sequence_spec)
    out = {
        "frames": sequences[IMAGE_KEY],
        "label": _multi_hot(context[LABEL_INDEX_KEY].values, multi_label) if multi_label else
        tf.cast(context[LABEL_INDEX_KEY], tf.int32),
        "media_id": context[MEDIA_ID_KEY],
        "frame_rate": context[FRAME_RATE_KEY],
    }
    if with_flow:
        out["flow"] = sequences[FLOW_KEY]
    return out


def _multi_hot(labels, num_classes):
    """float32 [num_classes]: 1 at each of the int64 `labels` (which must be in [0, num_classes))."""
    checks = [tf.debugging.assert_non_negative(labels, message="record has a negative label"),
              tf.debugging.assert_less(labels, tf.constant(num_classes, tf.int64),
                                       message=f"record has a label outside [0, {num_classes})")]
    with tf.control_dependencies(checks):
        hot = tf.one_hot(labels, num_classes, dtype=tf.float32)
    return tf.minimum(tf.reduce_sum(hot, axis=0), 1.0)


def error_line(text):
    """The first line of an error message, without TensorFlow's `{{function_node ...}}` / `[Op:...]` decoration."""
    text = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]", "", str(text)).strip()
    return text.splitlines()[0] if text else text


def record_fault(serialized, keys=(IMAGE_KEY,), need_label=False):
    """Why a serialized SequenceExample cannot give a clip, in words: `(media_id, reason)`.

    Checks, in order: the record parses; it has a label if `need_label`; every feature
    list in `keys` has frames, each of which decodes, all of one size; the lists have
    equal lengths. Eager and per frame: meant for explaining a failure, not for the
    fast path. `reason` is None when no fault is found; `media_id` is "" if unknown.
    """
    try:
        example = tf.train.SequenceExample.FromString(bytes(serialized))
    except Exception as e:  # noqa: BLE001 -- protobuf's DecodeError class depends on the backend.
        return "", f"not a serialized tf.train.SequenceExample ({error_line(e)})"
    context = example.context.feature
    ids = context[MEDIA_ID_KEY].bytes_list.value if MEDIA_ID_KEY in context else []
    media_id = ids[0].decode(errors="replace") if ids else ""
    labels = context[LABEL_INDEX_KEY].int64_list.value if LABEL_INDEX_KEY in context else []
    if need_label and not labels:
        return media_id, f"no label: {LABEL_INDEX_KEY} is missing (training needs one)"
    if need_label and labels[0] < 0:
        return media_id, f"no label: {LABEL_INDEX_KEY} is {labels[0]} (training needs a class id >= 0)"
    lists = example.feature_lists.feature_list
    counts = {}
    for key in keys:
        frames = [f.bytes_list.value[0] if f.bytes_list.value else b"" for f in lists[key].feature] if key in lists else []
        if not frames:
            return media_id, f"no frames under {key!r}"
        sizes = set()
        for i, encoded in enumerate(frames):
            try:
                image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
            except tf.errors.OpError as e:
                return media_id, f"{key} frame {i} of {len(frames)} does not decode: {error_line(e.message)}"
            sizes.add(tuple(image.shape[:2]))
        if len(sizes) > 1:
            return media_id, f"frames under {key!r} differ in size: {sorted(sizes)}"
        counts[key] = len(frames)
    if len(set(counts.values())) > 1:
        return media_id, f"feature lists differ in length: {counts}"
    return media_id, None


# Bytes framing each record in a TFRecord file: length (8), its CRC (4), then the data's CRC (4).
_RECORD_FRAMING = 16


def framed_records(path, size):
    """`(count, end)`: how many records of the TFRecord file `path` (`size` bytes) fit in it, and where they end.

    Walks the records' length headers (8 bytes read per record, no data). TensorFlow's
    reader allocates the length a header declares before reading the record, so a damaged
    header that declares 2**40 bytes kills the process (a segmentation fault, no error):
    the readers here read only the first `count` records, and `end < size` marks the file
    damaged from byte `end` on. The CRCs are left to TensorFlow's reader, which checks a
    header's CRC before it allocates and a record's CRC after reading it; it reads the
    same headers as this walk up to the first damage, so it never meets a length that does
    not fit in the file.
    """
    path, size = os.fsdecode(path), int(size)
    count = end = 0
    opener = tf.io.gfile.GFile if "://" in path else open  # A local file: Python's buffered file is 10x faster.
    with opener(path, "rb") as f:
        while end + _RECORD_FRAMING <= size:
            f.seek(end)
            header = f.read(8)
            if len(header) < 8:  # The file shrank while being read.
                break
            record_end = end + struct.unpack("<Q", header)[0] + _RECORD_FRAMING
            if record_end > size:
                break
            count, end = count + 1, record_end
    return count, end


def _framed_count(shard, size):
    """int64 scalar tensor: `framed_records(shard, size)[0]`, run when a dataset opens the shard."""
    count = tf.numpy_function(lambda p, s: np.int64(framed_records(p, s)[0]), [shard, size], tf.int64, stateful=False)
    return tf.ensure_shape(count, [])


def read_shard(shard, size):
    """The records of one TFRecord file as dicts `{shard, record, serialized, fault}`.

    `record` is the record's index in the file and `fault` is "". Reading stops at a
    corrupt or truncated record; when the records read do not account for all `size`
    bytes of the file, one more element follows whose `fault` says so (and
    `serialized` is empty), so a pipeline can name the damaged file instead of failing
    with a reader error that does not. A record whose length header claims more bytes
    than the file holds is not read (see `framed_records`).

    Args:
      shard: string scalar tensor, the file path.
      size: int64 scalar tensor, the file's length in bytes.
    """
    records = tf.data.TFRecordDataset(shard).take(_framed_count(shard, size)).ignore_errors()
    marked = records.map(lambda s: (s, False)).concatenate(tf.data.Dataset.from_tensors((tf.constant(b""), True)))

    def step(state, item):
        offset, index = state
        serialized, is_end = item
        length = tf.cast(tf.strings.length(serialized), tf.int64) + _RECORD_FRAMING
        return (offset + length, index + 1), (index, serialized, is_end, offset)

    start = (tf.constant(0, tf.int64), tf.constant(0, tf.int64))
    scanned = marked.scan(start, step).filter(lambda i, s, is_end, offset: tf.logical_or(~is_end, offset != size))

    def element(index, serialized, is_end, offset):
        fault = tf.strings.format(
            "damaged file: {} records read, then bytes {}..{} are corrupt or truncated", (index, offset, size)
        )
        return {"shard": shard, "record": index, "serialized": serialized, "fault": tf.where(is_end, fault, "")}

    return scanned.map(element)


def _raise_fault(shard, fault):
    raise _video_io.VideoDecodeError(shard.decode(errors="replace"), fault.decode(errors="replace"))._remember()


def shard_records(files, on_error="raise"):
    """The serialized records of the TFRecord `files` in order, as `tf.data.TFRecordDataset(files)`, but safe on damage.

    A damaged file (a corrupt or truncated record, or a length header claiming more bytes
    than the file holds, on which TensorFlow's reader crashes the process) ends after its
    readable records. Then on_error="raise" stops with `VideoDecodeError(file, "damaged
    file: N records read, then bytes A..B are corrupt or truncated")` (eager iteration
    raises it; inside a `tf.function`, `VideoDecodeError.from_error` recovers it from
    TensorFlow's error), and "skip" goes on with the next file.

    Returns:
      tf.data of string scalars.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"shard_records: on_error={on_error!r} must be one of ('raise', 'skip').")
    files = list(files)
    sizes = np.array([tf.io.gfile.stat(f).length for f in files], np.int64)
    records = tf.data.Dataset.from_tensor_slices((files, sizes)).flat_map(read_shard)

    @tf.autograph.experimental.do_not_convert  # Tensor ops only; Python runs only for a damaged file's fault.
    def checked(r):
        def fail():
            return tf.ensure_shape(tf.numpy_function(_raise_fault, [r["shard"], r["fault"]], tf.string), [])

        return tf.cond(tf.equal(r["fault"], ""), lambda: r["serialized"], fail)

    @tf.autograph.experimental.do_not_convert
    def readable(r):
        return tf.equal(r["fault"], "")

    @tf.autograph.experimental.do_not_convert
    def serialized(r):
        return r["serialized"]

    if on_error == "skip":
        return records.filter(readable).map(serialized)
    from tfvideo.data import _errors  # Here: _errors imports this module.

    return _errors.RaisesVideoDecodeError(records.map(checked))


# Bookkeeping files that `prepare_tfrecords` writes beside its shards (a failures list per
# shard, a report, a manifest, temp files of a killed run); a pattern like `train-*`
# matches them too.
_NOT_SHARDS = (".json", ".jsonl")

# `<prefix>-00003-of-00008<suffix>`: shard 3 of a set of 8 (the names prepare and Beam write).
_SHARD_NAME = re.compile(r"^(?P<prefix>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})(?P<suffix>\.[^/\\]*)?$")


@tf_export("tfvideo.data.ShardSetError")
class ShardSetError(ValueError):
    """Shards that must not be used as one data set, or that a rerun must not reuse.

    Raised when a file pattern matches several shard sets (`-of-N` sets of another N or
    another name, or loose files beside a set), when a set misses shards, and when
    `prepare_tfrecords` finds shards built from other inputs than the ones it is given.
    """


def shard_set_key(path):
    """`(prefix, count, suffix)` of a `<prefix>-NNNNN-of-MMMMM<suffix>` shard name, or None."""
    match = _SHARD_NAME.match(path)
    if not match or int(match["index"]) >= int(match["count"]):
        return None
    return match["prefix"], int(match["count"]), match["suffix"] or ""


def shard_set_paths(key):
    """Every shard path of the set `key` (see `shard_set_key`)."""
    prefix, count, suffix = key
    return [f"{prefix}-{i:05d}-of-{count:05d}{suffix}" for i in range(count)]


def describe_shard_set(key, files):
    """`dir/train-*-of-00004.tfrecord (4 files)`, or the loose files of `key` None."""
    if key is None:
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        return f"{len(files)} file{'s' if len(files) > 1 else ''} not named as shards ({shown})"
    prefix, count, suffix = key
    return f"{prefix}-*-of-{count:05d}{suffix} ({len(files)} file{'s' if len(files) > 1 else ''})"


def group_shard_sets(files):
    """{set key or None (files not named as shards): sorted files} of `files`."""
    sets = {}
    for f in sorted(files):
        sets.setdefault(shard_set_key(f), []).append(f)
    return sets


@tf_export("tfvideo.data.match_shards")
def match_shards(pattern):
    """Sorted TFRecord shard paths matching `pattern`, from exactly one complete shard set.

    Preparation bookkeeping files (`.json`, `.jsonl`, temporaries) are left out. The files
    must form one set: all of them `<prefix>-NNNNN-of-MMMMM<suffix>` with one prefix, M
    and suffix (a pattern may pick some shards of a set, but every shard of the set must
    exist, so a set a killed run left incomplete is not read; a path without wildcards is
    read as named), or none of them named like
    shards. Anything else (an old `-of-00002` set beside a new `-of-00004` one, `train-*`
    and `val-*` shards, loose files beside a set) raises `ShardSetError` naming the sets
    found, because reading them together would silently mix data sets.
    """
    files = [f for f in tf.io.gfile.glob(pattern) if not f.endswith(_NOT_SHARDS) and TMP_MARK not in f]
    if not files:
        return []
    sets = group_shard_sets(files)
    if len(sets) > 1:
        found = "; ".join(describe_shard_set(key, members) for key, members in sets.items())
        raise ShardSetError(f"{pattern!r} matches {len(sets)} shard sets, which would be read as one: {found}. "
                            "Narrow the pattern to one set, or remove the stale one (tfvideo-prepare --overwrite "
                            "removes the old sets of its --name).")
    (key, members), = sets.items()
    if key is not None and any(c in pattern for c in "*?["):  # A file named exactly is read as asked.
        missing = [p for p in shard_set_paths(key) if p not in members and not tf.io.gfile.exists(p)]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise ShardSetError(f"{pattern!r}: shard set {describe_shard_set(key, members)} is incomplete: "
                                f"{key[1] - len(missing)} of {key[1]} shards exist, {missing[0]}{more} missing "
                                "(rerun tfvideo-prepare to finish it).")
    return sorted(members)


@tf.autograph.experimental.do_not_convert
def _plus_one(count, _):
    return count + 1


def _count_and_faults(files):
    """(readable records, [(shard, fault)] sorted by shard) over `files`, in one tf.data pass."""
    sizes = np.array([tf.io.gfile.stat(f).length for f in files], np.int64)
    records = tf.data.Dataset.from_tensor_slices((files, sizes)).interleave(
        read_shard, cycle_length=min(len(files), 8), num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)

    @tf.autograph.experimental.do_not_convert  # Tensor ops only.
    def step(state, element):
        count, faults = state
        good = tf.equal(element["fault"], "")
        line = tf.strings.join([element["shard"], "\t", element["fault"], "\n"])
        return count + tf.cast(good, tf.int64), tf.where(good, faults, tf.strings.join([faults, line]))

    count, faults = records.reduce((tf.constant(0, tf.int64), tf.constant("")), step)
    lines = faults.numpy().decode(errors="replace").splitlines()
    return int(count), sorted(tuple(line.split("\t", 1)) for line in lines)


@tf_export("tfvideo.data.count_records")
def count_records(pattern, on_error="raise", skipped=None):
    """Number of records in the shards `match_shards(pattern)` gives, without parsing them.

    A damaged shard (a corrupt or truncated record; TFRecord files cannot be read past
    one) raises `VideoDecodeError(shard, "damaged file: N records read, then bytes
    A..B are corrupt or truncated")` with on_error="raise"; with "skip" its readable
    records are counted, the damaged part is logged and added to `skipped` (a
    `SkippedVideos`), as `video_dataset(..., on_error="skip")` does while reading.

    Raises:
      FileNotFoundError: nothing matches `pattern`.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"count_records: on_error={on_error!r} must be one of ('raise', 'skip').")
    files = match_shards(pattern)
    if not files:
        raise FileNotFoundError(f"No TFRecord files match {pattern!r}.")
    # The fast path: one plain pass, which fails on damage without saying where. Only for files
    # whose record headers all fit in them: a header claiming 2**40 bytes crashes the reader.
    sizes = {f: tf.io.gfile.stat(f).length for f in files}
    if all(framed_records(f, size)[1] == size for f, size in sizes.items()):
        try:
            return int(tf.data.TFRecordDataset(files).reduce(np.int64(0), _plus_one))
        except tf.errors.OpError:
            pass
    total, faults = _count_and_faults(files)  # A few times slower; only for damaged data: names shards, offsets.
    for shard, fault in faults:
        if on_error == "raise":
            raise _video_io.VideoDecodeError(shard, fault)
        so_far = skipped.add(shard, fault) if skipped is not None else None
        logging.warning("Skipping the damaged part of %s: %s (skipped so far: %s)", shard, fault, so_far or "?")
    return total
