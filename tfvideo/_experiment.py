"""The experiment configuration and the model_dir contract shared by all binaries.

A model_dir holds:
  config.json      the resolved `ExperimentConfig` (written by train before any work)
  labels.txt       class names, one per line (line k = class k)
  model.keras      the final trained model (Keras v3 format)
  checkpoints/     periodic checkpoints; backup/ the BackupAndRestore state
  logs/            TensorBoard event files
  train.lock       while a training run works in it: that run's pid, host and start time
Evaluate, extract_features and export read only this directory.
"""

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
import time

from absl import logging

from tfvideo import data as tfv_data
from tfvideo import models as tfv_models

CONFIG_FILE = "config.json"
LABELS_FILE = "labels.txt"
MODEL_FILE = "model.keras"
CHECKPOINT_DIR = "checkpoints"
LOCK_FILE = "train.lock"


class ConfigError(ValueError):
    """A config.json (or config dict) that does not describe a run; the one-line message names the key."""


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer of a run (flags --optimizer, --learning_rate, --momentum, --weight_decay, --clip_norm).

    `weight_decay` is decoupled (0 disables); `clip_norm` clips gradients to this global norm
    (0 disables); `momentum` applies to SGD only.
    """

    name: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    clip_norm: float = 0.0


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate schedule (flags --lr_schedule, --warmup_epochs, --lr_decay_at, --lr_decay_rate).

    `name`: constant, step or cosine; `decay_at`: fractions of training where a step schedule
    multiplies the rate by `decay_rate`; `warmup_epochs`: linear warm-up length.
    """

    name: str = "constant"
    warmup_epochs: float = 0.0
    decay_at: tuple = ()
    decay_rate: float = 0.1


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """Online detection settings (`--task=online_detection`; see trainers/_online.py).

    `features_dirs` / `targets_dir`: folders of {session}.npy chunk features [T, D_i] and
    one-hot targets [T, C+1]; `history`: training window in chunks; `window_stride`: chunks
    between windows (None: `history`); `ambiguous_index`: target column left out of the loss
    and metrics; `anticipation_weight`: decoder anticipation loss weight used (None: the
    model has none); `chunk_seconds`: seconds per chunk. The community's layouts
    (`tfvideo.data.load_online_sessions`): `oad_format` ("auto", "tfvideo", "suffixed",
    "pickle"), `modalities` (their per-modality keys, in concatenation order), `data_info`
    / `data_info_dataset` (a `data_info.json` and its dataset: session sets and class names),
    `eval_features_dirs` / `eval_targets_dir` (evaluation sources, default the training ones).
    """

    features_dirs: tuple = ()
    targets_dir: str = None
    history: int = 64
    window_stride: int = None
    ambiguous_index: int = None
    anticipation_weight: float = None
    chunk_seconds: float = 0.25
    oad_format: str = "auto"
    modalities: tuple = ("rgb", "flow")
    data_info: str = None
    data_info_dataset: str = None
    eval_features_dirs: tuple = ()
    eval_targets_dir: str = None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a run trains: data, length, optimizer, schedule, devices, checkpoints.

    The one home of every training default: trainers/train.py takes its flag defaults
    from here (`TrainConfig.flag_default`) and fills a TrainConfig from the resolved flags
    (`TrainConfig.from_flags`). `epochs` / `train_steps`: run length (train_steps wins);
    `steps_per_epoch` None: training videos // batch size; `eval_batches` None: all of
    --eval_data after each epoch; `checkpoint_every_steps` 0: at epoch ends only;
    `keep_checkpoints`: how many checkpoints are kept; `recipe`, `recipe_basis` and
    `flip_label_map_source` record how the settings were chosen. `online` holds the
    online-detection settings (None for recognition). `multi_label`: the training list has
    several labels per video (`path l1 l2 ...`): sigmoid / binary cross-entropy, and
    evaluation by mean average precision (MMAction2's `multi_class`).
    """

    train_data: str = None
    eval_data: str = None
    batch_size: int = 8
    epochs: int = None
    train_steps: int = None
    steps_per_epoch: int = None
    eval_batches: int = None
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    partial_bn: bool = False
    sync_batchnorm: bool = False
    strategy: str = "default"
    remat: bool = False
    mixed_precision: str = None
    jit_compile: bool = False
    seed: int = 0
    checkpoint_every_steps: int = 100
    keep_checkpoints: int = 3
    log_every_steps: int = 10
    on_error: str = "raise"
    shuffle_buffer: int = 512
    init_checkpoint: str = None
    recipe: str = None
    recipe_basis: str = None
    flip_label_map_source: str = None
    online: OnlineConfig = None
    multi_label: bool = False

    @classmethod
    def from_dict(cls, values, where="train"):
        """A TrainConfig from its JSON object, or from flat flag values / a previous version's dict.

        Flat keys named like the flags (`learning_rate`, `lr_schedule`, `history`, ...; the
        layout config.json had before TrainConfig) go to their group. Raises ConfigError
        naming the first unknown key.
        """
        values = {k: v for k, v in values.items() if k not in _DROPPED_KEYS}
        groups = {}
        for key, (group, field) in _FLAT_KEYS.items():
            if key in values and not (key == "optimizer" and isinstance(values[key], dict)):
                groups.setdefault(group, {})[field] = values.pop(key)
        for group, fields in groups.items():
            nested = values.get(group)
            values[group] = {**(nested if isinstance(nested, dict) else {}), **fields}
        return _from_dict(cls, values, where)

    @classmethod
    def from_flags(cls, flag_values):
        """A TrainConfig from {flag name: value} (flags not in the config are an error; None: the default)."""
        return cls.from_dict({k: v for k, v in flag_values.items() if v is not None}, where="flags")

    @staticmethod
    def flag_default(name):
        """The default of the setting that flag `name` fills (the flag's own default)."""
        if name in _FLAT_KEYS:
            group, field = _FLAT_KEYS[name]
            default = getattr(_DEFAULT_GROUPS[group], field)
        else:
            default = getattr(TrainConfig(), name)
        return list(default) if isinstance(default, tuple) else default


# Flag (and pre-TrainConfig config.json key) -> (group, field) of the nested settings.
_FLAT_KEYS = {
    "optimizer": ("optimizer", "name"), "learning_rate": ("optimizer", "learning_rate"),
    "momentum": ("optimizer", "momentum"), "weight_decay": ("optimizer", "weight_decay"),
    "clip_norm": ("optimizer", "clip_norm"),
    "lr_schedule": ("schedule", "name"), "warmup_epochs": ("schedule", "warmup_epochs"),
    "lr_decay_at": ("schedule", "decay_at"), "lr_decay_rate": ("schedule", "decay_rate"),
    **{name: ("online", name) for name in ("features_dirs", "targets_dir", "history", "window_stride",
                                           "ambiguous_index", "anticipation_weight", "chunk_seconds")},
}
# Keys of the previous layout that are no setting (the label map's names are config.labels / labels.txt).
_DROPPED_KEYS = ("label_map",)
_DEFAULT_GROUPS = {"optimizer": OptimizerConfig(), "schedule": ScheduleConfig(), "online": OnlineConfig()}


def _from_dict(cls, values, where):
    """`cls(**values)` with nested dataclasses built from dicts and lists made tuples; ConfigError
    naming `where.key` for a key `cls` does not have."""
    if isinstance(values, cls):
        return values
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected an object of {cls.__name__} settings, got {values!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            raise ConfigError(f"{where}.{key}: unknown {cls.__name__} setting (known: {', '.join(fields)}).")
    kwargs = {}
    for key, value in values.items():
        default = fields[key].default
        group = _DEFAULT_GROUPS.get(key)
        if group is not None and value is not None:
            value = _from_dict(type(group), value, f"{where}.{key}")
        elif isinstance(default, tuple) and isinstance(value, (list, tuple)):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything needed to rebuild a run's model and its input pipeline.

    `clip` is the run's `tfvideo.data.ClipSpec` as its config dict (sampler, preprocessing,
    modality; None: the spec's defaults): training samples with `spec.sampler(training=True)`,
    evaluation and export with the test-time rule. A config.json of the previous layout
    (`sampler` and `preprocess` dicts) reads into `clip`. `train` is the run's `TrainConfig` (a dict
    given here, e.g. from a config.json of a previous version, is converted). Frozen:
    derive a changed config with `dataclasses.replace`.
    """

    model: str = "tsm_tiny"
    num_classes: int = 0
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    labels: list = dataclasses.field(default_factory=list)
    task: str = "recognition"
    clip: dict = None
    # The layout before the clip spec, still taken by the constructor: folded into `clip`.
    sampler: dataclasses.InitVar[dict] = None
    preprocess: dataclasses.InitVar[dict] = None
    train: TrainConfig = TrainConfig()
    feature_spec: dict = None  # A tfvideo.feature_columns FeatureLayer spec (its JSON object) applied to inputs.

    def __post_init__(self, sampler, preprocess):
        if not isinstance(self.train, TrainConfig):
            object.__setattr__(self, "train", TrainConfig.from_dict(self.train or {}))
        clip = self.clip
        if clip is None and (sampler or preprocess):
            clip = {"sampler": sampler or None, "preprocess": preprocess or None}
        elif clip is not None and (sampler or preprocess):
            raise ValueError("ExperimentConfig: give clip= or the older sampler= / preprocess=, not both.")
        if clip is not None:  # Validated and normalised (a ClipSpec or its dict -> the dict).
            object.__setattr__(self, "clip", tfv_data.ClipSpec.from_config(clip).get_config())

    def build_model(self):
        return tfv_models.get(self.model, num_classes=self.num_classes, **self.model_kwargs)

    @property
    def clip_spec(self):
        """The run's `tfvideo.data.ClipSpec`."""
        return tfv_data.ClipSpec.from_config(self.clip) if self.clip is not None else tfv_data.ClipSpec()

    @property
    def clip_sampler(self):
        """The clip spec's sampler config dict (what a checkpoint's input depends on)."""
        return self.clip_spec.sampler_config

    def build_sampler(self, training, num_clips=1):
        return self.clip_spec.sampler(training, num_clips=1 if training else num_clips)

    def build_preprocess(self, **overrides):
        return dataclasses.replace(self.clip_spec.preprocess, **overrides)

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text, where=CONFIG_FILE):
        """The config of a config.json text; ConfigError naming `where` and the first unknown key."""
        values = json.loads(text)
        fields = {f.name for f in dataclasses.fields(cls)} | _OLD_LAYOUT_KEYS
        for key in values:
            if key not in fields:
                raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(fields))}).")
        values["train"] = TrainConfig.from_dict(values.get("train") or {}, where=f"{where}: train")
        return cls(**values)

    def write(self, model_dir):
        """Writes config.json and labels.txt atomically (readers never see a partial file).

        Raises ModelDirError naming the directory when it cannot be written.
        """
        try:
            os.makedirs(model_dir, exist_ok=True)
            _write_atomic(os.path.join(model_dir, CONFIG_FILE), self.to_json())
            _write_atomic(os.path.join(model_dir, LABELS_FILE), "\n".join(self.labels) + ("\n" if self.labels else ""))
        except OSError as e:
            raise ModelDirError(f"--model_dir={model_dir} cannot be written: {e.strerror or e}"
                                f"{f' ({e.filename})' if e.filename else ''}.") from e

    @classmethod
    def read(cls, model_dir):
        path = os.path.join(model_dir, CONFIG_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(f"--model_dir={model_dir} holds no {CONFIG_FILE}: not a tfvideo model_dir")
        with open(path) as f:
            return cls.from_json(f.read(), where=path)


# config.json keys of the layout before the clip spec, read into `clip`.
_OLD_LAYOUT_KEYS = {"sampler", "preprocess"}


class ModelDirError(OSError):
    """A model_dir that cannot be written (permissions, full disk); the message names it."""


class ModelDirInUseError(ModelDirError):
    """A model_dir another live training run holds (`model_dir_lock`); the message names its pid and host."""


def _describe_holder(text):
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on host {holder['host']}, started {holder['started']}"
    except (ValueError, TypeError, KeyError):
        return "an unknown process"


def _read_fd(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096).decode(errors="replace")


@contextlib.contextmanager
def model_dir_lock(model_dir, prog="tfvideo-train"):
    """Holds model_dir/train.lock for the block: one training run at a time per model_dir.

    The lock is an advisory `flock` on the file, which the kernel drops when its holder
    exits in any way (SIGKILL included), so a lock left by a dead run is stale whatever
    its pid: it is taken over, with a warning naming the run that left it. The file holds
    the holder's pid, host and start time for the messages; it is removed at the end.

    Raises:
      ModelDirInUseError: a live run holds the lock (naming its pid, host and the file).
      ModelDirError: model_dir cannot be created.
    """
    path = os.path.join(model_dir, LOCK_FILE)
    fd = None
    try:
        os.makedirs(model_dir, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe_holder(_read_fd(fd))
                os.close(fd)
                fd = None
                raise ModelDirInUseError(
                    f"--model_dir={model_dir} is in use by another {prog} run ({holder}; lock {path}): wait for it to "
                    "finish or use another --model_dir.") from None
            if os.path.exists(path) and os.path.samestat(os.fstat(fd), os.stat(path)):
                break
            os.close(fd)  # Its holder removed the file as this run opened it: lock the new one.
            fd = None
        left = _read_fd(fd)
        if left.strip():
            logging.warning("Taking over the stale lock %s of a run that is no longer running (%s).", path,
                            _describe_holder(left))
        mine = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime()), "prog": prog}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(mine) + "\n").encode(), 0)
    except ModelDirInUseError:
        raise
    except OSError as e:
        if fd is not None:
            os.close(fd)
        raise ModelDirError(f"--model_dir={model_dir} cannot be written: {e.strerror or e}"
                            f"{f' ({e.filename})' if e.filename else ''}.") from e
    try:
        yield path
    finally:
        try:
            os.remove(path)  # Before unlocking: a run waiting on this file then locks a new one.
        except OSError:
            pass
        os.close(fd)


