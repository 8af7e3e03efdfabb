"""The recognition task: builds inputs, the model (remat, partial BN, sync BN), the
optimizer with its learning-rate schedule, and the loss, from an `ExperimentConfig`."""

import dataclasses
import glob
import math
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfvideo import data as tfv_data
from tfvideo import feature_columns
from tfvideo import models as tfv_models
from tfvideo.data import _formats, _samplers, _tfrecord
from tfvideo.feature_columns import _video
from trainers import _remat

OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "step", "cosine")


@keras.saving.register_keras_serializable(package="tfvideo")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up then constant, step (x `decay_rate` at each boundary) or cosine decay.

    Boundaries and warm-up are in optimizer steps.
    """

    def __init__(self, base_lr, total_steps, kind="constant", warmup_steps=0, boundaries=(), decay_rate=0.1):
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.kind = kind
        self.warmup_steps = int(warmup_steps)
        self.boundaries = [int(b) for b in boundaries]
        self.decay_rate = float(decay_rate)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        lr = keras.ops.convert_to_tensor(self.base_lr, "float32")
        if self.kind == "step":
            for b in self.boundaries:
                lr = keras.ops.where(step >= b, lr * self.decay_rate, lr)
        elif self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = keras.ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            lr = lr * 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
        if self.warmup_steps > 0:
            lr = lr * keras.ops.minimum((step + 1.0) / self.warmup_steps, 1.0)
        return lr

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps, "kind": self.kind,
                "warmup_steps": self.warmup_steps, "boundaries": self.boundaries, "decay_rate": self.decay_rate}


def data_exists(source):
    """True when an annotation list exists or a TFRecord pattern matches files."""
    source = _formats.source_path(source)
    if any(c in source for c in "*?["):
        return bool(glob.glob(source))
    return tf.io.gfile.exists(source)


def count_examples(source, label_map=None, on_error="raise"):
    """Number of videos in an annotation list or TFRecord files (one pass, no decoding).

    A damaged shard raises `VideoDecodeError` naming it and the byte offset, or with
    on_error="skip" counts only its readable records (see `tfvideo.data.count_records`).
    """
    if _formats.parse_source(source) is not None:
        return len(tfv_data.read_dataset(source, label_map=label_map).records)
    if source.endswith((".txt", ".csv", ".list")):
        return len(tfv_data.read_annotations(source, label_map=label_map))
    return tfv_data.count_records(source, on_error=on_error)


_MODALITY_CHANNELS = {"rgb": 3, "rgb_diff": 3, "flow": 2, "rgb+flow": 3}


def input_shape(config, views=1):
    """[None, views, T, S, S, C] of the model input for `config` (C: 3 for RGB, 2 for flow)."""
    sampler = config.build_sampler(training=False)
    size = config.clip_spec.crop_size
    return (None, views, sampler.clip_length, size, size, _MODALITY_CHANNELS[config.clip_spec.modality])


def check_model_channels(config, model):
    """ValueError saying what differs when the clip's channels are not those the model reads."""
    want = getattr(model, "input_channels", None)
    modality = config.clip_spec.modality
    have = _MODALITY_CHANNELS[modality]
    if want is not None and int(want) != have:
        fix = "flow" if int(want) == 2 else "rgb"
        raise ValueError(f"model {config.model!r} reads {want}-channel frames (input_channels={want}) but the "
                         f"run's clip (config.json 'clip') has modality {modality!r}, {have}-channel frames; "
                         f"train with --modality={fix}.")


SPEC_INPUT_FLAGS = ("num_segments", "crop_size", "resize_short")


def _spec_name(spec):
    return f"--feature_spec={spec}" if isinstance(spec, (str, os.PathLike)) else "the config's feature_spec"


def feature_layer(spec):
    """The `tfvideo.feature_columns.FeatureLayer` of a feature spec, or None.

    `spec`: a --feature_spec JSON path, or the spec dict that train records in config.json.
    """
    if not spec:
        return None
    return feature_columns.FeatureLayer.from_spec(spec)


