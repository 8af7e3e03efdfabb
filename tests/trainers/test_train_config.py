"""The typed training config (`tfvideo._experiment.TrainConfig`): one home for each default,
flags that fill it, config.json round trips, configs of the previous version, unknown keys."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import trainers_testlib as lib

from tfvideo import _experiment, data
from trainers import _task

# config.json as the version before TrainConfig wrote it (train: the flat flag values), verbatim
# from a tfvideo-train run: recipe tsm on tsm_tiny, step schedule.
OLD_RECOGNITION_CONFIG = """{
  "feature_spec": null,
  "labels": ["move_left", "move_right"],
  "model": "tsm_tiny",
  "model_kwargs": {"dropout": 0.5, "num_segments": 4},
  "num_classes": 2,
  "preprocess": {"crop_size": 32, "flip": true, "resize_short": 32},
  "sampler": {"num_segments": 4, "type": "segment"},
  "task": "recognition",
  "train": {
    "batch_size": 4, "checkpoint_every_steps": 100, "clip_norm": 20.0, "epochs": 2, "eval_data": "val.txt",
    "flip_label_map_source": "none", "init_checkpoint": null, "jit_compile": false, "label_map": "labels.txt",
    "learning_rate": 0.000625, "log_every_steps": 10, "lr_decay_at": [0.4, 0.8], "lr_decay_rate": 0.1,
    "lr_schedule": "step", "mixed_precision": null, "momentum": 0.9, "on_error": "skip", "optimizer": "sgd",
    "partial_bn": false, "recipe": "tsm", "remat": false, "seed": 3, "shuffle_buffer": 64,
    "steps_per_epoch": 5, "strategy": "default", "sync_batchnorm": false, "train_data": "train.txt",
    "train_steps": null, "warmup_epochs": 0.0, "weight_decay": 0.0001
  }
}"""

# The online trainer's config.json of the previous version (train: its own flat settings).
OLD_ONLINE_CONFIG = """{
  "feature_spec": null, "labels": ["background", "a", "b"], "model": "oadtr_tiny",
  "model_kwargs": {"feature_dim": 4}, "num_classes": 3, "preprocess": {}, "sampler": {},
  "task": "online_detection",
  "train": {"ambiguous_index": null, "anticipation_weight": 0.5, "chunk_seconds": 0.5, "eval_data": null,
            "features_dirs": ["/data/rgb", "/data/flow"], "history": 8, "seed": 0, "targets_dir": "/data/targets",
            "train_data": "videos.tfrecord", "window_stride": null}
}"""


def test_defaults_live_in_the_dataclass():
    train = _experiment.TrainConfig()
    assert (train.batch_size, train.shuffle_buffer, train.keep_checkpoints, train.eval_batches) == (8, 512, 3, None)
    assert train.optimizer == _experiment.OptimizerConfig("sgd", 0.01, 0.9, 0.0, 0.0)
    assert train.schedule == _experiment.ScheduleConfig("constant", 0.0, (), 0.1)
    assert train.online is None
    assert _experiment.TrainConfig.flag_default("learning_rate") == 0.01
    assert _experiment.TrainConfig.flag_default("lr_decay_at") == []  # A list: DEFINE_list's default.
    assert _experiment.TrainConfig.flag_default("history") == _experiment.OnlineConfig().history == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        train.batch_size = 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        _experiment.ExperimentConfig().train = train


def test_round_trip_through_config_json(tmp_path):
    train = _experiment.TrainConfig(
        train_data="a.txt", eval_data="b.txt", batch_size=2, train_steps=7, eval_batches=3, keep_checkpoints=1,
        optimizer=_experiment.OptimizerConfig("adamw", 3e-4, weight_decay=0.05, clip_norm=1.0),
        schedule=_experiment.ScheduleConfig("step", 0.5, (0.25, 0.75), 0.5), remat=True, recipe="tsm",
        online=_experiment.OnlineConfig(features_dirs=("r", "f"), history=16, ambiguous_index=21))
    config = _experiment.ExperimentConfig(model="tsn_tiny", num_classes=3, labels=["a", "b", "c"], train=train)
    config.write(str(tmp_path))
    back = _experiment.ExperimentConfig.read(str(tmp_path))
    assert back == config and back.train.schedule.decay_at == (0.25, 0.75)
    with open(tmp_path / "config.json") as f:
        written = json.load(f)["train"]
    assert written["optimizer"] == {"name": "adamw", "learning_rate": 3e-4, "momentum": 0.9, "weight_decay": 0.05,
                                    "clip_norm": 1.0}
    assert written["online"]["features_dirs"] == ["r", "f"] and written["keep_checkpoints"] == 1


def test_config_json_of_the_previous_version_still_reads(tmp_path):
    (tmp_path / "config.json").write_text(OLD_RECOGNITION_CONFIG)
    config = _experiment.ExperimentConfig.read(str(tmp_path))
    train = config.train
    assert train.optimizer == _experiment.OptimizerConfig("sgd", 0.000625, 0.9, 0.0001, 20.0)
    assert train.schedule == _experiment.ScheduleConfig("step", 0.0, (0.4, 0.8), 0.1)
    assert (train.batch_size, train.epochs, train.steps_per_epoch, train.seed) == (4, 2, 5, 3)
    assert (train.on_error, train.shuffle_buffer, train.recipe, train.train_data) == ("skip", 64, "tsm", "train.txt")
    assert (train.keep_checkpoints, train.eval_batches, train.online) == (3, None, None)  # Not in the old file.
    # The optimizer it builds is the one the old run trained with: lr 0.000625, /10 at 40% and 80% of 10 steps.
    schedule = _task.lr_schedule(train, total_steps=10, steps_per_epoch=5)
    rates = [float(schedule(step)) for step in (0, 3, 4, 7, 8)]
    np.testing.assert_allclose(rates, [6.25e-4, 6.25e-4, 6.25e-5, 6.25e-5, 6.25e-6], rtol=1e-5)
    optimizer = _task.build_optimizer(train, total_steps=10, steps_per_epoch=5)
    assert type(optimizer).__name__ == "SGD"
    assert (optimizer.momentum, optimizer.weight_decay, optimizer.global_clipnorm) == (0.9, 1e-4, 20.0)

    (tmp_path / "config.json").write_text(OLD_ONLINE_CONFIG)
    online = _experiment.ExperimentConfig.read(str(tmp_path))
    assert online.train.online == _experiment.OnlineConfig(
        features_dirs=("/data/rgb", "/data/flow"), targets_dir="/data/targets", history=8, anticipation_weight=0.5,
        chunk_seconds=0.5)
    assert online.train.train_data == "videos.tfrecord"


@pytest.mark.parametrize("train, named", [
    ({"batch_size": 4, "shuffle_bufer": 16}, "train.shuffle_bufer: unknown TrainConfig setting"),
    ({"optimizer": {"name": "adam", "lr": 0.1}}, "train.optimizer.lr: unknown OptimizerConfig setting"),
    ({"schedule": {"name": "cosine", "warmup": 1}}, "train.schedule.warmup: unknown ScheduleConfig setting"),
    ({"online": {"histroy": 8}}, "train.online.histroy: unknown OnlineConfig setting"),
])
def test_unknown_key_is_a_one_line_error_naming_it(tmp_path, train, named):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": "tsm_tiny", "num_classes": 2, "train": train}))
    with pytest.raises(_experiment.ConfigError) as raised:
        _experiment.ExperimentConfig.read(str(tmp_path))
    message = str(raised.value)
    assert message.startswith(f"{path}: {named} (known: ") and "\n" not in message, message


def test_unknown_top_level_key_is_named(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": "tsm_tiny", "num_clases": 2}))
    with pytest.raises(_experiment.ConfigError, match=rf"^{path}: unknown key 'num_clases' \(known: "):
        _experiment.ExperimentConfig.read(str(tmp_path))


_FLAGS_SCRIPT = r"""
import dataclasses, json, sys
from absl import flags
from tfvideo import _experiment
from trainers import _online, train
FLAGS = flags.FLAGS
# Every training flag's default is the TrainConfig default (nothing repeats a number).
names = list(train._TRAIN_FLAGS) + ["history", "chunk_seconds"]
mismatch = {n: [FLAGS[n].default, _experiment.TrainConfig.flag_default(n)] for n in names
            if n != "dropout" and FLAGS[n].default != _experiment.TrainConfig.flag_default(n)}
