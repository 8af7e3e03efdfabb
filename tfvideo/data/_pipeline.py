"""tf.data video pipelines in named phases: source -> parse -> sample -> decode -> preprocess.

Elements are dicts: `video` float32 [views, T, H, W, C] (normalized), `label` int32,
`media_id` string. Training gives one view; testing gives clips x crops views that the
model averages.
"""

import dataclasses
import functools
import numbers
import threading

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.python.data.ops import dataset_ops, iterator_ops
from tensorflow.python.framework import ops

from tfvideo.api._export import tf_export
from tfvideo.data import _annotations, _tfrecord, _transforms, _video_io

_ON_ERROR = ("raise", "skip")
_CROPS = {1: None, 3: _transforms.three_crop, 10: _transforms.ten_crop}
MODALITIES = ("rgb", "rgb_diff", "flow", "rgb+flow")


@tf_export("tfvideo.data.PreprocessConfig")
@dataclasses.dataclass
class PreprocessConfig:
    """Spatial preprocessing shared by training, evaluation and the exported model.

    Attributes:
      crop_size: side of the square network input.
      resize_short: shorter side before cropping (None keeps the decoded size).
      train_crop: "multi_scale" (TSN), "random_resized" or "center".
      flip: random horizontal flip in training.
      flip_label_map: class id -> mirrored class id, applied when a clip is flipped.
      color_jitter: brightness/contrast jitter strength (0 disables).
      num_crops: test-time crops per clip: 1 (centre), 3 or 10.
      mean, std: per-channel normalization of [0, 1] values.
    """

    crop_size: int = 224
    resize_short: int = 256
    train_crop: str = "multi_scale"
    flip: bool = True
    flip_label_map: tuple = None
    color_jitter: float = 0.0
    num_crops: int = 1
    mean: tuple = _transforms.IMAGENET_MEAN
    std: tuple = _transforms.IMAGENET_STD

    def __post_init__(self):
        _check_number("crop_size", self.crop_size, 1, integer=True)
        if self.resize_short is not None:
            _check_number("resize_short", self.resize_short, 0, integer=True)  # 0 (or None): no resizing.
        _check_number("color_jitter", self.color_jitter, 0.0)
        for field in ("mean", "std"):
            values = tuple(getattr(self, field))
            if len(values) not in (2, 3):  # One value a channel: R, G, B, or optical flow's x, y.
                raise ValueError(f"PreprocessConfig.{field}={values} must have 3 values (R, G, B) or 2 (flow x, y).")
        if any(not v > 0 for v in self.std):
            raise ValueError(f"PreprocessConfig.std={tuple(self.std)} must be > 0.")
        if self.train_crop not in ("multi_scale", "random_resized", "center"):
            raise ValueError(f"PreprocessConfig.train_crop={self.train_crop!r} is not one of multi_scale, random_resized, center.")
        if self.num_crops not in _CROPS:
            raise ValueError(f"PreprocessConfig.num_crops={self.num_crops} must be 1, 3 or 10.")
        if self.flip_label_map is not None:
            self.flip_label_map = tuple(int(v) for v in self.flip_label_map)


def _train_spatial(video, seeds, config):
    """Resize + random crop + flip, clip-consistently: float32 [V, T, S, S, C] and the flip flag.

    The same `seeds` give the same box and flip for any input of the same frame size,
    so RGB and flow of one clip stay aligned.
    """
    if config.resize_short:
        video = _transforms.resize_short_side(video, config.resize_short)
    if config.train_crop == "multi_scale":
        video = _transforms.multi_scale_crop(video, config.crop_size, seeds[0])
    elif config.train_crop == "random_resized":
        video = _transforms.random_resized_crop(video, config.crop_size, seeds[0])
    else:
        video = tf.cast(_transforms.center_crop(video, config.crop_size), tf.float32)
    flipped = tf.constant(False)
    if config.flip:
        flipped = _transforms.flip_decision(seeds[1])
        video = tf.cond(flipped, lambda: tf.reverse(video, axis=[-2]), lambda: video)
    return video, flipped


