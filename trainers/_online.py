"""Online action detection in the train/evaluate binaries (`--task=online_detection`).

  tfvideo-train --task=online_detection --model=trn --model_dir=/tmp/trn \
      --features_dirs=/data/thumos/rgb,/data/thumos/flow --targets_dir=/data/thumos/targets \
      --train_data=/data/thumos/val_sessions.txt --eval_data=/data/thumos/test_sessions.txt \
      --ambiguous_index=21 --epochs=20 --optimizer=adam --learning_rate=1e-4
  tfvideo-evaluate --task=online_detection --model_dir=/tmp/trn

`--train_data` / `--eval_data` are session lists (one name per line; features and targets
come from `--features_dirs` / `--targets_dir`) or TFRecord patterns of
`tfvideo.data.make_chunk_feature_example` records.

The community's files (TRN.pytorch, OadTR, LSTR) are read as they are
(`tfvideo.data.load_online_sessions`; `--oad_format`, detected by default):

  tfvideo-train --task=online_detection --model=oadtr --model_dir=/tmp/oadtr \
      --data_info=data/data_info_new.json --data_info_dataset=THUMOS \
      --features_dirs=preprocess/thumos_all_feature_val_V3.pickle \
      --targets_dir=preprocess/thumos_val_anno.pickle \
      --eval_features_dirs=preprocess/thumos_all_feature_test_V3.pickle \
      --eval_targets_dir=preprocess/thumos_test_anno.pickle --ambiguous_index=21

`--data_info` gives the session sets (train_session_set / test_session_set, unless
`--train_data` / `--eval_data` name lists) and the class names the target columns must match;
features may be folders of `<session>.npy` (one per modality), folders of
`<session>_rgb.npy` / `<session>_flow.npy` (`--oad_modalities`), or the pickles. `define_flags()` is called by
trainers/train.py and trainers/evaluate.py at import; they dispatch to `train_main(flags)`
and `evaluate_main(flags)`, which reuse their generic flags (--model, --model_dir,
--batch_size, --epochs, --learning_rate, --optimizer, --seed, --label_map, ...).
"""

import contextlib
import dataclasses
import inspect
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf
from absl import flags as absl_flags
from absl import logging

from tfvideo import _experiment, data, metrics, online
from tfvideo.data import _tfrecord
from trainers import _cli, _flags, _loop

TASK = "online_detection"
# A detector's run length when neither --epochs nor --train_steps is given.
DEFAULT_EPOCHS = 10
# The recognition defaults (SGD, lr 0.01) suit ImageNet backbones; detectors train with Adam at 1e-3
# unless --optimizer / --learning_rate are given.
DEFAULT_OPTIMIZER = _experiment.OptimizerConfig(name="adam", learning_rate=1e-3)
# tfvideo-train flags the online task does not use: given with --task=online_detection they are refused
# rather than silently ignored.
RECOGNITION_ONLY_FLAGS = (
    "recipe", "lr_schedule", "warmup_epochs", "lr_decay_at", "lr_decay_rate", "clip_norm", "steps_per_epoch",
    "eval_batches", "checkpoint_every_steps", "log_every_steps", "partial_bn", "sync_batchnorm", "dropout", "remat",
    "mixed_precision", "jit_compile", "strategy", "logical_cpus", "init_checkpoint", "feature_spec", "on_error",
    "shuffle_buffer", "num_segments", "crop_size", "resize_short", "train_crop", "flip", "flip_label_map")
# Layout flags tfvideo-evaluate may change from the run's -> OnlineConfig fields.
_LAYOUT_FLAGS = {"oad_format": "oad_format", "oad_modalities": "modalities", "data_info": "data_info",
                 "data_info_dataset": "data_info_dataset"}
# Optimizer flags -> OptimizerConfig fields.
_OPTIMIZER_FLAGS = {"optimizer": "name", "learning_rate": "learning_rate", "momentum": "momentum",
                    "weight_decay": "weight_decay"}


