"""tf.data video pipelines in named phases: source -> parse -> sample -> decode -> preprocess.

Elements are dicts: `video` float32 [views, T, H, W, C] (normalized), `label` int32,
`media_id` string. Training gives one view; testing gives clips x crops views that the
model averages.
"""

import dataclasses

import numpy as np
import tensorflow as tf
from absl import logging

from tfvideo.api._export import tf_export
from tfvideo.data import _annotations, _samplers, _tfrecord, _transforms, _video_io

_ON_ERROR = ("raise", "skip")
_CROPS = {1: None, 3: _transforms.three_crop, 10: _transforms.ten_crop}


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
        if self.train_crop not in ("multi_scale", "random_resized", "center"):
            raise ValueError(f"PreprocessConfig.train_crop={self.train_crop!r} is not one of multi_scale, random_resized, center.")
        if self.num_crops not in _CROPS:
            raise ValueError(f"PreprocessConfig.num_crops={self.num_crops} must be 1, 3 or 10.")
        if self.flip_label_map is not None:
            self.flip_label_map = tuple(int(v) for v in self.flip_label_map)


@tf_export("tfvideo.data.preprocess_train")
def preprocess_train(video, label, seed, config):
    """uint8 [V, T, H, W, C] -> normalized float32 [V, T, S, S, C] with random crop/flip."""
    seeds = tf.random.split(seed, 3)
    if config.resize_short:
        video = _transforms.resize_short_side(video, config.resize_short)
    if config.train_crop == "multi_scale":
        video = _transforms.multi_scale_crop(video, config.crop_size, seeds[0])
    elif config.train_crop == "random_resized":
        video = _transforms.random_resized_crop(video, config.crop_size, seeds[0])
    else:
        video = _transforms.center_crop(video, config.crop_size)
    if config.flip:
        video, label = _transforms.random_flip(video, seeds[1], label, config.flip_label_map)
    if config.color_jitter:
        video = _transforms.color_jitter(video, seeds[2], config.color_jitter, config.color_jitter)
    video = _transforms.normalize(video, config.mean, config.std)
    return tf.ensure_shape(video, [None, None, config.crop_size, config.crop_size, None]), label


@tf_export("tfvideo.data.preprocess_eval")
def preprocess_eval(video, config):
    """uint8 [V, T, H, W, C] -> float32 [V * num_crops, T, S, S, C]: resize, crops, normalize."""
    if config.resize_short:
        video = _transforms.resize_short_side(video, config.resize_short)
    size = config.crop_size
    crop = _CROPS[config.num_crops]
    if crop is None:
        video = _transforms.center_crop(video, size)
    else:
        crops = crop(video, size)  # [crops, V, T, S, S, C]
        video = tf.reshape(tf.transpose(crops, [1, 0, 2, 3, 4, 5]), tf.concat([[-1], tf.shape(crops)[2:]], 0))
    video = _transforms.normalize(video, config.mean, config.std)
    return tf.ensure_shape(video, [None, None, size, size, None])


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


def _file_source(records, sampler, on_error):
    """Dataset of (uint8 [V, T, H, W, 3] frames, label, media_id, ok) from video files."""
    paths = [r.path for r in records]
    labels = np.array([r.label for r in records], np.int32)
    ids = [r.media_id for r in records]

    def load(path, seed):
        path = path.decode()
        try:
            info = _video_io.probe_video(path)
            indices = sampler(info.num_frames, _numpy_rng(seed))
            return _video_io.read_frames(path, indices), True
        except _video_io.VideoDecodeError as e:
            if on_error == "raise":
                raise
            logging.warning("Skipping unreadable video %s", e)
            return np.zeros((sampler.num_views, sampler.clip_length, 1, 1, 3), np.uint8), False

    def decode(element, seed):
        path, label, media_id = element
        frames, ok = tf.numpy_function(load, [path, seed], [tf.uint8, tf.bool], stateful=False)
        frames = tf.ensure_shape(frames, [sampler.num_views, sampler.clip_length, None, None, 3])
        return frames, label, media_id, tf.ensure_shape(ok, [])

    return tf.data.Dataset.from_tensor_slices((paths, labels, ids)), decode


def _tfrecord_source(pattern, sampler, training, seed):
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No TFRecord files match {pattern!r}.")
    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def decode(serialized, el_seed):
        parsed = _tfrecord.parse_sequence_example(serialized)
        indices = _sample_indices(sampler, tf.shape(parsed["frames"])[0], el_seed)
        selected = tf.gather(parsed["frames"], tf.reshape(indices, [-1]))
        frames = tf.map_fn(lambda b: tf.io.decode_jpeg(b, channels=3), selected, fn_output_signature=tf.uint8)
        shape = tf.concat([[sampler.num_views, sampler.clip_length], tf.shape(frames)[1:]], 0)
        return tf.reshape(frames, shape), parsed["label"], parsed["media_id"], tf.constant(True)

    return ds, decode


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
):
    """A tf.data pipeline of video clips.

    Args:
      source: an annotation list (`.txt`/`.csv`, decoded with PyAV), a TFRecord file
        pattern of SequenceExamples, or a list of `VideoRecord`.
      sampler: a `SegmentSampler` / `DenseSampler`; its `training` flag picks random or
        deterministic sampling.
      preprocess: `PreprocessConfig` (default: its defaults).
      batch_size: batch the elements (None: unbatched).
      training: random crops/flips and shuffling; defaults to `sampler.training`.
      label_map: class names (list or file) for lists with class-name labels.
      seed: makes sampling, augmentation and shuffling reproducible.
      on_error: "raise" (default) stops naming the file; "skip" logs and drops it.

    Returns:
      A dataset of dicts: `video` float32 [V, T, S, S, 3], `label` int32, `media_id`.
    """
    if on_error not in _ON_ERROR:
        raise ValueError(f"video_dataset: on_error={on_error!r} must be one of {_ON_ERROR}.")
    preprocess = preprocess or PreprocessConfig()
    training = sampler.training if training is None else training
    if _is_tfrecord_source(source):
        ds, decode = _tfrecord_source(source, sampler, training, seed)
    else:
        records = source if isinstance(source, (list, tuple)) else _annotations.read_annotations(source, video_root, label_map)
        ds, decode = _file_source(records, sampler, on_error)
        if training:
            ds = ds.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    if training and _is_tfrecord_source(source):
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, _element_seeds(seed)))
    ds = ds.map(lambda element, s: decode(element, s) + (s,), num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.filter(lambda frames, label, media_id, ok, s: ok)

    def preprocess_element(frames, label, media_id, ok, s):
        if training:
            video, label = preprocess_train(frames, label, s, preprocess)
        else:
            video = preprocess_eval(frames, preprocess)
        return {"video": video, "label": label, "media_id": media_id}

    ds = ds.map(preprocess_element, num_parallel_calls=num_parallel_calls, deterministic=True)
    if repeat:
        ds = ds.repeat()
    if batch_size:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


@tf_export("tfvideo.data.to_supervised")
def to_supervised(dataset):
    """Maps dict elements to `(video, label)` pairs for `keras.Model.fit`."""
    return dataset.map(lambda e: (e["video"], e["label"]), num_parallel_calls=tf.data.AUTOTUNE)

