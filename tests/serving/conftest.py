"""A development server (tfvideo-serve) in a subprocess on a free localhost port."""

import os
import queue
import subprocess
import sys
import threading

from tests.export.conftest import (  # noqa: F401 -- shared fixtures.
    feature_spec_export,
    feature_spec_loaded,
    feature_spec_run,
    loaded,
    tiny_model_dir,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ServerProcess:
    """`python -m export.serve ARGS --port=0`; `port` is read from its ready line."""

    def __init__(self, args, log_path, startup_timeout=180):
        env = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
        self._log = open(log_path, "w")  # noqa: SIM115 -- open as long as the server runs.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "export.serve", "--port=0", *args],
            stdout=subprocess.PIPE, stderr=self._log, text=True, env=env, cwd=ROOT,
        )
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        self.lines = lines  # Later stdout lines (e.g. the REST API's ready line).
        try:
            line = lines.get(timeout=startup_timeout)
        except queue.Empty:
            line = ""
        if not line.startswith("tfvideo-serve: serving"):
            self.stop()
            with open(log_path) as f:
                raise RuntimeError(f"tfvideo-serve did not start: {line!r}\n{f.read()[-3000:]}")
        self.ready_line = line.strip()
        self.port = int(self.ready_line.rsplit(":", 1)[1])
        self.target = f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()