def define_flags():
    """Defines the online-detection flags (features/targets directories, history, ...)."""
    f = absl_flags
    _define = _flags.define
    defaults = _experiment.OnlineConfig()
    _define(f.DEFINE_list, "features_dirs", [], "Online detection: chunk-feature folders of {session}.npy [T, D_i] "
            "(or of {session}_rgb.npy, or feature pickles: --oad_format), concatenated along D in this order.")
    _define(f.DEFINE_string, "targets_dir", None, "Online detection: folder of {session}.npy one-hot targets [T, C+1] "
            "(column 0 background), or an anno pickle {session: {'anno': [T, C+1]}}.")
    _define(f.DEFINE_integer, "history", defaults.history, "Online detection: training window length in chunks; also the window of "
            "windowed detectors (IDN, OadTR).")
    _define(f.DEFINE_integer, "window_stride", None, "Online detection: chunks between training windows "
            "(default: --history).")
    _define(f.DEFINE_integer, "ambiguous_index", None, "Online detection: target column of the ambiguous class, "
            "left out of the loss and the metrics (21 on THUMOS'14).")
    _define(f.DEFINE_float, "anticipation_weight", None, "Online detection: weight of the decoders' anticipation "
            "loss (default: the model's, as its authors: OadTR 0.5, TRN 1.0).")
    _define(f.DEFINE_float, "embedding_loss_weight", None, "Online detection (IDN): weight of the early-embedding "
            "classification loss (default: the model's, 1.0; 0 turns it off).")
    _define(f.DEFINE_float, "contrastive_loss_weight", None, "Online detection (IDN): weight of the contrastive loss "
            "between the current and past early embeddings (default: the model's, 1.0; 0 turns it off).")
    _define(f.DEFINE_float, "chunk_seconds", defaults.chunk_seconds, "Online detection: seconds per chunk (point-level AP offsets, "
            "tfvideo-stream's per-second output).")
    _define(f.DEFINE_enum, "oad_format", defaults.oad_format, list(data.OAD_LAYOUTS), "Online detection: layout of "
            "--features_dirs / --targets_dir: tfvideo (folders of <session>.npy), suffixed (<session>_<modality>.npy, "
            "OadTR), pickle (OadTR's {session: {modality: [T, D]}} / {session: {'anno': [T, K+1]}}); auto: detected.")
    _define(f.DEFINE_list, "oad_modalities", list(defaults.modalities), "Online detection: modality keys of the "
            "suffixed and pickle layouts, concatenated in this order.")
    _define(f.DEFINE_string, "data_info", None, "Online detection: a data_info.json (TRN.pytorch/OadTR/LSTR): session "
            "sets for absent --train_data/--eval_data, class names the targets must match.")
    _define(f.DEFINE_string, "data_info_dataset", None, "Online detection: the --data_info entry (THUMOS, TVSeries, "
            "HDD, ...); default: the file's only one.")
    _define(f.DEFINE_list, "eval_features_dirs", [], "Online detection: evaluation feature sources "
            "(default: --features_dirs), e.g. OadTR's test pickle.")
    _define(f.DEFINE_string, "eval_targets_dir", None, "Online detection: evaluation targets (default: --targets_dir).")
    _define(f.DEFINE_string, "detector_kwargs", "{}", "Online detection: JSON of detector constructor overrides, "
            "e.g. '{\"embed_dim\": 512}'.")


class OnlineFlagError(_cli.UsageError):
    """A flag combination the online task cannot run with."""


_RANGES = {"epochs": ">=1", "train_steps": ">=1", "batch_size": ">=1", "keep_checkpoints": ">=1", "history": ">=1", "window_stride": ">=1", "ambiguous_index": ">=0", "anticipation_weight": ">=0",
           "embedding_loss_weight": ">=0", "contrastive_loss_weight": ">=0", "chunk_seconds": ">0"}


def _get(flags, name, default=None):
    try:
        value = getattr(flags, name)
    except AttributeError:
        return default
    return default if value is None else value


def _present(flags, name):
    try:
        return flags[name].present
    except (KeyError, TypeError):
        return False