def spec_video_column(layer, spec):
    """The one RGB video column of a recognizer's FeatureLayer; ValueError naming the column otherwise.

    A preset recognizer takes one clip `[B, V, T, S, S, 3]`, so its spec holds exactly one
    `video_column` (rgb) and nothing else: tabular columns would need a model that takes
    them (build one on `FeatureLayer.keras_inputs()` in Python).
    """
    where = _spec_name(spec)
    videos = []
    for column in layer.columns:
        if not isinstance(column, _video.VideoColumn):
            raise ValueError(
                f"{where}: column {column.name!r} ({type(column).__name__}) is not a video column; a preset "
                "recognizer takes only the clip of one video_column (tabular context needs a model built on "
                "FeatureLayer.keras_inputs(), see docs/notes/feature_columns.md).")
        videos.append(column)
    if len(videos) != 1:
        raise ValueError(f"{where}: needs exactly one video_column, found {[c.name for c in videos]}.")
    (column,) = videos
    if column.channels != 3:
        raise ValueError(f"{where}: video column {column.name!r} has modality {column.modality!r}; "
                         "the recognizer presets take rgb clips.")
    return column


def _segments(sampler):
    return getattr(sampler, "num_segments", sampler.clip_length)


def apply_feature_spec(config, spec, explicit=None):
    """`config` with its inputs taken from the spec's video column, and the spec recorded.

    The column's sampler becomes the run's sampler (random in training, its test-time rule
    in evaluation and export) and its preprocessing (crop `size`, `resize_short`, mean,
    std, ...) the run's, except `flip` / `flip_label_map`, which stay the training flags'.
    `explicit`: {flag: value} of the input flags given on the command line (see
    `SPEC_INPUT_FLAGS`); one that disagrees with the spec raises ValueError naming it.
    The returned config's `feature_spec` is the spec itself (a dict), so a model_dir does
    not depend on the JSON file staying where it was.
    """
    layer = feature_layer(spec)
    column = spec_video_column(layer, spec)
    where = _spec_name(spec)
    pre = dataclasses.asdict(column.preprocess)
    specified = {"num_segments": _segments(column.sampler), "crop_size": column.size,
                 "resize_short": pre["resize_short"]}
    for name, value in (explicit or {}).items():
        if value is not None and value != specified[name]:
            raise ValueError(f"--{name}={value} disagrees with {where}: its video column {column.name!r} has "
                             f"{name}={specified[name]}; drop the flag or change the spec.")
    sampler = _samplers.sampler_to_config(column.sampler)
    for key in ("training", "num_clips"):  # Set per use by ExperimentConfig.build_sampler.
        sampler.pop(key, None)
    preprocess = {k: list(v) if isinstance(v, tuple) else v for k, v in pre.items()}
    preprocess["num_crops"] = 1  # Test-time crops are an evaluate / export flag.
    for key in ("flip", "flip_label_map"):
        preprocess[key] = getattr(config.clip_spec.preprocess, key)
    model_kwargs = dict(config.model_kwargs)
    if "num_segments" in model_kwargs or "num_segments" in tfv_models.preset_config(config.model):
        model_kwargs["num_segments"] = _segments(column.sampler)
    clip = tfv_data.ClipSpec(sampler, preprocess, config.clip_spec.modality).get_config()
    return dataclasses.replace(config, clip=clip, model_kwargs=model_kwargs, feature_spec=layer.to_spec())


def _check_spec_matches_model(config, column, views=1):
    """The spec's clip must be the model's input clip (a hand-edited config.json can break this)."""
    want = tuple(input_shape(config, views)[2:])
    if tuple(column.output_shape[1:]) != want:
        raise ValueError(
            f"feature_spec video column {column.name!r} makes clips {list(column.output_shape[1:])} per view but "
            f"the model input is {list(want)} (the config's sampler {config.clip_sampler}, crop_size "
            f"{config.clip_spec.crop_size}); write the config with tfvideo-train --feature_spec.")


