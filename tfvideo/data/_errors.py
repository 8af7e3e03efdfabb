"""Phase "errors": bad inputs named, raised as `VideoDecodeError` or skipped and counted.

A bad video file, record or example fails inside a TensorFlow op; this module explains
it (which file, shard, record index, media id, and why), raises or skips it per
`on_error`, collects skipped inputs in `SkippedVideos`, and wraps the assembled dataset
so that eager iteration raises the library's `VideoDecodeError` instead of TensorFlow's
error carrying it. Good elements run no Python here.
"""

import functools
import threading

import tensorflow as tf
from absl import logging
from tensorflow.python.data.ops import dataset_ops, iterator_ops
from tensorflow.python.framework import ops

from tfvideo.api._export import tf_export
from tfvideo.data import _shutdown, _tfrecord, _video_io

ON_ERROR = ("raise", "skip")


def check_on_error(caller, on_error):
    """ValueError naming `caller` when `on_error` is not "raise" or "skip"."""
    if on_error not in ON_ERROR:
        raise ValueError(f"{caller}: on_error={on_error!r} must be one of {ON_ERROR}.")


@tf_export("tfvideo.data.SkippedVideos")
class SkippedVideos:
    """What a pipeline with `on_error="skip"` dropped: one `(path, reason)` per skipped element.

    Pass an instance as `video_dataset(..., skipped=...)`; it fills while the dataset is
    iterated (a bad file read again in a later epoch counts again). Thread-safe.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._items = []

    def add(self, path, reason):
        with self._lock:
            self._items.append((str(path), str(reason)))
            return len(self._items)

    @property
    def count(self):
        with self._lock:
            return len(self._items)

    @property
    def items(self):
        with self._lock:
            return list(self._items)

    def __repr__(self):
        return f"SkippedVideos(count={self.count})"



def report_unreadable(error, on_error, skipped):
    """Raises the `VideoDecodeError` of an unreadable video file, or logs it and counts it in `skipped`."""
    if on_error == "raise":
        raise error._remember()  # The same error, kept for VideoDecodeError.from_error.
    total = skipped.add(error.path, error.reason) if skipped is not None else None
    logging.warning("Skipping unreadable video %s (skipped so far: %s)", error, total if total else "?")


def _decode_error(decode, element, seed):
    """The first line of the error `decode(element, seed)` raises when run again eagerly."""
    try:
        decode(element, seed)
        return "decoding failed once and succeeded when retried"
    except (tf.errors.OpError, ValueError) as e:
        return _tfrecord.error_line(getattr(e, "message", e))


def _report_bad(source, reason, on_error, skipped):
    """Raises a `VideoDecodeError` (on_error="raise"), or logs the bad element and counts it in `skipped`."""
    if on_error == "raise":
        raise _video_io.VideoDecodeError(source, reason)._remember()
    total = skipped.add(source, reason) if skipped is not None else None
    logging.warning("Skipping %s: %s (skipped so far: %s)", source, reason, total if total else "?")


def record_explainer(decode, sampler, *, modality, training, on_error, skipped, multi_label=None):
    """explain(record, seed) for a TFRecord record whose `decode` failed.

    `multi_label` = C classes: the placeholder's label is a multi-hot [C] of zeros, as the
    decoded elements' are.

    Runs Python, but only for failing records: finds the reason (`record_fault`, else the
    error `decode` raises when run again eagerly), then raises a `VideoDecodeError` naming
    the shard, the record index and its media id (on_error="raise"), or logs it, adds it
    to `skipped` and returns a placeholder element with ok=False (on_error="skip").
    """
    keys = ([_tfrecord.IMAGE_KEY] if modality != "flow" else []) + ([_tfrecord.FLOW_KEY] if "flow" in modality else [])

    def why(shard, index, serialized, fault, seed):
        shard, fault = shard.numpy().decode(), fault.numpy().decode()
        if fault:
            media_id, reason = "", fault
        else:
            media_id, reason = _tfrecord.record_fault(serialized.numpy(), keys, need_label=training)
            if reason is None:
                reason = _decode_error(decode, {"shard": shard, "record": index, "serialized": serialized,
                                                "fault": fault}, seed)
            reason = f"record {int(index)} (media_id {media_id!r}): {reason}"
        _report_bad(shard, reason, on_error, skipped)
        return media_id

    def explain(record, seed):
        media_id = tf.py_function(why, [record["shard"], record["record"], record["serialized"], record["fault"], seed], tf.string)
        label = tf.zeros([multi_label], tf.float32) if multi_label else tf.constant(-1, tf.int32)
        out = {"label": label, "media_id": tf.ensure_shape(media_id, []), "ok": tf.constant(False)}
        placeholder = tf.zeros([sampler.num_views, sampler.clip_length, 1, 1], tf.uint8)
        if modality != "flow":
            out["frames"] = tf.stack([placeholder] * 3, -1)
        if "flow" in modality:
            out["flow"] = tf.stack([placeholder] * 2, -1)
        return out

    return explain


def example_explainer(decode, sampler, *, source, on_error, skipped):
    """explain(element, seed) for a parsed example of `source` whose `decode` failed.

    Python runs only for failing examples: `decode` is run again eagerly for its error, which
    is raised as a `VideoDecodeError` naming `source` and the example's media id
    (on_error="raise"), or logged and added to `skipped` (on_error="skip").
    """

    def why(frames, label, media_id, seed):
        name = media_id.numpy().decode(errors="replace")
        if int(tf.size(frames)) == 0:
            reason = "the video has no frames"
        else:
            reason = _decode_error(decode, {"frames": frames, "label": label, "media_id": media_id}, seed)
        _report_bad(source, f"example {name!r}: {reason}", on_error, skipped)
        return media_id

    def explain(element, seed):
        media_id = tf.py_function(why, [element["frames"], element["label"], element["media_id"], seed], tf.string)
        return {"frames": tf.zeros([sampler.num_views, sampler.clip_length, 1, 1, 3], tf.uint8),
                "label": tf.constant(-1, tf.int32), "media_id": tf.ensure_shape(media_id, []), "ok": tf.constant(False)}

    return explain


def guarded_decode(ds, decode, explain, *, num_parallel_calls, deterministic):
    """`ds.map(decode)`, except that an element whose decoding fails becomes `explain(element)`.

    Each element is decoded in a one-element dataset that ignores errors and is followed
    by the explanation: the first of the two is kept. On good data `explain` never runs
    (no Python per element), and elements are still decoded in parallel.
    """

    def one(element, seed):
        single = tf.data.Dataset.from_tensors((element, seed))
        decoded = single.map(lambda e, s: (decode(e, s), s)).ignore_errors()
        return decoded.concatenate(single.map(lambda e, s: (explain(e, s), s))).take(1)

    if num_parallel_calls is None:
        return ds.interleave(one, cycle_length=1)
    cycle = tf.data.AUTOTUNE if num_parallel_calls == tf.data.AUTOTUNE else num_parallel_calls
    return ds.interleave(one, cycle_length=cycle, block_length=1, num_parallel_calls=num_parallel_calls, deterministic=deterministic)


class _DecodeErrorIterator(iterator_ops.OwnedIterator):
    """An eager dataset iterator that raises `VideoDecodeError` instead of the TF error carrying it.

    Released at interpreter exit if still alive (`_shutdown`: its pipeline runs Python).
    """

    def __init__(self, dataset):
        super().__init__(dataset)
        _shutdown.track(self)

    def _translated(self, fetch):
        try:
            return fetch()
        except tf.errors.OpError as e:
            found = _video_io.VideoDecodeError.from_error(e)
            if found is None:
                raise
            raise found from e

    def __next__(self):
        return self._translated(super().__next__)

    def get_next(self):
        return self._translated(super().get_next)


class RaisesVideoDecodeError(dataset_ops.UnaryUnchangedStructureDataset):
    """`dataset` unchanged (same graph), except that iterating it eagerly raises `VideoDecodeError`.

    A bad video or record fails inside a TensorFlow op, which can only raise TensorFlow's
    own error (its message holds the `VideoDecodeError` text); the iterator turns it back.
    Datasets made from this one by the usual transformations (map, batch, take, ...) keep
    the behaviour. Inside a `tf.function` (e.g. `keras.Model.fit`) TensorFlow raises its
    error; `VideoDecodeError.from_error` recovers the library's from it.
    """

    def __init__(self, dataset):
        super().__init__(dataset, dataset._variant_tensor)

    def __iter__(self):
        if not tf.executing_eagerly():
            return super().__iter__()
        with ops.colocate_with(self._variant_tensor):  # As tf.data.Dataset.__iter__ does.
            return _DecodeErrorIterator(self)


def _keeps_decode_errors(method):
    @functools.wraps(method)
    def transformed(self, *args, **kwargs):
        out = method(self, *args, **kwargs)
        if isinstance(out, tf.data.Dataset) and not isinstance(out, RaisesVideoDecodeError):
            out = RaisesVideoDecodeError(out)
        return out

    return transformed


for _name in ("apply", "batch", "bucket_by_sequence_length", "cache", "concatenate", "enumerate", "filter", "flat_map",
              "group_by_window", "ignore_errors", "interleave", "map", "padded_batch", "prefetch", "ragged_batch",
              "rebatch", "rejection_resample", "repeat", "scan", "shard", "shuffle", "skip", "snapshot", "sparse_batch",
              "take", "take_while", "unbatch", "unique", "with_options"):
    setattr(RaisesVideoDecodeError, _name, _keeps_decode_errors(getattr(tf.data.Dataset, _name)))