def _is_tfrecord(spec):
    return "*" in spec or ".tfrecord" in spec or spec.endswith(".tfr")


def _read_labels(path, num_columns, info=None):
    """Class names for the K score columns: a label map of K names, or of K-1 actions (background prepended);
    without one, a data_info's class names."""
    if not path and info is not None and len(info.class_names) == num_columns:
        return list(info.class_names)
    if path:
        names = data.read_label_map(path)
        if len(names) == num_columns - 1:
            return ["background"] + names
        if len(names) == num_columns:
            return names
        raise OnlineFlagError(f"--label_map={path} names {len(names)} classes; the targets have {num_columns} columns "
                              f"(expected {num_columns - 1} actions or all {num_columns}).")
    return ["background"] + [f"action_{k}" for k in range(1, num_columns)]


def load_videos(spec, features_dirs, targets_dir, feature_dim=None, num_columns=None, flag="--train_data",
                source=None):
    """[(session, features [T, D], targets [T, K])] from a session list, a TFRecord pattern, or
    (`spec` None) the session set of `source.data_info`.

    `source`: an `_experiment.OnlineConfig` with the layout settings (`oad_format`,
    `modalities`, `data_info`, `data_info_dataset`); None: tfvideo's own layout.
    """
    source = source or _experiment.OnlineConfig()
    info = _data_info(source)
    if not spec and info is None:
        raise OnlineFlagError(f"{flag} is required: a session list or a TFRecord pattern (or give --data_info).")
    if spec and _is_tfrecord(spec):
        files = data.match_shards(spec)
        if not files:
            raise OnlineFlagError(f"{flag}={spec} matches no file.")
        if feature_dim is None:
            first = tf.train.SequenceExample.FromString(next(iter(_tfrecord.shard_records(files[:1]))).numpy())
            feature_dim = len(first.feature_lists.feature_list[data.CHUNK_FEATURES_KEY].feature[0].float_list.value)
        if num_columns is None:
            raise OnlineFlagError(f"{flag}={spec}: TFRecord sources need --num_classes or --label_map "
                                  "(action classes; background is added).")
        videos = []
        for k, record in enumerate(_tfrecord.shard_records(files)):
            parsed = data.parse_chunk_feature_example(record, feature_dim, num_columns)
            name = parsed["media_id"].numpy().decode() or f"video_{k}"
            videos.append((name, parsed["features"].numpy(), parsed["targets"].numpy()))
        return videos
    if not features_dirs or not targets_dir:
        what = f"{flag}={spec} is a session list" if spec else f"--data_info={source.data_info}"
        raise OnlineFlagError(f"{what}: --features_dirs and --targets_dir are required.")
    if spec:
        sessions, where = data.read_session_list(spec), f"{flag}={spec}"
    else:
        split = "train_session_set" if flag == "--train_data" else "test_session_set"
        sessions = info.train_sessions if flag == "--train_data" else info.test_sessions
        where = f"--data_info={source.data_info} ({info.name} {split})"
        if not sessions:
            raise OnlineFlagError(f"{where} names no sessions; give {flag}.")
    return data.load_online_sessions(sessions, features_dirs, targets_dir, layout=source.oad_format,
                                     modalities=source.modalities,
                                     class_names=info.class_names if info else None, where=where)


def _data_info(source):
    if not source.data_info:
        return None
    return data.read_data_info(source.data_info, source.data_info_dataset)


def _num_columns_from_flags(flags):
    num_classes = _get(flags, "num_classes")
    label_map = _get(flags, "label_map")
    if num_classes:
        return int(num_classes) + 1
    if label_map:
        with open(label_map) as f:
            return sum(1 for line in f if line.strip()) + 1
    return None


def _build_detector(config):
    kwargs = dict(config.model_kwargs)
    feature_dim = kwargs.pop("feature_dim")
    return online.get_detector(config.model, feature_dim, config.num_classes, **kwargs)


