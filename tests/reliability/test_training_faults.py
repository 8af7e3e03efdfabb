"""tfvideo-train under bad input and faults (issue 16): numbers that cannot work, labels outside
the label map, a killed online-detection run, an unwritable model_dir, a full disk.

The binary runs in subprocesses (real flag parsing, real SIGKILL); tiny models and data."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "trainers"))
import trainers_testlib as lib  # noqa: E402

from tfvideo import data, online  # noqa: E402

pytestmark = pytest.mark.slow


def _run_script(script, *args):
    proc = subprocess.run([sys.executable, "-c", script, *args], check=False, cwd=lib.REPO, env=lib.env(),
                          capture_output=True, text=True, timeout=300)
    return proc


def _error_line(stderr, prog="tfvideo-train"):
    """The binary's one error line (TensorFlow may still print its start-up lines before it in these runs)."""
    ours = [line for line in stderr.splitlines() if line.startswith(f"{prog}:")]
    assert len(ours) == 1 and ours[0] == stderr.splitlines()[-1], stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return ours[0]


# Runs trainers/train.py's main on each argv in one process; records the error or the return code.
_MAIN_SCRIPT = r"""
import contextlib, io, json, sys
from absl import flags
from trainers import train
results = {}
for name, argv in json.loads(sys.argv[1]).items():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["tfvideo-train"] + argv)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            rc = train.main(["tfvideo-train"])
        results[name] = ["returned", rc, err.getvalue()]
    except Exception as e:
        results[name] = [type(e).__name__, str(e), err.getvalue()]
print("RESULTS" + json.dumps(results))
"""


def _main_results(cases):
    proc = _run_script(_MAIN_SCRIPT, json.dumps(cases))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULTS", 1)[1])


def test_non_positive_numbers_are_usage_errors_and_nothing_is_written(moving_shapes, tmp_path):
    base = lib.TINY + [f"--train_data={moving_shapes['train']}", f"--label_map={moving_shapes['label_map']}"]
    bad = {  # flag=value -> the range the message states
        "epochs=0": ">= 1", "epochs=-1": ">= 1", "train_steps=-5": ">= 1", "train_steps=0": ">= 1",
        "crop_size=0": ">= 1", "num_segments=0": ">= 1", "batch_size=0": ">= 1", "batch_size=-4": ">= 1",
        "steps_per_epoch=0": ">= 1", "learning_rate=0": "> 0", "learning_rate=-0.01": "> 0",
        "momentum=1.5": "in [0, 1)", "dropout=1": "in [0, 1)", "log_every_steps=0": ">= 1",
        "resize_short=-1": ">= 0", "lr_decay_at=0.5,1.5": "in (0, 1)", "warmup_epochs=-1": ">= 0",
    }
    cases = {}
    for k, flag in enumerate(bad):
        epochs = [] if flag.startswith(("epochs", "train_steps")) else ["--epochs=1"]
        cases[flag] = base + epochs + [f"--{flag}", f"--model_dir={tmp_path / f'run{k}'}"]
    online_dir = tmp_path / "online"
    cases["online epochs=0"] = ["--task=online_detection", "--model=gru_tiny", "--epochs=0",
                                f"--train_data={tmp_path / 'sessions.txt'}", f"--model_dir={online_dir}"]
    cases["online history=0"] = ["--task=online_detection", "--model=gru_tiny", "--epochs=2", "--history=0",
                                 f"--train_data={tmp_path / 'sessions.txt'}", f"--model_dir={online_dir}"]
    results = _main_results(cases)
    for flag, rule in bad.items():
        kind, text, _ = results[flag]
        assert kind == "UsageError" and text == f"--{flag} must be {rule}.", (flag, results[flag])
    assert results["online epochs=0"][:2] == ["UsageError", "--epochs=0 must be >= 1."]
    # The online task checks its own flags too (reported by the binary as one line, exit 2).
    assert results["online history=0"][:2] == ["returned", 2]
    assert results["online history=0"][2].strip() == "tfvideo-train: error: --history=0 must be >= 1."
    assert sorted(os.listdir(tmp_path)) == [], "a rejected run wrote something"