def dataset(config, source, training, batch_size, seed=None, num_clips=1, num_crops=1, repeat=False, drop_remainder=False):
    """The dict dataset of `source`: `video` [B, V, T, S, S, 3], `label`, `media_id`.

    With a feature spec, `tfvideo.data.video_dataset` samples and preprocesses with the
    spec's video column settings (see `apply_feature_spec`), training augmentation included,
    and the FeatureLayer then runs in the tf.data map on each batch: the clip goes to the
    video column under the column's raw key, which takes preprocessed float clips as they
    are after checking their shape against its own, and its output becomes `video`.
    Serving runs the same column on raw JPEG frames (test-time sampling, `preprocess_eval`),
    which equals this pipeline with `training=False`.
    """
    train = config.train
    spec = config.clip_spec  # The run's clip: its sampler, preprocessing and modality.
    sampler = spec.sampler(training, num_clips=num_clips)
    preprocess = dataclasses.replace(spec.preprocess, num_crops=num_crops)
    ds = tfv_data.video_dataset(
        source, sampler, preprocess=preprocess, batch_size=batch_size, training=training, modality=spec.modality,
        label_map=config.labels or None, seed=seed, on_error=train.on_error,
        multi_label=config.num_classes if train.multi_label else None,
        shuffle_buffer=int(train.shuffle_buffer),
        repeat=repeat, drop_remainder=drop_remainder)
    layer = feature_layer(config.feature_spec)
    if layer is not None:
        key = spec_video_column(layer, config.feature_spec).key

        @tf.autograph.experimental.do_not_convert  # No tensor-dependent Python control flow; errors stay as raised.
        def apply(element):
            return {**element, "video": layer({**element, key: element["video"]})[key]}

        ds = ds.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return ds


