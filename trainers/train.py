"""Trains a video recognizer (or, with --task=online_detection, an online detector).

  tfvideo-train --model=tsm_tiny --train_data=train.txt --eval_data=val.txt \\
      --label_map=label_map.txt --model_dir=/tmp/run --batch_size=8 --epochs=5 \\
      --num_segments=4 --crop_size=32 --resize_short=36 --recipe=tsm

Writes the resolved configuration (model_dir/config.json, labels.txt) before any training
work, checkpoints every --checkpoint_every_steps steps and at each epoch end, resumes from the
latest checkpoint when restarted with the same command, and saves model_dir/model.keras.
Flags can also come from a file: --flagfile=run.flags.
"""

import contextlib
import json

import keras
import tensorflow as tf
from absl import app, flags, logging

from tfvideo import _experiment, data, models
from tfvideo.data import _prepare, _sources
from tfvideo.models import _clip_specs
from trainers import _cli, _data_formats, _flags, _loop, _online, _recipes, _reports, _strategy, _task

FLAGS = flags.FLAGS
_default = _experiment.TrainConfig.flag_default  # The flags' defaults are the config's (one home).
_flags.define(flags.DEFINE_enum, "task", "recognition", ["recognition", "online_detection"], "What to train.")
flags.DEFINE_string("model", None, "Model preset name (tfvideo.models.list_presets()).")
flags.DEFINE_string("train_data", None, "Training annotation list (.txt/.csv), a dataset file in its published "
                    "layout (--format), or a TFRecord file pattern.")