# The fields that make a model_dir's checkpoints loadable: a rerun must match them to resume.
MODEL_FIELDS = ("model", "num_classes", "model_kwargs", "clip_sampler", "task", "feature_spec")


def has_training_state(model_dir):
    """True once a run in `model_dir` saved a checkpoint or its final model."""
    return (os.path.exists(os.path.join(model_dir, CHECKPOINT_DIR, "checkpoint"))
            or os.path.exists(os.path.join(model_dir, MODEL_FILE)))


def check_model_dir(model_dir, config, fields=MODEL_FIELDS):
    """ValueError when `model_dir` holds training state of another model than `config`'s.

    The same model resumes. A model_dir with a config but no checkpoint yet (a run that
    stopped before its first save, e.g. on bad data) takes the new config: nothing is lost.
    """
    if not os.path.exists(os.path.join(model_dir, CONFIG_FILE)) or not has_training_state(model_dir):
        return
    old = ExperimentConfig.read(model_dir)
    for field in fields:
        if getattr(old, field) != getattr(config, field):
            raise ValueError(f"--model_dir={model_dir} holds checkpoints of a different model ({field}: "
                             f"{getattr(old, field)!r}, requested {getattr(config, field)!r}); use a new --model_dir.")


def _write_atomic(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):  # A failed write (full disk) leaves no temporary file behind.
            os.remove(tmp)


@contextlib.contextmanager
def dtype_policy(config):
    """The Keras global dtype policy the run trained with (`--mixed_precision`), for a block.

    A model saved under mixed precision records the policy only on the layers its config
    lists; the layers a model builds in its constructor (a recognizer's backbone, say) take
    the global policy at load time. Loading or building under the run's policy gives back
    the model that was trained.
    """
    import keras

    policy = config.train.mixed_precision or "float32"
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(previous)


def load_model_file(path, config):
    """`keras.saving.load_model(path)` under the run's dtype policy."""
    import keras

    with dtype_policy(config):
        return keras.saving.load_model(path)


def load_trained_model(model_dir):
    """The final `model.keras` of a model_dir, with its config."""
    config = ExperimentConfig.read(model_dir)
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"--model_dir={model_dir} holds no {MODEL_FILE}: training has not finished")
    return load_model_file(path, config), config
