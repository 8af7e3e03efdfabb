"""Distribution strategies for the trainers: default, mirrored (all local GPUs) and
multi-worker (from TF_CONFIG), plus the chief/worker roles used for writing files."""

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def tf_config():
    """The parsed TF_CONFIG environment variable ({} when unset)."""
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None


def task_role():
    """(task_type, task_index) from TF_CONFIG; ("chief", 0) for a single process."""
    task = tf_config().get("task", {})
    return task.get("type", "chief"), int(task.get("index", 0))


def is_chief():
    """True for the process that writes the model_dir (chief, or worker 0 without a chief)."""
    task_type, index = task_role()
    if task_type == "chief":
        return True
    has_chief = "chief" in tf_config().get("cluster", {})
    return task_type == "worker" and index == 0 and not has_chief


def make_strategy(name, devices=None):
    """Builds a `tf.distribute.Strategy`.

    Args:
      name: "default" (one device), "mirrored" (all visible GPUs, or `devices`; the CPU
        when there are none) or "multi_worker" (MultiWorkerMirroredStrategy from TF_CONFIG).
      devices: optional device list for "mirrored" (e.g. two logical CPUs in tests).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if not tf_config().get("cluster"):
            raise ValueError("--strategy=multi_worker needs TF_CONFIG with a 'cluster' (and 'task') entry.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--strategy={name!r} is not one of {STRATEGIES}.")
