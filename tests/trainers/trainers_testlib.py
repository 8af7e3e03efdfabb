"""Helpers for the trainers tests: run the binaries in subprocesses on tiny settings."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A 4-segment 32x32 TSM-tiny without dropout: a step takes tens of milliseconds on a CPU.
# --recipe=none: these tests check mechanisms (resume, parity, reports) on plain SGD at a constant
# rate; tests/trainers/test_default_recipe.py covers the default recipe.
TINY = ["--model=tsm_tiny", "--num_segments=4", "--crop_size=32", "--resize_short=32", "--batch_size=4",
        "--dropout=0", "--verbose=0", "--learning_rate=0.01", "--recipe=none"]


def env(**extra):
    out = dict(os.environ)
    out.update({"PYTHONPATH": REPO + os.pathsep + out.get("PYTHONPATH", ""), "CUDA_VISIBLE_DEVICES": "",
                "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": "1"})
    out.pop("TF_CONFIG", None)
    out.update(extra)
    return out


def command(module, args):
    return [sys.executable, "-m", f"trainers.{module}", *args]


def run(module, args, timeout=240, **extra_env):
    """Runs a binary to completion: CompletedProcess with text stdout/stderr."""
    return subprocess.run(command(module, args), check=False, cwd=REPO, env=env(**extra_env), capture_output=True, text=True,
                          timeout=timeout)


def start(module, args, log_path, **extra_env):
    """Starts a binary in the background, output to `log_path`."""
    with open(log_path, "w") as log:  # The child keeps its own copy of the descriptor.
        return subprocess.Popen(command(module, args), cwd=REPO, env=env(**extra_env), stdout=log,
                                stderr=subprocess.STDOUT)


def kill_when(proc, ready, log_path, timeout):
    """SIGKILLs the running `proc` once `ready()` holds (within `timeout` s); asserts it was still
    running then, and that it died of the signal."""
    deadline = time.time() + timeout
    try:
        while not ready() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "first run ended before it could be killed:\n" + open(log_path).read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


def checkpoint_step(model_dir):
    """The step of a model_dir's latest checkpoint (0 before the first save)."""
    path = os.path.join(model_dir, "checkpoints", "checkpoint")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        first = f.readline()  # model_checkpoint_path: "ckpt-12"
    return int(first.strip().rstrip('"').rsplit("-", 1)[1]) if "ckpt-" in first else 0


def history(model_dir, sub="logs"):
    """The per-step records of logs/train_history.jsonl."""
    with open(os.path.join(model_dir, sub, "train_history.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def step_losses(model_dir):
    return [r["loss"] for r in history(model_dir) if "loss" in r]


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def subprocess_python(script, args, timeout=240):
    """Runs `python -c script *args` in the repository with the test environment."""
    return subprocess.run([sys.executable, "-c", script, *args], check=False, cwd=REPO, env=env(), capture_output=True,
                          text=True, timeout=timeout)