def _check_number(field, value, minimum, integer=False):
    """ValueError naming the PreprocessConfig field when `value` is not a number >= `minimum`."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not value >= minimum:
        what = "an integer" if integer else "a number"
        raise ValueError(f"PreprocessConfig.{field}={value!r} must be {what} >= {minimum}.")


@tf_export("tfvideo.data.preprocess_train")
def preprocess_train(video, label, seed, config):
    """uint8 [V, T, H, W, C] -> normalized float32 [V, T, S, S, C] with random crop/flip."""
    seeds = tf.random.split(seed, 3)
    video, flipped = _train_spatial(video, seeds, config)
    if config.flip and config.flip_label_map is not None:
        label = tf.where(flipped, tf.gather(tf.constant(config.flip_label_map, tf.int32), label), label)
    if config.color_jitter:
        video = _transforms.color_jitter(video, seeds[2], config.color_jitter, config.color_jitter)
    video = _transforms.normalize(video, config.mean, config.std)
    return tf.ensure_shape(video, [None, None, config.crop_size, config.crop_size, None]), label


def _eval_spatial(video, config):
    """Resize + test views: float [V * num_crops, T, S, S, C] (views clip-major)."""
    if config.resize_short:
        video = _transforms.resize_short_side(video, config.resize_short)
    size = config.crop_size
    crop = _CROPS[config.num_crops]
    if crop is None:
        return tf.cast(_transforms.center_crop(video, size), tf.float32)
    crops = crop(video, size)  # [crops, V, T, S, S, C]
    return tf.reshape(tf.transpose(crops, [1, 0, 2, 3, 4, 5]), tf.concat([[-1], tf.shape(crops)[2:]], 0))


@tf_export("tfvideo.data.preprocess_eval")
def preprocess_eval(video, config):
    """uint8 [V, T, H, W, C] -> float32 [V * num_crops, T, S, S, C]: resize, crops, normalize."""
    video = _transforms.normalize(_eval_spatial(video, config), config.mean, config.std)
    size = config.crop_size
    return tf.ensure_shape(video, [None, None, size, size, None])


def _normalize_flow(flow, flipped):
    """Quantized flow 0..255 -> float32 flow / bound in [-1, 1]; a mirrored clip negates x."""
    flow = tf.cast(flow, tf.float32) / 127.5 - 1.0
    sign = tf.where(flipped, tf.constant([-1.0, 1.0]), tf.constant([1.0, 1.0]))
    return flow * sign


def _preprocess_modalities(element, seed, training, config, modality, snippet_length):
    """Shared-state preprocessing of every stream of one element (DMVR style)."""
    label = element["label"]
    size = config.crop_size
    out = {}
    if training:
        seeds = tf.random.split(seed, 3)
        flipped = tf.constant(False)
        if "frames" in element:
            rgb, flipped = _train_spatial(element["frames"], seeds, config)
            if config.color_jitter:
                rgb = _transforms.color_jitter(rgb, seeds[2], config.color_jitter, config.color_jitter)
        if "flow" in element:
            flow, flipped = _train_spatial(element["flow"], seeds, config)
        if config.flip and config.flip_label_map is not None:
            label = tf.where(flipped, tf.gather(tf.constant(config.flip_label_map, tf.int32), label), label)
    else:
        flipped = tf.constant(False)
        if "frames" in element:
            rgb = _eval_spatial(element["frames"], config)
        if "flow" in element:
            flow = _eval_spatial(element["flow"], config)
    if modality in ("rgb", "rgb+flow"):
        out["video"] = _transforms.normalize(rgb, config.mean, config.std)
    elif modality == "rgb_diff":
        out["video"] = _transforms.rgb_difference(rgb, snippet_length) / 255.0
    if modality in ("flow", "rgb+flow"):
        out["flow" if modality == "rgb+flow" else "video"] = _normalize_flow(flow, flipped)
    out = {key: tf.ensure_shape(value, [None, None, size, size, None]) for key, value in out.items()}
    out["label"] = label
    out["media_id"] = element["media_id"]
    return out


def _element_seeds(seed):
    """A dataset of int32 [2] stateless seeds: reproducible given `seed`, new each epoch."""
    ds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return ds.map(lambda r: tf.stack([tf.cast(r % 2147483647, tf.int32), tf.cast((r // 2147483647) % 2147483647, tf.int32)]))


def _numpy_rng(seed):
    return np.random.default_rng([int(s) & 0x7FFFFFFF for s in np.asarray(seed).reshape(-1)])


def _sample_indices(sampler, num_frames, seed):
    """Runs the (NumPy) sampler inside the graph: int64 [views, T]."""

    def run(n, s):
        return sampler(int(n), _numpy_rng(s))

    out = tf.numpy_function(run, [num_frames, seed], tf.int64, stateful=False)
    return tf.reshape(out, [sampler.num_views, sampler.clip_length])


def _is_tfrecord_source(source):
    return isinstance(source, str) and not source.endswith((".txt", ".csv", ".list")) and (
        "tfrecord" in source or any(c in source for c in "*?[")
    )


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


def _file_source(records, sampler, on_error, skipped, short_side=None):
    """Dataset of elements {frames uint8 [V, T, H, W, 3], label, media_id, ok} from video files.

    With `short_side`, frames are resized while converting to RGB (FFmpeg's bilinear
    scaler), so preprocessing's `resize_short_side` to the same size is skipped.
    """
    paths = [r.path for r in records]
    labels = np.array([r.label for r in records], np.int32)
    ids = [r.media_id for r in records]

    def load(path, seed):
        path = path.decode()
        try:
            # One pass over the packets indexes the file for the sampler and the read. One
            # decoding thread per clip: tf.data already decodes clips in parallel.
            with _video_io.VideoReader(path, num_threads=1) as video:
                indices = sampler(video.num_frames, _numpy_rng(seed))
                return video.read(indices, short_side=short_side), True
        except _video_io.VideoDecodeError as e:
            if on_error == "raise":
                raise e._remember()  # noqa: B904 -- the same error, kept for VideoDecodeError.from_error.
            total = skipped.add(e.path, e.reason) if skipped is not None else None
            logging.warning("Skipping unreadable video %s (skipped so far: %s)", e, total if total else "?")
            return np.zeros((sampler.num_views, sampler.clip_length, 1, 1, 3), np.uint8), False

    def decode(element, seed):
        path, label, media_id = element
        frames, ok = tf.numpy_function(load, [path, seed], [tf.uint8, tf.bool], stateful=False)
        frames = tf.ensure_shape(frames, [sampler.num_views, sampler.clip_length, None, None, 3])
        return {"frames": frames, "label": label, "media_id": media_id, "ok": tf.ensure_shape(ok, [])}

    return tf.data.Dataset.from_tensor_slices((paths, labels, ids)), decode


def _gather_decode(encoded, indices, channels):
    """Decodes only the sampled frames: `encoded` string [N] (JPEG/PNG) or uint8 [N, H, W, C].

    Returns uint8 [V, T, H, W, channels] for int64 `indices` [V, T].
    """
    selected = tf.gather(encoded, tf.reshape(indices, [-1]))
    if encoded.dtype == tf.string:
        frames = tf.map_fn(
            lambda b: tf.ensure_shape(tf.io.decode_image(b, channels=3, expand_animations=False), [None, None, 3]),
            selected,
            fn_output_signature=tf.uint8,
        )
    else:
        frames = selected
    frames = frames[..., :channels]
    shape = tf.concat([tf.shape(indices), tf.shape(frames)[1:]], 0)
    return tf.reshape(frames, shape)


def _encoded_decoder(sampler, modality):
    """decode(parsed, seed) for sources holding encoded frames (TFRecord, TFDS)."""
    wants_rgb = modality != "flow"
    wants_flow = "flow" in modality

    def decode(parsed, seed):
        count = tf.shape(parsed["flow" if not wants_rgb else "frames"])[0]
        indices = _sample_indices(sampler, count, seed)
        out = {"label": parsed["label"], "media_id": parsed["media_id"], "ok": tf.constant(True)}
        if wants_rgb:
            out["frames"] = _gather_decode(parsed["frames"], indices, 3)
        if wants_flow:
            out["flow"] = _gather_decode(parsed["flow"], indices, 2)
        return out

    return decode


def _tfrecord_source(pattern, sampler, training, seed, modality, deterministic):
    """Records of the shards matching `pattern` and decode(record, seed) -> element.

    Records are `read_shard` dicts (shard, record index, serialized bytes, fault); parsing
    happens in `decode`, so a record that does not parse fails there like one whose JPEG
    frames do not decode, and the error guard can name it.
    """
    files = _tfrecord.match_shards(pattern)
    if not files:
        raise FileNotFoundError(f"No TFRecord files match {pattern!r}.")
    sizes = np.array([tf.io.gfile.stat(f).length for f in files], np.int64)
    ds = tf.data.Dataset.from_tensor_slices((files, sizes))
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
        _tfrecord.read_shard, cycle_length=min(len(files), 8), num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
    )
    with_flow = "flow" in modality
    decode_parsed = _encoded_decoder(sampler, modality)

    def decode(record, seed):
        checks = [tf.debugging.assert_equal(record["fault"], "", message="damaged shard")]
        with tf.control_dependencies(checks):
            parsed = _tfrecord.parse_sequence_example(tf.identity(record["serialized"]), with_flow=with_flow)
        if training:
            checks = [tf.debugging.assert_non_negative(parsed["label"], message="record has no label")]
            with tf.control_dependencies(checks):
                parsed["label"] = tf.identity(parsed["label"])
        return decode_parsed(parsed, seed)

    return ds, decode


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


def _record_explainer(decode, sampler, modality, training, on_error, skipped):
    """explain(record, seed) for a TFRecord record whose `decode` failed.

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
        out = {"label": tf.constant(-1, tf.int32), "media_id": tf.ensure_shape(media_id, []), "ok": tf.constant(False)}
        placeholder = tf.zeros([sampler.num_views, sampler.clip_length, 1, 1], tf.uint8)
        if modality != "flow":
            out["frames"] = tf.stack([placeholder] * 3, -1)
        if "flow" in modality:
            out["flow"] = tf.stack([placeholder] * 2, -1)
        return out

    return explain


