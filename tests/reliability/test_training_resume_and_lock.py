"""tfvideo-train on a damaged checkpoint and on a model_dir another run holds (issue 26, items 10 and 11).

Before: a truncated latest checkpoint stopped the run with `tfvideo-train: error: IndexError:
Read less bytes than requested` (no file named, no fallback); two runs on one model_dir both
"succeeded", writing the same checkpoints and history in turn.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
from shardfiles import REPO, TINY_TRAIN, clip_record, run_binary, write_shard_set

from tfvideo import _experiment
from trainers import _loop


def _tiny_state(model_dir):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    return model, _loop.Checkpoints(model, optimizer, model_dir, max_to_keep=3)


def test_restore_falls_back_to_the_newest_readable_checkpoint_and_names_the_damaged_file(tmp_path, caplog):
    model_dir = str(tmp_path)
    model, checkpoints = _tiny_state(model_dir)
    for step in (1, 2, 3):
        model.layers[0].kernel.assign(np.full((3, 2), step, np.float32))
        checkpoints.save(step)
    prefix = os.path.join(model_dir, "checkpoints", "ckpt-")
    data_file = f"{prefix}3.data-00000-of-00001"
    os.truncate(data_file, os.path.getsize(data_file) // 2)  # A copy cut short.
    model, checkpoints = _tiny_state(model_dir)
    with caplog.at_level(logging.WARNING, logger="absl"):
        assert checkpoints.restore() == f"{prefix}2"
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), np.full((3, 2), 2, np.float32))
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"Unreadable checkpoint {data_file}: IndexError: Read less bytes than requested; resuming from {prefix}2, "
        "the newest readable one."]
    # A damaged index is named as such; with no readable checkpoint left the error lists each one.
    for step in (1, 2):
        with open(f"{prefix}{step}.index", "r+b") as f:
            f.truncate(10)
    model, checkpoints = _tiny_state(model_dir)
    with pytest.raises(_experiment.ModelDirError) as info:
        checkpoints.restore()
    message = str(info.value)
    assert message.startswith(f"no readable checkpoint in {os.path.dirname(prefix)}: {data_file}: IndexError")
    assert f"; {prefix}2.index: " in message and f"; {prefix}1.index: " in message


def _history(model_dir):
    with open(os.path.join(model_dir, "logs", "train_history.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_train_resumes_past_a_truncated_latest_checkpoint(tmp_path):
    write_shard_set(str(tmp_path), "train", 2, [clip_record(i) for i in range(8)])
    model_dir = str(tmp_path / "run")
    args = [*TINY_TRAIN, f"--train_data={tmp_path / 'train-*'}", f"--model_dir={model_dir}", "--checkpoint_every_steps=1"]
    first = run_binary("train", [*args, "--train_steps=3"])
    assert first.returncode == 0, first.stderr[-3000:]
    losses = {e["step"]: e["loss"] for e in _history(model_dir) if "loss" in e}
    data_file = os.path.join(model_dir, "checkpoints", "ckpt-3.data-00000-of-00001")
    os.truncate(data_file, os.path.getsize(data_file) // 2)
    resumed = run_binary("train", [*args, "--train_steps=4"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    warning = (f"Unreadable checkpoint {data_file}: IndexError: Read less bytes than requested; resuming from "
               f"{os.path.join(model_dir, 'checkpoints', 'ckpt-2')}, the newest readable one.")
    assert warning in resumed.stderr and "training done: step=4" in resumed.stdout
    after = _history(model_dir)[len(losses):]
    assert after[0] == {"event": "resume", "step": 2} and [e["step"] for e in after[1:]] == [3, 4]
    assert after[1]["loss"] == pytest.approx(losses[3], abs=1e-5)  # Step 3 again, from step 2's exact state.


def test_a_second_lock_on_a_model_dir_names_the_holder_and_a_released_one_is_gone(tmp_path):
    model_dir = str(tmp_path / "run")
    with _experiment.model_dir_lock(model_dir) as path:
        with pytest.raises(_experiment.ModelDirInUseError) as info:
            with _experiment.model_dir_lock(model_dir):
                pass
        assert f"(pid {os.getpid()} on host {socket.gethostname()}, started " in str(info.value)
        assert str(info.value).startswith(f"--model_dir={model_dir} is in use by another tfvideo-train run")
        assert f"lock {path})" in str(info.value)
    assert not os.path.exists(path)


_HOLDER = r"""
import sys, time
from tfvideo import _experiment
with _experiment.model_dir_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_a_second_train_exits_2_naming_the_live_run_and_a_dead_runs_lock_is_taken_over(tmp_path):
    write_shard_set(str(tmp_path), "train", 2, [clip_record(i) for i in range(8)])
    model_dir = tmp_path / "run"
    args = [*TINY_TRAIN, f"--train_data={tmp_path / 'train-*'}", f"--model_dir={model_dir}", "--train_steps=1"]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), CUDA_VISIBLE_DEVICES="")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(model_dir)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        second = run_binary("train", args)
        assert second.returncode == 2, second.stderr[-3000:]
        assert second.stderr.splitlines()[-1].startswith(
            f"tfvideo-train: error: --model_dir={model_dir} is in use by another tfvideo-train run "
            f"(pid {holder.pid} on host {socket.gethostname()}, started ")
        assert sorted(os.listdir(model_dir)) == [_experiment.LOCK_FILE]  # It wrote nothing.
    finally:
        holder.send_signal(signal.SIGKILL)  # Dies holding the lock: the file stays, the flock goes.
        holder.wait()
    assert json.loads((model_dir / _experiment.LOCK_FILE).read_text())["pid"] == holder.pid
    third = run_binary("train", args)
    assert third.returncode == 0, third.stderr[-3000:]
    assert (f"Taking over the stale lock {model_dir / _experiment.LOCK_FILE} of a run that is no longer running "
            f"(pid {holder.pid} on host {socket.gethostname()}, started ") in third.stderr
    assert "training done: step=1" in third.stdout and not (model_dir / _experiment.LOCK_FILE).exists()
