"""`kill -9` of a running tfvideo-prepare takes its worker processes with it.

Before: the workers (about 885 MB each on a real data set) stayed alive forever, waiting
for work from a parent that was gone.
"""

import os
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
    for i in range(8):  # TV-L1 flow on 40 noisy frames: seconds of work per shard.
        path = str(tmp_path / f"v{i}.mp4")
        data.write_video(path, rng.integers(0, 256, (40, 48, 64, 3), dtype=np.uint8), fps=10)
        lines.append(f"{path} {i % 2}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), CUDA_VISIBLE_DEVICES="",
               TF_CPP_MIN_LOG_LEVEL="2")
    parent = subprocess.Popen(
        [sys.executable, "-m", "trainers.prepare_data", f"--annotations={tmp_path / 'list.txt'}", f"--output_dir={out}",
         "--num_shards=4", "--workers=2", "--flow", "--resize_short=0", "--noprogress"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = set()
    try:
        deadline = time.monotonic() + 180
        # A worker is converting once its temporary shard exists.
        while not (out.exists() and any(".tmp-" in n and ".tfrecord" in n for n in os.listdir(out))):
            assert parent.poll() is None, f"prepare ended (status {parent.returncode}) before its workers started"
            assert time.monotonic() < deadline, "no worker started converting within 180 s"
            time.sleep(0.1)
        workers = descendants(parent.pid)
        assert len(workers) >= 2, workers
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