_flags.define(flags.DEFINE_string, "eval_data", None, "Validation list or TFRecord pattern (top-1 after each epoch).")
flags.DEFINE_string("label_map", None, "Class names, one per line; defines num_classes.")
flags.DEFINE_integer("num_classes", None, "Number of classes (checked against --label_map when both are given).")
_flags.define(flags.DEFINE_string, "model_dir", None, "Output directory (config, checkpoints, logs, model.keras).")
_flags.define(flags.DEFINE_integer, "batch_size", _default("batch_size"), "Global batch size (split across replicas).")
flags.DEFINE_integer("epochs", None, "Epochs to train (one of --epochs / --train_steps).")
flags.DEFINE_integer("train_steps", None, "Optimizer steps to train (overrides --epochs).")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (default: training videos // batch size).")
flags.DEFINE_float("learning_rate", _default("learning_rate"), "Base learning rate (a recipe scales its own with the batch size).")
flags.DEFINE_enum("optimizer", _default("optimizer"), ["sgd", "adam", "adamw"], "Optimizer.")
flags.DEFINE_float("momentum", _default("momentum"), "SGD momentum.")
flags.DEFINE_float("weight_decay", _default("weight_decay"), "Decoupled weight decay (0 disables).")
flags.DEFINE_float("clip_norm", _default("clip_norm"), "Clip gradients to this global norm (0 disables).")
flags.DEFINE_enum("lr_schedule", _default("lr_schedule"), ["constant", "step", "cosine"], "Learning-rate schedule.")
flags.DEFINE_float("warmup_epochs", _default("warmup_epochs"), "Linear warm-up length in epochs.")
flags.DEFINE_list("lr_decay_at", _default("lr_decay_at"), "Step schedule: fractions of training where the lr is multiplied by --lr_decay_rate.")
flags.DEFINE_float("lr_decay_rate", _default("lr_decay_rate"), "Step schedule decay factor.")
flags.DEFINE_enum("strategy", _default("strategy"), ["default", "mirrored", "multi_worker"],
                  "default: one device; mirrored: all local GPUs; multi_worker: MultiWorkerMirroredStrategy from TF_CONFIG.")
flags.DEFINE_integer("logical_cpus", 0, "Split the CPU into this many logical devices (to run --strategy=mirrored on a CPU).")
flags.DEFINE_boolean("remat", _default("remat"), "Gradient checkpointing: keep only the residual-block outputs of the backbone "
                     "and recompute the rest in the backward pass.")
flags.DEFINE_enum("mixed_precision", _default("mixed_precision"), ["mixed_float16", "mixed_bfloat16"], "Mixed-precision policy.")
flags.DEFINE_boolean("jit_compile", _default("jit_compile"), "XLA-compile the forward/backward pass.")
flags.DEFINE_string("feature_spec", None, "tfvideo.feature_columns FeatureLayer JSON spec applied to the inputs.")
flags.DEFINE_string("init_checkpoint", None, "Start from a converted .keras model (tfvideo-convert); the "
                    "classifier is re-initialised when its class count differs.")
flags.DEFINE_integer("seed", _default("seed"), "Random seed (weights, sampling, augmentation, shuffling).")


class _RecipeParser(flags.EnumParser):
    """--recipe's choices are read when the flag is parsed: recipes registered after this
    module was imported (`tfvideo.models.register_recipe`) are accepted too."""

    def __init__(self):
        super().__init__([_recipes.AUTO])

    enum_values = property(lambda self: sorted(_recipes.RECIPES), lambda self, values: None)


flags.DEFINE(_RecipeParser(), "recipe", _recipes.AUTO,
             "Training recipe: auto (from the preset, pretrained or not, and the frame size), a paper's "
             "(tsm, tsn), scratch / finetune (auto's starting points), none (the flags' defaults), or "
             "one registered with tfvideo.models.register_recipe. Explicit flags win.")
flags.DEFINE_boolean("partial_bn", _default("partial_bn"), "Freeze every BatchNorm layer but the first (TSN's partial BN).")
flags.DEFINE_boolean("sync_batchnorm", _default("sync_batchnorm"), "BatchNorm statistics over the global batch across replicas.")
flags.DEFINE_float("dropout", None, "Dropout before the classifier (default: the preset's).")
flags.DEFINE_integer("num_segments", None, "Segments per clip (default: the preset's, else 8); for I3D presets "
                     "the dense clip's length (default: the preset's num_frames).")
flags.DEFINE_integer("crop_size", None, "Network input side (default: the recipe's; 224 without one).")
flags.DEFINE_integer("resize_short", None, "Shorter side before cropping (default: the recipe's; 256 without one; "
                     "0 keeps the decoded size).")
flags.DEFINE_enum("train_crop", None, ["multi_scale", "random_resized", "center"],
                  "Training crop: TSN's multi-scale corner/centre crops, Inception-style random resized, or the "
                  "centre (default: the recipe's; auto: centre from scratch, multi_scale from pretrained weights).")
flags.DEFINE_enum("modality", None, ["rgb", "flow", "rgb_diff"],
                  "What the network reads (recorded in config.json's clip spec): rgb frames, optical flow "
                  "(TFRecords made with tfvideo-prepare --flow, or the flow_x/flow_y files of rawframes folders: "
                  "--flow_filename_tmpl; x/y of 5 consecutive frames stacked per segment "
                  "for the flow presets) or TSN's RGB difference. Default: the preset's (flow for tsn_*_flow "
                  "presets, else rgb); must fit the preset's input channels.")
flags.DEFINE_boolean("flip", True, "Random horizontal flip of training clips.")
flags.DEFINE_list("flip_label_map", None, "Class id of each class's mirror image (e.g. 1,0,2,3 swaps classes "
                  "0 and 1 when a clip is flipped): for direction classes such as left/right. Default: derived "
                  "from the --label_map names (left/right, clockwise/anticlockwise pairs).")
flags.DEFINE_integer("checkpoint_every_steps", _default("checkpoint_every_steps"), "Checkpoint period in steps (also at every epoch end; 0: at epoch ends only).")
flags.DEFINE_integer("log_every_steps", _default("log_every_steps"), "TensorBoard scalar period in steps.")
_cli.define_verbosity("verbose", 1, "Progress bar: 0 silent, 1 bar, 2 one line per epoch.")
flags.DEFINE_enum("on_error", _default("on_error"), ["raise", "skip"], "Unreadable videos: stop (naming the file) or skip.")
flags.DEFINE_integer("shuffle_buffer", _default("shuffle_buffer"), "TFRecord training data: whole serialized videos held for shuffling "
                     "(memory ~ buffer x record size).", lower_bound=1)
flags.DEFINE_integer("keep_checkpoints", _default("keep_checkpoints"), "Checkpoints kept in model_dir/checkpoints "
                     "(older ones are deleted).")
flags.DEFINE_integer("eval_batches", _default("eval_batches"), "Batches of --eval_data scored after each epoch "
                     "(default: all).")

# Flags a recipe may set: the recipe value applies unless the flag is given explicitly.
_RECIPE_FLAGS = ("optimizer", "momentum", "weight_decay", "learning_rate", "lr_schedule", "lr_decay_at",
                 "lr_decay_rate", "clip_norm", "partial_bn", "dropout", "warmup_epochs")
_TRAIN_FLAGS = _RECIPE_FLAGS + (
    "train_data", "eval_data", "batch_size", "epochs", "train_steps", "steps_per_epoch", "strategy",
    "remat", "mixed_precision", "jit_compile", "seed", "sync_batchnorm", "checkpoint_every_steps",
    "log_every_steps", "on_error", "shuffle_buffer", "init_checkpoint", "keep_checkpoints", "eval_batches")
_INPUT_FLAGS = _recipes.INPUT_FLAGS  # The recipe may set them; they go to the clip spec.

_online.define_flags()
_data_formats.define_flags()

# Every number a user passes is checked before any work (nothing falls back to a default).
_RANGES = {
    "epochs": ">=1", "train_steps": ">=1", "steps_per_epoch": ">=1", "batch_size": ">=1", "num_classes": ">=1",
    "learning_rate": ">0", "momentum": "[0,1)", "weight_decay": ">=0", "clip_norm": ">=0", "warmup_epochs": ">=0",
    "lr_decay_at": "(0,1)", "lr_decay_rate": ">0", "logical_cpus": ">=0", "dropout": "[0,1)", "num_segments": ">=1",
    "crop_size": ">=1", "resize_short": ">=0", "checkpoint_every_steps": ">=0", "log_every_steps": ">=1",
    "verbose": "[0,2]", "keep_checkpoints": ">=1", "eval_batches": ">=1",
}


class FlagError(_cli.UsageError):
    """A flag value that cannot work; the message names the flag."""


def _validate():
    """Checks flags before any work; raises FlagError naming the flag."""
    for name in ("model", "train_data", "model_dir"):
        if not getattr(FLAGS, name):
            raise FlagError(f"--{name} is required.")
    if FLAGS.model not in models.list_presets():
        raise FlagError(f"--model={FLAGS.model!r} is not a model preset; available: {', '.join(models.list_presets())}.")
    for name in ("train_data", "eval_data", "label_map", "feature_spec", "init_checkpoint"):
        value = getattr(FLAGS, name)
        if value and not _task.data_exists(value):
            raise FlagError(f"--{name}={value}: no such file (or no file matches the pattern).")
    _flags.check_ranges(FLAGS, _RANGES)
    if FLAGS.epochs is None and FLAGS.train_steps is None:
        raise FlagError("--epochs or --train_steps is required.")
    if FLAGS.modality:
        try:
            _clip_specs.check_modality(FLAGS.model, FLAGS.modality)
            if FLAGS.modality == "rgb_diff":
                models.default_clip_spec(FLAGS.model, modality="rgb_diff")
        except ValueError as e:
            raise FlagError(f"--modality={FLAGS.modality} does not fit --model={FLAGS.model}: "
                            f"{str(e).replace('modality=', '', 1)}") from None


def build_config():
    """The resolved `ExperimentConfig` of the command line (flags + recipe + preset defaults)."""
    labels = data.read_class_names(FLAGS.label_map) if FLAGS.label_map else []
    sources, labels = _data_sources(labels)
    if labels and FLAGS.num_classes and FLAGS.num_classes != len(labels):
        given = f"--label_map={FLAGS.label_map}" if FLAGS.label_map else f"the class file of --train_data={FLAGS.train_data}"
        raise FlagError(f"--num_classes={FLAGS.num_classes} does not match {given} ({len(labels)} classes).")
    num_classes = len(labels) or FLAGS.num_classes
    values = {name: FLAGS[name].value for name in _TRAIN_FLAGS + _INPUT_FLAGS}
    values.update(sources)  # --format: the lists as source strings config.json records.
    explicit = {name for name in _TRAIN_FLAGS + _INPUT_FLAGS if FLAGS[name].present}
    facts = None
    if FLAGS.recipe == "auto":
        facts = _recipes.RunFacts(model=FLAGS.model, pretrained=_recipes.pretrained_init(FLAGS), epochs=FLAGS.epochs,
                                  frame_sizes=data.probe_frame_sizes(values["train_data"], label_map=labels or None))
    values = _recipes.apply_recipe(FLAGS.recipe, values, explicit, facts)
    values["lr_decay_at"] = [float(v) for v in values["lr_decay_at"]]
    model_kwargs = _clip_specs.clip_model_kwargs(FLAGS.model, FLAGS.num_segments)
    dropout = values.pop("dropout")
    if dropout is not None:
        model_kwargs["dropout"] = float(dropout)
    preprocess = {key: values.pop(key) for key in _INPUT_FLAGS if values.get(key) is not None}
    preprocess["flip"] = FLAGS.flip
    try:
        mirror, mirror_source = _recipes.flip_label_map(FLAGS.flip, FLAGS.flip_label_map, labels, FLAGS.label_map)
    except _recipes.FlipMapError as e:
        raise FlagError(str(e)) from None
    if mirror is not None and values.get("multi_label"):
        raise FlagError("--flip_label_map (or one derived from the class names) remaps one label per clip; a "
                        "multi-label --train_data takes none (use --noflip for direction classes).")
    if mirror is not None:
        preprocess["flip_label_map"] = mirror
    if facts is not None:
        values["recipe_basis"] = _recipes.basis_text(facts)
    values["flip_label_map_source"] = mirror_source
    _recipes.announce({**values, **preprocess, "dropout": dropout}, explicit, labels, mirror_source)
    clip = models.default_clip_spec(FLAGS.model, FLAGS.num_segments, modality=FLAGS.modality, **preprocess)
    config = _experiment.ExperimentConfig(
        model=FLAGS.model, num_classes=int(num_classes), model_kwargs=model_kwargs, labels=labels,
        task=FLAGS.task, clip=clip,
        train=_experiment.TrainConfig.from_flags(values))
    if FLAGS.feature_spec:  # The spec's video column defines the clip; the spec is recorded in config.json.
        try:
            config = _task.apply_feature_spec(config, FLAGS.feature_spec,
                                              {name: FLAGS[name].value for name in _task.SPEC_INPUT_FLAGS})
        except ValueError as e:
            raise FlagError(str(e)) from None
    print(f"clip (config.json 'clip'): {config.clip_spec.describe()}", flush=True)
    return config


def _data_sources(labels):
    """({train_data, eval_data} as source strings of their --format, class names).

    A layout that ships its classes (classInd.txt, labels.json, *-labels.csv, Kinetics'
    CSV, HMDB51's split files) gives the class names when --label_map is not given.
    """
    sources = {}
    try:
        sources["train_data"], listing = _data_formats.resolve(FLAGS.train_data, "train", label_map=labels)
        if not labels and listing is not None and listing.class_names:
            labels = list(listing.class_names)
        if listing is not None and listing.multi_label:  # Sigmoid / binary cross-entropy; mAP in evaluation.
            sources["multi_label"] = True
        if listing is None and _sources.is_tfrecord_source(sources["train_data"]):  # Shards of a multi-label list?
            manifest = _prepare.shard_set_manifest(sources["train_data"])
            if manifest and manifest.get("multi_label"):
                sources["multi_label"] = True
        sources["eval_data"], _ = _data_formats.resolve(FLAGS.eval_data, "test", label_map=labels, fallback_format=(
            "mmaction" if sources.get("multi_label") else None))
    except (data.AnnotationError, ValueError) as e:
        raise FlagError(str(e)) from None
    if not labels and not FLAGS.num_classes:
        raise FlagError("--label_map or --num_classes is required (the --format of --train_data has no class file).")
    return sources, labels


def _check_model_dir(config):
    """A model_dir holding another model's checkpoints is rejected; the same one is resumed."""
    try:
        _experiment.check_model_dir(FLAGS.model_dir, config)
    except ValueError as e:
        raise FlagError(str(e)) from None


@contextlib.contextmanager
def _lock_model_dir():
    """One run per model_dir (the chief's lock; workers write under backup/): a second one exits 2 naming the holder."""
    if not _strategy.is_chief():
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_experiment.model_dir_lock(FLAGS.model_dir))
        except _experiment.ModelDirInUseError as e:
            raise FlagError(str(e)) from None
        yield