def _optimizer_settings(flags):
    """`DEFAULT_OPTIMIZER` with the optimizer flags given on the command line."""
    given = {field: _get(flags, name) for name, field in _OPTIMIZER_FLAGS.items()
             if _present(flags, name) and _get(flags, name) is not None}
    return dataclasses.replace(DEFAULT_OPTIMIZER, **given)


def _compile(model, settings, ambiguous_index, anticipation_weight):
    """Compiles `model` with the `OptimizerConfig` `settings` (constant rate) and the soft-target losses."""
    lr = float(settings.learning_rate)
    optimizers = {"sgd": lambda: keras.optimizers.SGD(lr, momentum=float(settings.momentum)),
                  "adam": lambda: keras.optimizers.Adam(lr),
                  "adamw": lambda: keras.optimizers.AdamW(lr, weight_decay=float(settings.weight_decay))}
    if settings.name not in optimizers:
        raise OnlineFlagError(f"--optimizer={settings.name!r} is not one of {sorted(optimizers)}.")
    losses = {"scores": online.SoftTargetCrossEntropy(ignore_index=ambiguous_index)}
    weights = {"scores": 1.0}
    if model.anticipates:
        losses["anticipation"] = online.SoftTargetCrossEntropy(ignore_index=ambiguous_index)
        weights["anticipation"] = anticipation_weight
    model.compile(optimizer=optimizers[settings.name](), loss=losses, loss_weights=weights)


def evaluate_videos(model, videos, ambiguous_index=None, chunk_seconds=0.25):
    """Per-frame mAP, mcAP and point-level start AP (1..10 s) of `model` on [(name, features, targets)]."""
    scores = [online.score_sequence(model, f) for _, f, _ in videos]
    targets = [y for _, _, y in videos]
    mean_ap, per_class = metrics.per_frame_map(scores, targets, ambiguous_index=ambiguous_index)
    mean_cap, _ = metrics.calibrated_map(scores, targets, ambiguous_index=ambiguous_index)
    predicted, truth = [], []
    for (name, _, y), s in zip(videos, scores):
        masked = s.copy()
        if ambiguous_index is not None:
            masked[:, ambiguous_index] = -1.0
        predicted += [(name, t, c, p) for t, c, p in metrics.action_starts(masked.argmax(1), chunk_seconds, s)]
        truth += [(name, t, c) for t, c, _ in metrics.action_starts(y.argmax(1), chunk_seconds)
                  if c != ambiguous_index]
    starts = metrics.point_level_map(predicted, truth)
    return {"per_frame_map": mean_ap, "mcap": mean_cap, "per_class_ap": per_class,
            "start_ap": starts, "num_videos": len(videos), "num_chunks": int(sum(len(y) for y in targets))}


def _print_metrics(results, where):
    print(f"per-frame mAP: {results['per_frame_map']:.4f}")
    print(f"mcAP: {results['mcap']:.4f}")
    starts = results["start_ap"]
    print("action-start point AP @1..10s: " + " ".join(f"{starts[k]:.3f}" for k in sorted(starts)))
    print(f"videos: {results['num_videos']}, chunks: {results['num_chunks']}{where}")


def _jsonable(results):
    return {"per_frame_map": results["per_frame_map"], "mcap": results["mcap"],
            "per_class_ap": {str(k): v for k, v in results["per_class_ap"].items()},
            "start_ap": {str(k): v for k, v in results["start_ap"].items()},
            "num_videos": results["num_videos"], "num_chunks": results["num_chunks"]}


def train(flags):
    """Trains an online detector as the flags say; returns (model_dir, eval results or None).

    The run holds model_dir's lock from its first write on (`_experiment.model_dir_lock`).
    """
    with contextlib.ExitStack() as lock:
        return _train(flags, lock)


def _lock_model_dir(lock, model_dir):
    """Enters model_dir's lock into the ExitStack `lock`; a live holder is a usage error (exit 2)."""
    try:
        lock.enter_context(_experiment.model_dir_lock(model_dir))
    except _experiment.ModelDirInUseError as e:
        raise OnlineFlagError(str(e)) from None