def test_preprocess_config_rejects_non_positive_sizes():
    for field, value in (("crop_size", 0), ("crop_size", -8), ("resize_short", -1), ("color_jitter", -0.1)):
        with pytest.raises(ValueError, match=f"PreprocessConfig.{field}={value}"):
            data.PreprocessConfig(**{field: value})
    with pytest.raises(ValueError, match="PreprocessConfig.std"):
        data.PreprocessConfig(std=(0.2, 0.0, 0.2))
    assert data.PreprocessConfig(resize_short=0).resize_short == 0  # 0: no resizing (documented), not a default.
    with pytest.raises(ValueError, match="num_segments=0"):
        data.SegmentSampler(num_segments=0)
    with pytest.raises(ValueError, match="clip_len=-2"):
        data.DenseSampler(clip_len=-2)


def _first_line_with_label_at_least(path, n):
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if line.strip() and int(line.split()[-1]) >= n:
                return lineno, int(line.split()[-1])
    raise AssertionError("no such line")


def test_labels_outside_the_label_map_stop_before_training_and_a_rerun_is_not_blocked(moving_shapes, tmp_path):
    two = tmp_path / "two_classes.txt"
    two.write_text("move_left\nmove_right\n")
    model_dir = tmp_path / "run"
    args = lib.TINY + [f"--train_data={moving_shapes['train']}", f"--model_dir={model_dir}", "--train_steps=1"]
    proc = lib.run("train", args + [f"--label_map={two}"])
    assert proc.returncode == 2
    lineno, label = _first_line_with_label_at_least(moving_shapes["train"], 2)
    line = _error_line(proc.stderr)
    assert f"{moving_shapes['train']}:{lineno}: label {label} out of range [0, 2)" in line
    assert f"--label_map={two} has 2 classes" in line
    assert not model_dir.exists()

    # A model_dir left with a config but no checkpoint (as a run that failed on its data left it)
    # takes the corrected run's settings instead of refusing it.
    from tfvideo import _experiment

    _experiment.ExperimentConfig(model="tsm_tiny", num_classes=2, labels=["move_left", "move_right"]).write(
        str(model_dir))
    fixed = lib.run("train", args + [f"--label_map={moving_shapes['label_map']}"])
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert json.loads((model_dir / "config.json").read_text())["num_classes"] == 4
    assert (model_dir / "model.keras").exists()

    # With checkpoints, a different model is still refused (they could not be restored).
    other = lib.run("train", args + [f"--label_map={moving_shapes['label_map']}", "--model=tsn_tiny"])
    assert other.returncode == 2 and "holds checkpoints of a different model" in _error_line(other.stderr)


def test_label_check_names_the_list_line_or_the_shard_record(moving_shapes, tmp_path):
    from trainers import _task

    lineno, label = _first_line_with_label_at_least(moving_shapes["train"], 3)
    with pytest.raises(ValueError, match=rf"{moving_shapes['train']}:{lineno}: label {label} out of range \[0, 3\)"):
        _task.check_labels(moving_shapes["train"], 3)
    records = data.read_annotations(moving_shapes["train"])
    data.prepare_tfrecords(records, str(tmp_path / "shards"), "t", num_shards=2,
                           config=data.PrepareConfig(resize_short=0), workers=1)
    shards = data.match_shards(str(tmp_path / "shards" / "t-*"))
    # Where the first label >= 3 sits: shard and index, read independently of the check.
    import tensorflow as tf

    expected = None
    for shard in shards:
        for i, record in enumerate(tf.data.TFRecordDataset(shard)):
            value = tf.train.SequenceExample.FromString(record.numpy()).context.feature[
                data.LABEL_INDEX_KEY].int64_list.value[0]
            if value >= 3 and expected is None:
                expected = (shard, i, value)
    assert len(shards) == 2 and expected is not None
    shard, index, value = expected
    with pytest.raises(ValueError, match=rf"{shard} record {index}: label {value} is not a class id in \[0, 3\)"):
        _task.check_labels(str(tmp_path / "shards" / "t-*"), 3)
    _task.check_labels(str(tmp_path / "shards" / "t-*"), 4)  # All labels fit 4 classes.


def _write_sessions(root, count, seed):
    names = []
    for k, (features, targets) in enumerate(online.make_onset_streams(count, seed=seed)):
        name = f"session_{k:03d}"
        for folder, array in (("rgb", features), ("targets", targets)):
            os.makedirs(root / folder, exist_ok=True)
            np.save(root / folder / f"{name}.npy", array)
        names.append(name)
    (root / "sessions.txt").write_text("\n".join(names) + "\n")
    return str(root / "sessions.txt")