def _check_labels(config):
    """Every label of the data is a class of the label map / --num_classes (before anything is written)."""
    n = config.num_classes
    given = f"--label_map={FLAGS.label_map} has {n} classes" if FLAGS.label_map else f"--num_classes={n}"
    for name in ("train_data", "eval_data"):
        if getattr(config.train, name):
            try:
                _task.check_labels(getattr(config.train, name), n, config.labels or None, f"--{name}", given)
            except ValueError as e:
                raise FlagError(str(e)) from None


def _configure_devices():
    if FLAGS.logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.logical_cpus)


def train_recognition():
    """flags -> config (written to model_dir) -> Trainer.fit. Returns the last logs."""
    _validate()
    config = build_config()
    _check_labels(config)
    with _lock_model_dir():
        _check_model_dir(config)
        if _strategy.is_chief():
            config.write(FLAGS.model_dir)  # Before any training work.
        _configure_devices()

        keras.utils.set_random_seed(config.train.seed)
        if config.train.mixed_precision:
            keras.mixed_precision.set_global_policy(config.train.mixed_precision)
        devices = [f"/cpu:{i}" for i in range(FLAGS.logical_cpus)] if FLAGS.logical_cpus > 1 else None
        strategy = _strategy.make_strategy(config.train.strategy, devices)
        logging.info("Strategy %s with %d replicas", config.train.strategy, strategy.num_replicas_in_sync)
        trainer = _loop.Trainer(config, FLAGS.model_dir, strategy)
        logs = trainer.fit(verbose=FLAGS.verbose)
        if _strategy.is_chief():
            print(f"report: {_reports.write_training_report(FLAGS.model_dir, json.loads(config.to_json()))}", flush=True)
    return logs


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.task == "online_detection":
        _flags.check_ranges(FLAGS, _RANGES)
        return _online.train_main(FLAGS)
    try:
        logs = train_recognition()
    except FlagError as e:
        _cli.report("tfvideo-train", e)
        return 2
    print("training done: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items()))
    return 0


def run():
    _cli.run(main, "tfvideo-train")


if __name__ == "__main__":
    run()