def batchnorm_layers(model):
    """The BatchNormalization layers of `model` in forward order.

    Functional models list their layers topologically; other layers in tracking order.
    """
    found = []

    def visit(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
            return
        children = layer.layers if isinstance(layer, keras.Model) else layer._flatten_layers(include_self=False,
                                                                                             recursive=False)
        for child in children:
            visit(child)

    visit(model)
    return found


def freeze_partial_bn(model):
    """TSN's partial BN: every BatchNorm layer but the first is frozen (inference mode)."""
    layers = batchnorm_layers(model)
    for layer in layers[1:]:
        layer.trainable = False
    return len(layers) - 1


def build_model(config, views=1):
    """The model of `config`, built, with remat / partial BN / sync BN applied."""
    train = config.train
    if config.feature_spec:
        _check_spec_matches_model(config, spec_video_column(feature_layer(config.feature_spec), config.feature_spec),
                                  views)
    model = config.build_model()
    check_model_channels(config, model)
    model.build(input_shape(config, views))
    if train.remat:
        _remat.apply_remat(model)
    if train.partial_bn:
        freeze_partial_bn(model)
    if train.sync_batchnorm:
        for layer in batchnorm_layers(model):
            layer.synchronized = True  # Read at call time: cross-replica batch statistics.
    return model


def init_from_checkpoint(model, train):
    """`--init_checkpoint`: starts `model` from a converted .keras file (tfvideo-convert); logs what loaded.

    train: the run's `TrainConfig`.
    """
    path = train.init_checkpoint
    if path:
        logging.info("%s", tfv_models.init_from_converted(model, path))


def lr_schedule(train, total_steps, steps_per_epoch):
    """The `WarmupSchedule` of a `TrainConfig` (its `optimizer.learning_rate` and `schedule`)."""
    schedule = train.schedule
    warmup = round(schedule.warmup_epochs * steps_per_epoch)
    boundaries = [round(f * total_steps) for f in schedule.decay_at]
    return WarmupSchedule(train.optimizer.learning_rate, total_steps, schedule.name, warmup, boundaries,
                          schedule.decay_rate)


def build_optimizer(train, total_steps, steps_per_epoch):
    """SGD (momentum) / Adam / AdamW with the schedule and gradient clipping of `train` (a `TrainConfig`)."""
    settings = train.optimizer
    name = settings.name
    lr = lr_schedule(train, total_steps, steps_per_epoch)
    common = {"learning_rate": lr, "global_clipnorm": settings.clip_norm or None}
    wd = settings.weight_decay or None
    if name == "sgd":
        opt = keras.optimizers.SGD(momentum=settings.momentum, weight_decay=wd, **common)
    elif name == "adam":
        opt = keras.optimizers.Adam(weight_decay=wd, **common)
    elif name == "adamw":
        opt = keras.optimizers.AdamW(weight_decay=wd or 0.004, **common)
    else:
        raise ValueError(f"--optimizer={name!r} is not one of {OPTIMIZERS}.")
    if train.mixed_precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def per_example_loss(labels, logits, multi_label=False):
    """Softmax cross-entropy per example: float32 [B].

    `multi_label`: `labels` are multi-hot [B, K]; sigmoid binary cross-entropy averaged
    over the K classes (MMAction2's BCELossWithLogits).
    """
    logits = keras.ops.cast(logits, "float32")
    if multi_label:
        return keras.losses.binary_crossentropy(labels, logits, from_logits=True)
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def top1_hits(labels, logits):
    """float32 [B]: 1 where the top-scoring class is the label (multi-hot [B, K]: one of the labels)."""
    top = keras.ops.argmax(logits, -1)
    if len(labels.shape) == 2:
        return keras.ops.cast(keras.ops.take_along_axis(labels, top[:, None], axis=-1)[:, 0] > 0, "float32")
    return keras.ops.cast(keras.ops.equal(keras.ops.cast(top, labels.dtype), labels), "float32")


def _is_list(source):
    return source.endswith((".txt", ".csv", ".list"))


def check_labels(source, num_classes, label_map=None, flag="--train_data", classes_from=None):
    """Raises ValueError naming the first example of `source` whose label is not in [0, num_classes).

    Annotation lists: `file:line` of the offending line (class names resolved through
    `label_map`). TFRecords: the shard and the record's index in it; every record's context
    label is read once (no frames are decoded). A record without a label (-1) or one that
    does not parse is left to the input pipeline, which names it (or skips it with
    `on_error=skip`). `classes_from`: how the class count was given, for the message.
    """
    classes_from = classes_from or f"{num_classes} classes"
    if _formats.parse_source(source) is not None:  # A published layout: its reader checks names and ids.
        try:
            listing = tfv_data.read_dataset(source, label_map=label_map)
        except tfv_data.AnnotationError as e:
            raise ValueError(f"{flag}: {e} ({classes_from}).") from None
        unlabelled = next((r for r in listing.records if r.label < 0), None)
        if unlabelled is not None:
            raise ValueError(f"{flag}={source}: {unlabelled.media_id} has no label (a test split published without "
                             "labels cannot train or be evaluated).")
        bad = next((r for r in listing.records if not 0 <= r.label < num_classes
                    or any(not 0 <= k < num_classes for k in r.labels or ())), None)
        if bad is not None:
            raise ValueError(f"{flag}={source}: {bad.media_id}: label {list(bad.labels or [bad.label])} is not a class "
                             f"id in [0, {num_classes}) ({classes_from}).")
        return
    if _is_list(source):
        if label_map is None:
            tfv_data.read_annotations(source)  # Class-name labels need a label map: that error first.
        try:
            # With no label map, the class ids "0".."n-1" range-check integer labels by line.
            tfv_data.read_annotations(source, label_map=label_map or [str(k) for k in range(num_classes)])
        except tfv_data.AnnotationError as e:
            raise ValueError(f"{flag}: {e} ({classes_from}).") from None
        return
    for path in tfv_data.match_shards(source):
        found = _first_bad_record_label(path, num_classes)
        if found is not None:
            index, label = found
            raise ValueError(f"{flag}={source}: {path} record {index}: label {label} is not a class id in "
                             f"[0, {num_classes}) ({classes_from}).")


def _first_bad_record_label(path, num_classes):
    """(record index, label) of the first record of one shard with a label >= num_classes, or None.

    A record of a multi-label list stores all its labels: its largest is checked."""
    key = tfv_data.LABEL_INDEX_KEY

    def label(serialized):
        context, _ = tf.io.parse_single_sequence_example(serialized, context_features={key: tf.io.VarLenFeature(tf.int64)})
        return tf.reduce_max(tf.concat([context[key].values, tf.constant([-1], tf.int64)], 0))

    labels = _tfrecord.shard_records([path], on_error="skip").map(label, num_parallel_calls=tf.data.AUTOTUNE).batch(4096)
    offset = 0
    try:
        for batch in labels:
            batch = batch.numpy()
            bad = np.flatnonzero(batch >= num_classes)
            if bad.size:
                return offset + int(bad[0]), int(batch[bad[0]])
            offset += len(batch)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError):
        pass  # A damaged shard: the input pipeline names it (or skips it with on_error=skip).
    return None