def _train(flags, lock):
    model_dir = _get(flags, "model_dir")
    name = _get(flags, "model")
    if not model_dir:
        raise OnlineFlagError("--model_dir is required.")
    _flags.check_ranges(flags, _RANGES)
    for flag in RECOGNITION_ONLY_FLAGS:
        if _present(flags, flag):
            raise OnlineFlagError(f"--{flag} applies to recognition training, not --task={TASK}.")
    if name not in online.list_detectors():
        raise OnlineFlagError(f"--model={name!r} is not an online detector; available: "
                              f"{', '.join(online.list_detectors())}.")
    try:
        overrides = json.loads(_get(flags, "detector_kwargs", "{}"))
    except json.JSONDecodeError as e:
        raise OnlineFlagError(f"--detector_kwargs is not JSON: {e}") from e
    features_dirs, targets_dir = list(_get(flags, "features_dirs", [])), _get(flags, "targets_dir")
    layout = _experiment.OnlineConfig(
        oad_format=_get(flags, "oad_format", "auto"), modalities=tuple(_get(flags, "oad_modalities", ("rgb", "flow"))),
        data_info=_get(flags, "data_info"), data_info_dataset=_get(flags, "data_info_dataset"),
        eval_features_dirs=tuple(_get(flags, "eval_features_dirs", ())), eval_targets_dir=_get(flags, "eval_targets_dir"))
    num_columns = _num_columns_from_flags(flags)
    train_videos = load_videos(_get(flags, "train_data"), features_dirs, targets_dir, num_columns=num_columns,
                               source=layout)
    feature_dim, num_columns = train_videos[0][1].shape[1], train_videos[0][2].shape[1]
    info = _data_info(layout)
    history = int(_get(flags, "history", _experiment.OnlineConfig.history))
    args = _constructor_args(name)
    if _present(flags, "history") and "history" in args:
        overrides.setdefault("history", history)
    ambiguous_index = _get(flags, "ambiguous_index")
    if ambiguous_index is None and info is not None and info.ignore_index is not None:
        ambiguous_index = info.ignore_index  # LSTR's data_info names it.
    # Detectors with losses of their own (IDN's early-embedding losses) leave out the same column.
    if ambiguous_index is not None and "ambiguous_index" in args:
        overrides.setdefault("ambiguous_index", int(ambiguous_index))
    for flag in ("embedding_loss_weight", "contrastive_loss_weight"):
        if _get(flags, flag) is not None:
            if flag not in args:
                raise OnlineFlagError(f"--{flag} applies to detectors with that loss (idn, idn_tiny), "
                                      f"not --model={name}.")
            overrides.setdefault(flag, float(_get(flags, flag)))
    if _get(flags, "anticipation_weight") is not None and not float(_get(flags, "anticipation_weight")) >= 0:
        raise OnlineFlagError(f"--anticipation_weight={_get(flags, 'anticipation_weight')} must be >= 0.")
    defaults = _experiment.TrainConfig()
    seed = int(_get(flags, "seed", defaults.seed))
    epochs, train_steps = _get(flags, "epochs"), _get(flags, "train_steps")
    if epochs is None and train_steps is None:
        epochs = DEFAULT_EPOCHS
    settings = dataclasses.replace(
        layout, features_dirs=tuple(features_dirs), targets_dir=targets_dir, history=history,
        window_stride=_get(flags, "window_stride"), ambiguous_index=ambiguous_index,
        anticipation_weight=_get(flags, "anticipation_weight"),
        chunk_seconds=float(_get(flags, "chunk_seconds", _experiment.OnlineConfig.chunk_seconds)))
    train_config = _experiment.TrainConfig(
        train_data=_get(flags, "train_data"), eval_data=_get(flags, "eval_data"),
        batch_size=int(_get(flags, "batch_size", defaults.batch_size)), epochs=epochs, train_steps=train_steps,
        optimizer=_optimizer_settings(flags), seed=seed,
        keep_checkpoints=int(_get(flags, "keep_checkpoints", defaults.keep_checkpoints)), online=settings)
    config = _experiment.ExperimentConfig(
        model=name, num_classes=num_columns, model_kwargs={"feature_dim": int(feature_dim), **overrides},
        labels=_read_labels(_get(flags, "label_map"), num_columns, info), task=TASK, train=train_config)
    _lock_model_dir(lock, model_dir)
    try:
        _experiment.check_model_dir(model_dir, config)
    except ValueError as e:
        raise OnlineFlagError(str(e)) from None
    config.write(model_dir)

    keras.utils.set_random_seed(seed)
    model = _build_detector(config)
    weight = settings.anticipation_weight
    if weight is None:
        weight = float(getattr(model, "anticipation_weight", 1.0))
    if model.anticipates:  # Record the weight used.
        settings = dataclasses.replace(settings, anticipation_weight=float(weight))
        config = dataclasses.replace(config, train=dataclasses.replace(train_config, online=settings))
        config.write(model_dir)
    _compile(model, config.train.optimizer, ambiguous_index, float(weight))
    steps = getattr(model, "decoder_steps", 0) if model.anticipates else 0
    # Windowed detectors trained as their authors (OadTR) score only chunks with a full real history.
    windows = data.feature_window_dataset([(f, y) for _, f, y in train_videos], history=settings.history,
                                          stride=settings.window_stride or settings.history,
                                          batch_size=config.train.batch_size,
                                          anticipation_steps=steps, seed=seed,
                                          context=int(getattr(model, "training_context", 0)))
    checkpoints = _epoch_checkpoints(model, model_dir, next(iter(windows))[0], config.train.keep_checkpoints)
    initial_epoch = checkpoints.restore()
    callbacks = [keras.callbacks.TensorBoard(os.path.join(model_dir, "logs"), write_graph=False), checkpoints]
    if train_steps is not None:
        # Whole passes over the windows, the last one cut at exactly `train_steps` optimizer steps.
        epochs = math.ceil(int(train_steps) / _batches_per_pass(windows))
        callbacks.append(_stop_at_step(int(train_steps)))
    epochs = int(epochs)
    logging.info("Training %s on %d videos for %d epochs%s (from epoch %d)", name, len(train_videos), epochs,
                 f" ({train_steps} steps)" if train_steps is not None else "", initial_epoch + 1)
    model.fit(windows, epochs=epochs, initial_epoch=initial_epoch, verbose=int(_get(flags, "verbose", 2)),
              callbacks=callbacks, shuffle=False)  # The windows are shuffled by the dataset.
    _loop.save_model(model, model_dir)

    results = None
    if config.train.eval_data or (info is not None and info.test_sessions):
        eval_videos = load_videos(config.train.eval_data, list(settings.eval_features_dirs) or features_dirs,
                                  settings.eval_targets_dir or targets_dir, feature_dim, num_columns,
                                  flag="--eval_data", source=settings)
        results = evaluate_videos(model, eval_videos, ambiguous_index, settings.chunk_seconds)
        _write_results(model_dir, results)
    return model_dir, results


