"""Exports killed mid-write (issue 26, item 9): their temporary directories are cleaned up later.

Before: SIGTERM or SIGKILL during tfvideo-export left a `.tmp-*` directory in the model's
folder for good (4 after four interrupted exports). Now a running export holds a lock on its
directory; the next export (or a server start, `remove_stale_staging`) removes the unlocked
ones, says so in one line, and leaves those of exports still running.
"""

import fcntl
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from tfvideo.export import _versions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _staging(base):
    return sorted(n for n in os.listdir(base) if n.startswith(".tmp-"))


def test_next_export_removes_dead_exports_staging_and_keeps_a_live_ones(tmp_path, caplog):
    base = str(tmp_path / "m")
    for name in (".tmp-dead1", ".tmp-dead2/variables", ".tmp-live"):
        os.makedirs(os.path.join(base, name))
    with open(os.path.join(base, ".tmp-dead1", "saved_model.pb"), "wb") as f:
        f.write(b"half")
    live = os.open(os.path.join(base, ".tmp-live"), os.O_RDONLY)  # An export still writing holds this lock.
    fcntl.flock(live, fcntl.LOCK_EX)
    try:
        with caplog.at_level(logging.INFO, logger="absl"):
            with _versions.staged_version_dir(base) as (tmp, publish):
                assert _staging(base) == sorted([".tmp-live", os.path.basename(tmp)])
                assert _versions.remove_stale_staging(base) == []  # This export's own directory is locked too.
                open(os.path.join(tmp, "saved_model.pb"), "wb").close()
                assert publish() == os.path.join(base, "1")
        assert sorted(os.listdir(base)) == [".tmp-live", "1"]
        assert [r.getMessage() for r in caplog.records] == [
            f"Removed 2 temporary directories left by interrupted exports in {base}: .tmp-dead1, .tmp-dead2"]
    finally:
        os.close(live)
    assert _versions.remove_stale_staging(base) == [os.path.join(base, ".tmp-live")]  # Its export ended.
    assert os.listdir(base) == ["1"]


def _export(tiny_model_dir, export_dir):
    env = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = [sys.executable, "-m", "export.export_saved_model", f"--model_dir={tiny_model_dir}",
            f"--export_dir={export_dir}", "--model_name=m", "--input_type=frames"]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _removal_line(stderr, base, names):
    line = f"Removed {len(names)} temporary director{'y' if len(names) == 1 else 'ies'} left by interrupted exports in {base}: "
    said = [x for x in stderr.splitlines() if "left by interrupted exports" in x]
    assert len(said) == 1 and said[0].endswith(line + ", ".join(names)), stderr[-3000:]


@pytest.mark.slow
def test_exports_killed_by_sigterm_and_sigkill_are_cleaned_by_the_next_one(tiny_model_dir, tmp_path):
    export_dir = str(tmp_path / "exports")
    base = os.path.join(export_dir, "m")
    left = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = _export(tiny_model_dir, export_dir)
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:  # Until this export's directory appears.
            if os.path.isdir(base) and set(_staging(base)) - set(left):
                break
            time.sleep(0.02)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == -sig, f"the export ended before the signal: {proc.returncode}"
        if left:  # The SIGKILLed export had removed what the SIGTERMed one left, and said so.
            _removal_line(stderr, base, left)
        assert len(set(_staging(base)) - set(left)) == 1  # What this one leaves.
        left = _staging(base)
    assert len(left) == 1 and not [n for n in os.listdir(base) if n.isdigit()]
    proc = _export(tiny_model_dir, export_dir)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    _removal_line(stderr, base, left)
    assert os.listdir(base) == ["1"]