FLAGS(["train"] + sys.argv[1:])
config = train.build_config()
print("OUT" + json.dumps({"mismatch": mismatch, "config": json.loads(config.to_json()),
                          "type": type(config.train).__name__}))
"""


def test_flags_fill_the_train_config(moving_shapes, tmp_path):
    argv = lib.TINY + [f"--train_data={moving_shapes['train']}", f"--label_map={moving_shapes['label_map']}",
                       f"--model_dir={tmp_path / 'run'}", "--train_steps=3", "--keep_checkpoints=2",
                       "--eval_batches=1", "--lr_schedule=step", "--lr_decay_at=0.5", "--shuffle_buffer=32",
                       "--train_crop=random_resized"]
    proc = lib.subprocess_python(_FLAGS_SCRIPT, argv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("OUT", 1)[1])
    assert out["mismatch"] == {} and out["type"] == "TrainConfig"
    train = out["config"]["train"]
    assert (train["train_steps"], train["keep_checkpoints"], train["eval_batches"], train["shuffle_buffer"]) == (
        3, 2, 1, 32)
    assert train["schedule"] == {"name": "step", "warmup_epochs": 0.0, "decay_at": [0.5], "decay_rate": 0.1}
    assert train["optimizer"]["learning_rate"] == 0.01 and train["online"] is None
    assert "label_map" not in train and "learning_rate" not in train  # Only the typed layout is written.
    assert out["config"]["clip"]["preprocess"]["train_crop"] == "random_resized"  # --train_crop reaches the clip.


def test_keep_checkpoints_and_eval_batches_reach_the_trainer(moving_shapes, tmp_path, monkeypatch):
    from trainers import _loop

    config = _experiment.ExperimentConfig(
        model="tsm_tiny", num_classes=4, labels=list(data.MOVING_SHAPES_CLASSES), model_kwargs={"num_segments": 4, "dropout": 0.0},
        sampler={"type": "segment", "num_segments": 4}, preprocess={"crop_size": 32, "resize_short": 32},
        train=_experiment.TrainConfig(train_data=moving_shapes["train"], eval_data=moving_shapes["val"], batch_size=2,
                                      train_steps=3, steps_per_epoch=3, checkpoint_every_steps=1, keep_checkpoints=2,
                                      eval_batches=1))
    asked = []
    evaluate = _loop.Trainer.evaluate
    monkeypatch.setattr(_loop.Trainer, "evaluate",
                        lambda self, source, max_batches=None: asked.append(max_batches) or evaluate(self, source,
                                                                                                     max_batches))
    trainer = _loop.Trainer(config, str(tmp_path), tf.distribute.get_strategy())
    trainer.fit(verbose=0)
    kept = sorted(name for name in os.listdir(tmp_path / "checkpoints") if name.endswith(".index"))
    assert kept == ["ckpt-2.index", "ckpt-3.index"]  # Steps 1, 2, 3 saved; the newest 2 kept.
    assert asked == [1]
