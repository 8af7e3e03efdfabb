"""The experiment configuration and the model_dir contract shared by all binaries.

A model_dir holds:
  config.json      the resolved `ExperimentConfig` (written by train before any work)
  labels.txt       class names, one per line (line k = class k)
  model.keras      the final trained model (Keras v3 format)
  checkpoints/     periodic checkpoints; backup/ the BackupAndRestore state
  logs/            TensorBoard event files
Evaluate, extract_features and export read only this directory.
"""

import contextlib
import dataclasses
import json
import os

from tfvideo import data as tfv_data
from tfvideo import models as tfv_models
from tfvideo import online as _online  # noqa: F401 -- a model.keras may hold an online detector: registers its Keras classes.

CONFIG_FILE = "config.json"
LABELS_FILE = "labels.txt"
MODEL_FILE = "model.keras"
CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass
class ExperimentConfig:
    """Everything needed to rebuild a run's model and its input pipeline.

    `sampler` is a `tfvideo.data.sampler_from_config` dict for *training*; evaluation
    and export use the same sampler with `training=False`. `preprocess` holds
    `tfvideo.data.PreprocessConfig` fields. `train` holds the resolved training flags
    (optimizer, schedule, strategy, remat, data paths, ...) as written by trainers/train.py.
    """

    model: str = "tsm_tiny"
    num_classes: int = 0
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    labels: list = dataclasses.field(default_factory=list)
    task: str = "recognition"
    sampler: dict = dataclasses.field(default_factory=lambda: {"type": "segment", "num_segments": 8})
    preprocess: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    feature_spec: dict = None  # A tfvideo.feature_columns FeatureLayer spec (its JSON object) applied to inputs.

    def build_model(self):
        return tfv_models.get(self.model, num_classes=self.num_classes, **self.model_kwargs)

    def build_sampler(self, training, num_clips=1):
        cfg = dict(self.sampler)
        cfg["training"] = training
        cfg["num_clips"] = 1 if training else num_clips
        return tfv_data.sampler_from_config(cfg)

    def build_preprocess(self, **overrides):
        return tfv_data.PreprocessConfig(**{**self.preprocess, **overrides})

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls(**json.loads(text))

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
            return cls.from_json(f.read())


class ModelDirError(OSError):
    """A model_dir that cannot be written (permissions, full disk); the message names it."""


# The fields that make a model_dir's checkpoints loadable: a rerun must match them to resume.
MODEL_FIELDS = ("model", "num_classes", "model_kwargs", "sampler", "task", "feature_spec")


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

    policy = config.train.get("mixed_precision") or "float32"
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