def _guarded_decode(ds, decode, explain, num_parallel_calls, deterministic):
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
    """An eager dataset iterator that raises `VideoDecodeError` instead of the TF error carrying it."""

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


class _RaisesVideoDecodeError(dataset_ops.UnaryUnchangedStructureDataset):
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
        if isinstance(out, tf.data.Dataset) and not isinstance(out, _RaisesVideoDecodeError):
            out = _RaisesVideoDecodeError(out)
        return out

    return transformed


for _name in ("apply", "batch", "bucket_by_sequence_length", "cache", "concatenate", "enumerate", "filter", "flat_map",
              "group_by_window", "ignore_errors", "interleave", "map", "padded_batch", "prefetch", "ragged_batch",
              "rebatch", "rejection_resample", "repeat", "scan", "shard", "shuffle", "skip", "snapshot", "sparse_batch",
              "take", "take_while", "unbatch", "unique", "with_options"):
    setattr(_RaisesVideoDecodeError, _name, _keeps_decode_errors(getattr(tf.data.Dataset, _name)))


def _check_modality(modality, preprocess):
    if modality not in MODALITIES:
        raise ValueError(f"modality={modality!r} must be one of {MODALITIES}.")
    if preprocess is False and modality == "rgb_diff":
        raise ValueError("modality='rgb_diff' needs preprocessing (preprocess=False returns raw frames).")


