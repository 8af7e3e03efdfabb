"""End-to-end tests of trainers/train.py: bad flags, resume after SIGKILL, mirrored parity,
multi-worker training. The binaries run in subprocesses (real flag parsing, real kill)."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import trainers_testlib as lib

from tfvideo import data

pytestmark = pytest.mark.slow


def _data_flags(moving_shapes):
    return [f"--train_data={moving_shapes['train']}", f"--label_map={moving_shapes['label_map']}"]


_BAD_FLAGS_SCRIPT = r"""
import json, sys
from absl import flags
from trainers import train
results = {}
for name, argv in json.loads(sys.argv[1]).items():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train"] + argv)
    try:
        train.train_recognition()
        results[name] = None
    except train.FlagError as e:
        results[name] = str(e)
print("RESULTS" + json.dumps(results))
"""


def test_bad_flags_are_rejected_before_any_work(moving_shapes, tmp_path):
    other = tmp_path / "other_model"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model": "tsn_tiny", "num_classes": 4}))
    (other / "checkpoints").mkdir()  # Another model's training state: not resumable with tsm_tiny.
    (other / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-4"\n')
    before = (other / "config.json").read_text()
    base = lib.TINY + _data_flags(moving_shapes) + ["--epochs=1"]
    cases = {
        "model": base + ["--model=no_such_net", f"--model_dir={tmp_path / 'a'}"],
        "train_data": lib.TINY + [f"--train_data={tmp_path / 'missing.txt'}", f"--label_map={moving_shapes['label_map']}",
                                  "--epochs=1", f"--model_dir={tmp_path / 'b'}"],
        "num_classes": base + ["--num_classes=7", f"--model_dir={tmp_path / 'c'}"],
        "model_dir": base + [f"--model_dir={other}"],
        "steps": lib.TINY + _data_flags(moving_shapes) + [f"--model_dir={tmp_path / 'd'}"],
    }
    proc = subprocess.run([sys.executable, "-c", _BAD_FLAGS_SCRIPT, json.dumps(cases)], check=False, cwd=lib.REPO, env=lib.env(),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.split("RESULTS", 1)[1])
    assert "--model='no_such_net'" in results["model"] and "tsm_tiny" in results["model"]
    assert "--train_data=" in results["train_data"] and "missing.txt" in results["train_data"]
    assert "--num_classes=7" in results["num_classes"] and "4 classes" in results["num_classes"]
    assert f"--model_dir={other}" in results["model_dir"] and "tsn_tiny" in results["model_dir"]
    assert "--epochs or --train_steps" in results["steps"]
    # Nothing was written for the rejected runs; the other model's config is untouched.
    for sub in "abcd":
        assert not (tmp_path / sub).exists()
    assert (other / "config.json").read_text() == before
    assert sorted(os.listdir(other)) == ["checkpoints", "config.json"]


def test_cli_exit_status_names_the_flag(moving_shapes, tmp_path):
    proc = lib.run("train", lib.TINY + _data_flags(moving_shapes) + ["--epochs=1", "--model=resnet_nope",
                                                                      f"--model_dir={tmp_path / 'm'}"])
    assert proc.returncode == 2
    assert "--model='resnet_nope'" in proc.stderr


def test_resume_after_sigkill_continues_from_last_checkpoint(moving_shapes, tmp_path):
    model_dir = str(tmp_path / "run")
    flagfile = tmp_path / "run.flags"
    # 16 training videos / batch 4 = 4 steps per epoch; 40 steps = 10 epochs.
    flagfile.write_text("\n".join(lib.TINY + _data_flags(moving_shapes) + [
        f"--model_dir={model_dir}", "--train_steps=40", "--checkpoint_every_steps=3", "--seed=3"]) + "\n")
    args = [f"--flagfile={flagfile}"]
    proc = lib.start("train", args, str(tmp_path / "first.log"))
    lib.kill_when(proc, lambda: lib.checkpoint_step(model_dir) >= 3, tmp_path / "first.log", timeout=180)
    saved = lib.checkpoint_step(model_dir)
    assert 3 <= saved < 40
    assert not os.path.exists(os.path.join(model_dir, "model.keras"))
    first_steps = [r["step"] for r in lib.history(model_dir) if "loss" in r]
    assert first_steps[: saved] == list(range(1, saved + 1))

    second = lib.run("train", args)
    assert second.returncode == 0, second.stderr[-3000:]
    records = lib.history(model_dir)
    resume = [i for i, r in enumerate(records) if r.get("event") == "resume"]
    assert len(resume) == 1 and records[resume[0]]["step"] == saved
    resumed_steps = [r["step"] for r in records[resume[0] + 1:] if "loss" in r]
    assert resumed_steps == list(range(saved + 1, 41))  # Not from scratch, none skipped.
    assert records[resume[0] + 1]["epoch"] == saved // 4 + 1
    assert os.path.exists(os.path.join(model_dir, "model.keras"))
    assert lib.checkpoint_step(model_dir) == 40


def test_mirrored_two_cpus_matches_single_device(tmp_path):
    # Lossless H.264 of noisy frames: no flat patches, hence no exact ties in max pooling, whose
    # gradient TensorFlow's CPU kernel breaks differently for a batch of 4 and two of 2 (which
    # made lossy-coded flat squares diverge at the first update). Three steps: later on, float
    # rounding can flip a near-tie and one step may differ by ~4e-3 (seen on 1 dataset in 5).
    videos = data.make_moving_shapes_dataset(str(tmp_path / "data"), videos_per_class=(4, 0), num_frames=16,
                                             size=32, seed=1, encoder_options={"qp": "0"})
    common = lib.TINY + _data_flags(videos) + ["--train_steps=3", "--sync_batchnorm", "--seed=1",
                                               "--checkpoint_every_steps=0"]
    single = lib.run("train", common + [f"--model_dir={tmp_path / 'single'}"])
    assert single.returncode == 0, single.stderr[-3000:]
    mirrored = lib.run("train", common + [f"--model_dir={tmp_path / 'mirrored'}", "--strategy=mirrored",
                                          "--logical_cpus=2"])
    assert mirrored.returncode == 0, mirrored.stderr[-3000:]
    assert "with 2 replicas" in mirrored.stderr
    a, b = lib.step_losses(str(tmp_path / "single")), lib.step_losses(str(tmp_path / "mirrored"))
    assert len(a) == len(b) == 3
    assert len(set(np.round(a, 3))) > 1  # The loss moves: the weights are being updated.
    # Same global batch, cross-replica BN statistics and summed gradients: float-order differences only.
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-4)  # Measured: ~2e-6 (5 datasets); per-replica BN: ~0.3.


def test_two_worker_multi_worker_mirrored(moving_shapes, tmp_path):
    ports = lib.free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    model_dir = str(tmp_path / "mw")
    args = lib.TINY + _data_flags(moving_shapes) + [f"--model_dir={model_dir}", "--train_steps=4",
                                                     "--strategy=multi_worker", "--checkpoint_every_steps=2"]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(lib.start("train", args, str(tmp_path / f"worker{index}.log"), TF_CONFIG=tf_config))
    try:
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    finals = [next(line for line in log.splitlines() if line.startswith("training done:")) for log in logs]
    assert "step=4" in finals[0]
    # Both workers hold the same all-reduced loss and accuracy (throughput differs).
    strip = [re.sub(r"clips_per_s=[^,]*", "", f) for f in finals]
    assert strip[0] == strip[1]
    assert "with 2 replicas" in logs[0]
    assert [r["step"] for r in lib.history(model_dir) if "loss" in r] == [1, 2, 3, 4]
    assert os.path.exists(os.path.join(model_dir, "model.keras"))
    assert not os.path.exists(os.path.join(model_dir, "backup", "worker-1"))
