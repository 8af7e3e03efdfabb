"""`kill -9` of a running tfvideo-prepare takes its worker processes with it.

Before: the workers (about 885 MB each on a real data set) stayed alive forever, waiting
for work from a parent that was gone.
"""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from shardfiles import REPO

from tfvideo import data

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")


def process_table():
    """{pid: (parent pid, state letter)} of every process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # After "pid (command) ".
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def descendants(pid):
    table = process_table()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, (parent, _) in table.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids):
    table = process_table()
    return {pid for pid in pids if pid in table and table[pid][1] not in "ZX"}


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(8):  # TV-L1 flow on 40 noisy frames: a second or more of work per shard.
        path = str(tmp_path / f"v{i}.mp4")
        data.write_video(path, rng.integers(0, 256, (40, 48, 64, 3), dtype=np.uint8), fps=10)
        lines.append(f"{path} {i % 2}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), CUDA_VISIBLE_DEVICES="",
               TF_CPP_MIN_LOG_LEVEL="2")
    parent = subprocess.Popen(
        [sys.executable, "-m", "trainers.prepare_data", f"--annotations={tmp_path / 'list.txt'}", f"--output_dir={out}",
         "--num_shards=8", "--workers=2", "--flow", "--flow_method=tvl1", "--resize_short=0", "--noprogress"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = set()
    try:
        deadline = time.monotonic() + 240
        # A worker is converting (its initializer ran) once a temporary shard named with its pid exists.
        converting = set()
        while len(converting) < 2:
            assert parent.poll() is None, f"prepare ended (status {parent.returncode}) before both workers started"
            assert time.monotonic() < deadline, f"workers {converting} started converting within 240 s, not 2"
            names = os.listdir(out) if out.exists() else []
            converting |= {int(m[1]) for m in map(re.compile(r".*\.tfrecord\.tmp-(\d+)$").match, names) if m}
            time.sleep(0.05)
        workers = descendants(parent.pid)
        assert converting <= workers, (converting, workers)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        assert parent.returncode == -signal.SIGKILL  # Killed mid-run, not finished.
        deadline = time.monotonic() + 5
        while alive(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(workers), f"worker processes {sorted(alive(workers))} outlived the killed parent by 5 s"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in alive(workers):  # Only the processes this test started.
            os.kill(pid, signal.SIGKILL)


def test_watchdog_alone_ends_a_worker_whose_parent_died():
    """The fallback where PR_SET_PDEATHSIG is missing (not Linux): the parent-pid watchdog thread."""
    lifeline = os.path.join(REPO, "tfvideo", "data", "_lifeline.py")  # Standard library only: loaded by path.
    worker_code = (
        "import importlib.util, os, time\n"
        f"spec = importlib.util.spec_from_file_location('lifeline', {lifeline!r})\n"
        "lifeline = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(lifeline)\n"
        "lifeline.exit_with_parent(os.getppid(), use_prctl=False, interval=0.2)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n")
    parent_code = (
        "import subprocess, sys, time\n"
        f"worker = subprocess.Popen([sys.executable, '-c', {worker_code!r}])\n"
        "print('worker', worker.pid, flush=True)\n"
        "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    worker, ready = None, False
    try:
        while worker is None or not ready:
            line = parent.stdout.readline()
            assert line, "the parent ended early"
            if line.startswith("worker "):
                worker = int(line.split()[1])
            ready = ready or line.strip() == "ready"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 5
        while alive({worker}) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive({worker}), "the worker outlived its killed parent by 5 s"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if worker is not None and alive({worker}):
            os.kill(worker, signal.SIGKILL)
        parent.stdout.close()