def _finish(
    ds, decode, sampler, preprocess, training, seed, modality, batch_size, repeat, drop_remainder, num_parallel_calls,
    explain=None, deterministic=True,
):
    """The shared tail: seeds -> decode (guarded by `explain` if given) -> drop failures -> preprocess -> batch."""
    ds = tf.data.Dataset.zip((ds, _element_seeds(seed)))
    if explain is None:
        ds = ds.map(lambda element, s: (decode(element, s), s), num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    else:
        ds = _guarded_decode(ds, decode, explain, num_parallel_calls, deterministic)
    ds = ds.filter(lambda element, s: element["ok"])
    snippet_length = getattr(sampler, "new_length", None)

    def preprocess_element(element, s):
        if preprocess is False:
            out = {"video": element["frames"] if "frames" in element else element["flow"]}
            if modality == "rgb+flow":
                out["flow"] = element["flow"]
            return {**out, "label": element["label"], "media_id": element["media_id"]}
        return _preprocess_modalities(element, s, training, preprocess, modality, snippet_length)

    ds = ds.map(preprocess_element, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    if repeat:
        ds = ds.repeat()
    if batch_size:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return _RaisesVideoDecodeError(ds.prefetch(tf.data.AUTOTUNE))


@tf_export("tfvideo.data.video_dataset")
def video_dataset(
    source,
    sampler,
    preprocess=None,
    batch_size=None,
    training=None,
    label_map=None,
    video_root=None,
    seed=None,
    shuffle_buffer=512,
    on_error="raise",
    repeat=False,
    drop_remainder=False,
    num_parallel_calls=tf.data.AUTOTUNE,
    modality="rgb",
    skipped=None,
):
    """A tf.data pipeline of video clips.

    Args:
      source: an annotation list (`.txt`/`.csv`, decoded with PyAV), a TFRecord file
        pattern of SequenceExamples, or a list of `VideoRecord`.
      sampler: a `SegmentSampler` / `DenseSampler`; its `training` flag picks random or
        deterministic sampling.
      preprocess: `PreprocessConfig` (default: its defaults); `False` returns the decoded
        uint8 frames untouched ([V, T, H, W, C], no batching across sizes).
      batch_size: batch the elements (None: unbatched).
      training: random crops/flips and shuffling; defaults to `sampler.training`.
      label_map: class names (list or file) for lists with class-name labels.
      seed: makes sampling, augmentation and shuffling reproducible. Unseeded training
        pipelines do not keep element order (`deterministic=False`), which is faster.
      shuffle_buffer: TFRecord sources in training: records held for shuffling, after the
        shard order is shuffled and up to 8 shards are interleaved. A record is a whole
        serialized video (its JPEG frames), so memory is about buffer x record size, e.g.
        512 x 4 MB = 2 GB for 10 s videos at 256 px; lower it on small machines. Lists of
        video files shuffle the whole list (paths only) and ignore it.
      on_error: "raise" (default) stops with a `VideoDecodeError` naming the file (its
        `path` and `reason`; see the class for iteration inside a `tf.function`); "skip"
        logs the file and reason, drops it and records it in `skipped`. For TFRecords the bad
        input is a record that does not parse, has no frames, has a sampled frame that
        does not decode, or has no label in training, or a damaged (truncated/corrupt)
        shard file; the error and `skipped` name the shard and, for a record, its index
        and media id: `(shard, "record 3 (media_id 'x'): <reason>")`. Good records take
        no Python on the fast path. Without a label a record gets label -1 in
        evaluation.
      modality: "rgb" (default); "rgb_diff" (TSN RGB difference within each snippet,
        values / 255); "flow" (TFRecords only: x/y flow, 2 channels, flow / bound in
        [-1, 1]); "rgb+flow" (two streams from the same frame indices and the same crop
        and flip: `video` is RGB, `flow` is flow).
      skipped: a `SkippedVideos` that collects what `on_error="skip"` dropped.

    Returns:
      A dataset of dicts: `video` float32 [V, T, S, S, C], `label` int32, `media_id`
      (and `flow` [V, T, S, S, 2] for "rgb+flow").
    """
    if on_error not in _ON_ERROR:
        raise ValueError(f"video_dataset: on_error={on_error!r} must be one of {_ON_ERROR}.")
    _check_modality(modality, preprocess)
    if preprocess is None:
        preprocess = PreprocessConfig()
    training = sampler.training if training is None else training
    # Unseeded training has no order to keep: let fast elements overtake slow ones.
    deterministic = seed is not None or not training
    if _is_tfrecord_source(source):
        ds, decode = _tfrecord_source(source, sampler, training, seed, modality, deterministic)
        explain = _record_explainer(decode, sampler, modality, training, on_error, skipped)
        if training:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return _finish(ds, decode, sampler, preprocess, training, seed, modality, batch_size, repeat, drop_remainder,
                       num_parallel_calls, explain, deterministic)
    if "flow" in modality:
        raise ValueError(f"modality={modality!r} reads flow frames from TFRecords made with flow; {source!r} is a video list.")
    records = source if isinstance(source, (list, tuple)) else _annotations.read_annotations(source, video_root, label_map)
    # Training resizes in the decoder (within a level or two of TensorFlow's resize, much
    # cheaper); evaluation keeps TensorFlow's, so it equals the exported model's transform.
    short_side = (preprocess.resize_short or None) if preprocess and training else None
    ds, decode = _file_source(records, sampler, on_error, skipped, short_side=short_side)
    if training:
        ds = ds.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    return _finish(ds, decode, sampler, preprocess, training, seed, modality, batch_size, repeat, drop_remainder,
                   num_parallel_calls, deterministic=deterministic)


@tf_export("tfvideo.data.tfds_dataset")
def tfds_dataset(
    name_or_builder,
    split,
    sampler,
    preprocess=None,
    batch_size=None,
    training=None,
    seed=None,
    data_dir=None,
    video_key="video",
    label_key="label",
    shuffle_buffer=64,
    repeat=False,
    drop_remainder=False,
    num_parallel_calls=tf.data.AUTOTUNE,
    on_error="raise",
    skipped=None,
):
    """A `tensorflow_datasets` video dataset, prepared locally, as `video_dataset` elements.

    Frames stay encoded until sampled (TFDS `SkipDecoding`), so only the sampled frames
    are decoded. Nothing is downloaded: the dataset must already be prepared in
    `data_dir` (e.g. `ucf101`, whose features are `video` uint8 [T, H, W, 3] and `label`).

    Args:
      name_or_builder: a registered dataset name (e.g. "ucf101/ucf101_1_256") or a
        `tfds.core.DatasetBuilder`.
      split: TFDS split, e.g. "train" or "test[:10%]".
      video_key, label_key: feature names of the frames and the class id.
      on_error, skipped: as in `video_dataset`; an example whose frames do not decode (or
        that has none) is named by dataset, split and TFDS id.
      Other arguments as in `video_dataset`.

    Returns:
      A dataset of dicts: `video` float32 [V, T, S, S, 3] (uint8 frames with
      `preprocess=False`), `label` int32, `media_id` (TFDS id of the example).
    """
    import tensorflow_datasets as tfds  # Optional import: only this source needs it.

    if on_error not in _ON_ERROR:
        raise ValueError(f"tfds_dataset: on_error={on_error!r} must be one of {_ON_ERROR}.")
    if preprocess is None:
        preprocess = PreprocessConfig()
    training = sampler.training if training is None else training
    builder = tfds.builder(name_or_builder, data_dir=data_dir) if isinstance(name_or_builder, str) else name_or_builder
    if video_key not in builder.info.features:
        raise KeyError(f"tfds_dataset: {builder.info.full_name} has no feature {video_key!r}; features: {list(builder.info.features)}")
    ds = builder.as_dataset(
        split=split,
        shuffle_files=training,
        decoders={video_key: tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(add_tfds_id=True, shuffle_seed=seed),
    )
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def parse(example):
        return {
            "frames": example[video_key],
            "label": tf.cast(example[label_key], tf.int32) if label_key in example else tf.constant(-1, tf.int32),
            "media_id": example["tfds_id"],
        }

    ds = ds.map(parse)
    decode = _encoded_decoder(sampler, "rgb")
    source = f"tfds {builder.info.full_name} split {split!r}"
    return _finish(ds, decode, sampler, preprocess, training, seed, "rgb", batch_size, repeat, drop_remainder,
                   num_parallel_calls, explain=_example_explainer(decode, sampler, source, on_error, skipped))


def _example_explainer(decode, sampler, source, on_error, skipped):
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


@tf_export("tfvideo.data.to_supervised")
def to_supervised(dataset):
    """Maps dict elements to `(video, label)` pairs for `keras.Model.fit`."""
    return dataset.map(lambda e: (e["video"], e["label"]), num_parallel_calls=tf.data.AUTOTUNE)