def _batches_per_pass(windows):
    """Batches in one pass over a window dataset (counted when tf.data does not know)."""
    count = int(windows.cardinality())
    if count < 0:
        count = sum(1 for _ in windows)
    return max(count, 1)


def _stop_at_step(last_step):
    """A Keras callback ending `fit` once the optimizer has made `last_step` steps (--train_steps)."""
    class StopAtStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) >= last_step:
                self.model.stop_training = True

    return StopAtStep()


def _epoch_checkpoints(model, model_dir, sample, keep):
    """A Keras callback saving the run's state after every epoch, as recognition training does
    (`trainers._loop.Checkpoints`: model_dir/checkpoints/ckpt-<step>, plus the epoch count).

    `restore()` loads the latest checkpoint and returns the number of finished epochs (fit's
    `initial_epoch`). Each epoch and each resumption is a line of logs/train_history.jsonl.
    `sample`: one input batch [B, H, D], to create the variables a checkpoint restores; `keep`:
    how many checkpoints are kept.
    """
    class EpochCheckpoints(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            model(sample)
            model.optimizer.build(model.trainable_variables)
            self.epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.checkpoints = _loop.Checkpoints(model, model.optimizer, model_dir, keep, epochs_done=self.epochs_done)
            self.history = os.path.join(model_dir, "logs", _loop.HISTORY_FILE)

        def _record(self, entry):
            os.makedirs(os.path.dirname(self.history), exist_ok=True)
            with open(self.history, "a") as f:
                f.write(json.dumps(entry) + "\n")

        def _step(self):
            return int(keras.ops.convert_to_numpy(model.optimizer.iterations))

        def restore(self):
            latest = self.checkpoints.restore()
            if not latest:
                return 0
            epoch, step = int(self.epochs_done.numpy()), self._step()
            logging.info("Resumed from %s at step %d (epoch %d)", latest, step, epoch + 1)
            self._record({"event": "resume", "step": step, "epoch": epoch})
            return epoch

        def on_epoch_end(self, epoch, logs=None):
            self.epochs_done.assign(epoch + 1)
            step = self._step()
            self.checkpoints.save(step)
            self._record({"step": step, "epoch": epoch + 1,
                          **{k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}})

    return EpochCheckpoints()


def _constructor_args(name):
    return set(inspect.signature(online.detector_class(name).__init__).parameters)


def _write_results(model_dir, results):
    out = os.path.join(model_dir, "eval")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "online_metrics.json"), "w") as f:
        json.dump(_jsonable(results), f, indent=2, sort_keys=True)


