"""The recognition task: builds inputs, the model (remat, partial BN, sync BN), the
optimizer with its learning-rate schedule, and the loss, from an `ExperimentConfig`."""

import glob
import math

import keras
import numpy as np
import tensorflow as tf

from tfvideo import data as tfv_data
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
    if any(c in source for c in "*?["):
        return bool(glob.glob(source))
    return tf.io.gfile.exists(source)


def count_examples(source, label_map=None):
    """Number of videos in an annotation list or TFRecord files (one pass, no decoding)."""
    if source.endswith((".txt", ".csv", ".list")):
        return len(tfv_data.read_annotations(source, label_map=label_map))
    files = tfv_data.match_shards(source)
    return int(tf.data.TFRecordDataset(files).reduce(np.int64(0), lambda n, _: n + 1))


def input_shape(config, views=1):
    """[None, views, T, S, S, 3] of the model input for `config`."""
    sampler = config.build_sampler(training=False)
    size = config.preprocess.get("crop_size", 224)
    return (None, views, sampler.clip_length, size, size, 3)


def feature_layer(spec_path):
    """The `tfvideo.feature_columns.FeatureLayer` of a --feature_spec JSON file, or None."""
    if not spec_path:
        return None
    try:
        from tfvideo import feature_columns
        layer_cls = feature_columns.FeatureLayer
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--feature_spec={spec_path}: tfvideo.feature_columns.FeatureLayer is not available ({e}).") from None
    return layer_cls.from_spec(spec_path)


def dataset(config, source, training, batch_size, seed=None, num_clips=1, num_crops=1, repeat=False, drop_remainder=False):
    """The dict dataset of `source`: `video` [B, V, T, S, S, 3], `label`, `media_id`."""
    train = config.train
    sampler = config.build_sampler(training=training, num_clips=num_clips)
    preprocess = config.build_preprocess(num_crops=num_crops)
    ds = tfv_data.video_dataset(
        source, sampler, preprocess=preprocess, batch_size=batch_size, training=training,
        label_map=config.labels or None, seed=seed, on_error=train.get("on_error", "raise"),
        repeat=repeat, drop_remainder=drop_remainder)
    layer = feature_layer(config.feature_spec)
    if layer is not None:
        def apply(element):
            features = layer(element)
            if isinstance(features, dict):
                return {**element, **features}
            return {**element, "video": features}
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
    model = config.build_model()
    model.build(input_shape(config, views))
    if train.get("remat"):
        _remat.apply_remat(model)
    if train.get("partial_bn"):
        freeze_partial_bn(model)
    if train.get("sync_batchnorm"):
        for layer in batchnorm_layers(model):
            layer.synchronized = True  # Read at call time: cross-replica batch statistics.
    return model


def lr_schedule(train, total_steps, steps_per_epoch):
    warmup = round(train.get("warmup_epochs", 0) * steps_per_epoch)
    boundaries = [round(f * total_steps) for f in train.get("lr_decay_at", [])]
    return WarmupSchedule(train["learning_rate"], total_steps, train.get("lr_schedule", "constant"), warmup,
                          boundaries, train.get("lr_decay_rate", 0.1))


def build_optimizer(train, total_steps, steps_per_epoch):
    """SGD (momentum) / Adam / AdamW with the schedule and gradient clipping of `train`."""
    name = train.get("optimizer", "sgd")
    lr = lr_schedule(train, total_steps, steps_per_epoch)
    common = {"learning_rate": lr, "global_clipnorm": train.get("clip_norm") or None}
    wd = train.get("weight_decay") or None
    if name == "sgd":
        opt = keras.optimizers.SGD(momentum=train.get("momentum", 0.9), weight_decay=wd, **common)
    elif name == "adam":
        opt = keras.optimizers.Adam(weight_decay=wd, **common)
    elif name == "adamw":
        opt = keras.optimizers.AdamW(weight_decay=wd or 0.004, **common)
    else:
        raise ValueError(f"--optimizer={name!r} is not one of {OPTIMIZERS}.")
    if train.get("mixed_precision") == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def per_example_loss(labels, logits):
    """Softmax cross-entropy per example: float32 [B]."""
    return keras.losses.sparse_categorical_crossentropy(labels, keras.ops.cast(logits, "float32"), from_logits=True)