def test_online_detection_resumes_after_sigkill(tmp_path):
    sessions = _write_sessions(tmp_path, 8, seed=0)  # 8 sessions x 64 chunks / history 16 / batch 8 = 4 steps an epoch.
    model_dir = str(tmp_path / "run")
    epochs = 20
    args = ["--task=online_detection", "--model=gru_tiny", f"--features_dirs={tmp_path / 'rgb'}",
            f"--targets_dir={tmp_path / 'targets'}", f"--train_data={sessions}", f"--model_dir={model_dir}",
            f"--epochs={epochs}", "--batch_size=8", "--history=16", "--verbose=0", "--seed=1"]
    proc = lib.start("train", args, str(tmp_path / "first.log"))
    lib.kill_when(proc, lambda: lib.checkpoint_step(model_dir) >= 4, tmp_path / "first.log", timeout=240)
    saved = lib.checkpoint_step(model_dir)
    assert 4 <= saved < 4 * epochs and saved % 4 == 0
    assert not os.path.exists(os.path.join(model_dir, "model.keras"))

    second = lib.run("train", args)
    assert second.returncode == 0, second.stderr[-3000:]
    records = lib.history(model_dir)
    resume = [i for i, r in enumerate(records) if r.get("event") == "resume"]
    assert len(resume) == 1 and records[resume[0]] == {"event": "resume", "step": saved, "epoch": saved // 4}
    after = [(r["epoch"], r["step"]) for r in records[resume[0] + 1:]]
    assert after == [(e, 4 * e) for e in range(saved // 4 + 1, epochs + 1)]  # Not from scratch, none skipped.
    assert os.path.exists(os.path.join(model_dir, "model.keras"))
    assert lib.checkpoint_step(model_dir) == 4 * epochs


def test_unwritable_model_dir_is_one_line_exit_1(moving_shapes, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    args = lib.TINY + [f"--train_data={moving_shapes['train']}", f"--label_map={moving_shapes['label_map']}",
                       f"--model_dir={blocker / 'run'}", "--train_steps=1"]
    proc = lib.run("train", args)
    assert proc.returncode == 1
    line = _error_line(proc.stderr)
    assert line.startswith(f"tfvideo-train: error: --model_dir={blocker / 'run'} cannot be written: "), line


# Training whose 3rd checkpoint write fails with ENOSPC after writing part of a file.
_FULL_DISK_SCRIPT = r"""
import errno, os, sys
import tensorflow as tf
from trainers import train

write = tf.train.Checkpoint._write
calls = []

def full_disk(self, file_prefix, *args, **kwargs):
    calls.append(file_prefix)
    if len(calls) == 3:
        with open(file_prefix + ".data-00000-of-00001", "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), file_prefix + ".data-00000-of-00001")
    return write(self, file_prefix, *args, **kwargs)

tf.train.Checkpoint._write = full_disk
sys.argv = ["tfvideo-train"] + sys.argv[1:]
train.run()
"""


def test_full_disk_keeps_earlier_checkpoints_and_the_run_resumes(moving_shapes, tmp_path):
    model_dir = tmp_path / "run"
    # 16 videos / batch 4 = 4 steps an epoch; checkpoints at steps 2, 4, 6 (fails), 8.
    args = lib.TINY + [f"--train_data={moving_shapes['train']}", f"--label_map={moving_shapes['label_map']}",
                       f"--model_dir={model_dir}", "--train_steps=8", "--checkpoint_every_steps=2", "--seed=3"]
    proc = _run_script(_FULL_DISK_SCRIPT, *args)
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = _error_line(proc.stderr)
    ckpt = model_dir / "checkpoints"
    assert line == (f"tfvideo-train: error: cannot write checkpoint {ckpt / 'ckpt-6'}: No space left on device; "
                    f"the last complete checkpoint {ckpt / 'ckpt-4'} is intact."), line
    assert sorted(os.listdir(ckpt)) == ["checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index",
                                        "ckpt-4.data-00000-of-00001", "ckpt-4.index"]  # The partial file is gone.
    assert lib.checkpoint_step(str(model_dir)) == 4
    assert not (model_dir / "model.keras").exists()

    again = lib.run("train", args)  # Space again: the same command resumes from the intact checkpoint.
    assert again.returncode == 0, again.stderr[-3000:]
    records = lib.history(str(model_dir))
    resume = [i for i, r in enumerate(records) if r.get("event") == "resume"]
    assert len(resume) == 1 and records[resume[0]]["step"] == 4
    assert [r["step"] for r in records[resume[0] + 1:] if "loss" in r] == [5, 6, 7, 8]
    assert (model_dir / "model.keras").exists()