def evaluate(flags):
    """Evaluates the detector of --model_dir on --eval_data (default: the run's); returns the results."""
    model_dir = _get(flags, "model_dir")
    if not model_dir:
        raise OnlineFlagError("--model_dir is required.")
    model, config = _experiment.load_trained_model(model_dir)
    if config.task != TASK:
        raise OnlineFlagError(f"--model_dir={model_dir} holds a {config.task!r} model, not {TASK!r}.")
    settings = config.train.online or _experiment.OnlineConfig()
    overrides = {name: _get(flags, flag) for flag, name in _LAYOUT_FLAGS.items() if _present(flags, flag)}
    if "modalities" in overrides:
        overrides["modalities"] = tuple(overrides["modalities"])
    settings = dataclasses.replace(settings, **overrides)
    spec = _get(flags, "eval_data") or config.train.eval_data
    features_dirs = (list(_get(flags, "eval_features_dirs", [])) or list(_get(flags, "features_dirs", []))
                     or list(settings.eval_features_dirs) or list(settings.features_dirs))
    targets_dir = (_get(flags, "eval_targets_dir") or _get(flags, "targets_dir") or settings.eval_targets_dir
                   or settings.targets_dir)
    ambiguous_index = _get(flags, "ambiguous_index", settings.ambiguous_index)
    chunk_seconds = float(_get(flags, "chunk_seconds") if _present(flags, "chunk_seconds")
                          else settings.chunk_seconds)
    videos = load_videos(spec, features_dirs, targets_dir, model.feature_dim, config.num_classes, flag="--eval_data",
                         source=settings)
    results = evaluate_videos(model, videos, ambiguous_index, chunk_seconds)
    _write_results(model_dir, results)
    return results


def train_main(flags):
    try:
        model_dir, results = train(flags)
    except (OnlineFlagError, FileNotFoundError, ValueError) as e:
        _cli.report("tfvideo-train", e)
        return 2
    print(f"online detector saved to {os.path.join(model_dir, _experiment.MODEL_FILE)}")
    if results is not None:
        _print_metrics(results, f"; metrics in {os.path.join(model_dir, 'eval', 'online_metrics.json')}")
    return 0


def evaluate_main(flags):
    try:
        results = evaluate(flags)
    except (OnlineFlagError, FileNotFoundError, ValueError) as e:
        _cli.report("tfvideo-evaluate", e)
        return 2
    _print_metrics(results, "")
    return 0
