"""tfvideo-predict --server follows the served version: a newer version published (and the old
one unloaded) during a run takes over the next videos, sampled by its own clip spec; the run
finishes. --model_version still pins one."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.export.conftest import LABELS
from tests.serving.conftest import ROOT, ServerProcess
from tests.serving.test_predict_offline import exports, ours, parse_lines, reference, video_tree  # noqa: F401
from tfvideo import data as tfv_data

pytestmark = pytest.mark.slow

# Runs tfvideo-predict's main in a process of its own (its flags would clash with other binaries'
# in the test process). After the first video it publishes version 2 and waits until the server
# has unloaded version 1, so every later request finds its pinned version gone.
_DRIVER = """
import os, shutil, sys, time
from absl import flags
from export import predict
from tfvideo import serving

base, newer, target, *argv = sys.argv[1:]
make = predict._server_predictor

def publishing_after_the_first_video():
    predict_one, close, address, top_k = make()
    done = []

    def one(path):
        result = predict_one(path)
        done.append(path)
        if len(done) == 1:
            shutil.copytree(newer, os.path.join(base, "2.tmp"))
            os.rename(os.path.join(base, "2.tmp"), os.path.join(base, "2"))
            with serving.Client(target, timeout=30) as client:
                deadline = time.time() + 120
                while [v for v, state in client.status("tiny") if state == "AVAILABLE"] != [2]:
                    assert time.time() < deadline, client.status("tiny")
                    time.sleep(0.1)
        return result

    return one, close, address, top_k

predict._server_predictor = publishing_after_the_first_video
predict.main(flags.FLAGS(["tfvideo-predict", *argv]))
"""


@pytest.fixture
def served_v1(exports, tmp_path):  # noqa: F811 -- the fixture imported above.
    """A server polling a base path that holds only version 1 (segment sampler) of `exports`."""
    base = str(tmp_path / "tiny")
    os.makedirs(base)
    shutil.copytree(os.path.join(exports, "1"), os.path.join(base, "1"))
    server = ServerProcess([f"--model_base_path={base}", "--model_name=tiny", "--file_system_poll_wait_seconds=0.2",
                            "--nowarmup", "--max_workers=2"], str(tmp_path / "server.log"))
    yield base, server
    server.stop()


def _run_driver(base, newer, target, *args):
    env = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-c", _DRIVER, base, newer, target, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600, check=False)


def test_a_run_follows_a_newly_published_version(served_v1, exports, video_tree, loaded):  # noqa: F811
    base, server = served_v1
    model, config = loaded
    first, second = video_tree["good"]
    videos = [first, second, first]
    out = _run_driver(base, os.path.join(exports, "2"), server.target, f"--server={server.target}", "--model=tiny",
                      "--top_k=4", *videos)
    assert out.returncode == 0, out.stderr[-3000:]
    assert [line for line in ours(out.stderr) if "warning" in line] == [
        "tfvideo-predict: warning: model 'tiny' now serves version 2 (was 1); the next videos go to it"]
    lines = [line.split("\t") for line in out.stdout.splitlines()]
    assert [path for path, _ in lines] == videos  # The run finished: every video answered.
    # Video 1 by version 1 (segment sampler); the others by version 2, sampled densely as its spec says.
    segment = config.build_sampler(training=False)
    dense = tfv_data.sampler_from_config({"type": "dense", "clip_len": 8, "frame_interval": 2, "training": False})
    for (path, pairs), sampler in zip(lines, [segment, dense, dense]):
        (labels, probabilities), = parse_lines(f"{path}\t{pairs}").values()
        expected = reference(model, config, path, sampler)
        order = np.argsort(-expected)
        assert labels == [LABELS[k] for k in order]
        np.testing.assert_allclose(probabilities, expected[order], atol=1e-4)


def test_a_pinned_version_stops_the_run_when_it_is_unloaded(served_v1, exports, video_tree):  # noqa: F811
    base, server = served_v1
    first, second = video_tree["good"]
    out = _run_driver(base, os.path.join(exports, "2"), server.target, f"--server={server.target}", "--model=tiny",
                      "--model_version=1", first, second)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.stdout.splitlines()[0].startswith(first + "\t") and len(out.stdout.splitlines()) == 1
    errors = [line for line in ours(out.stderr) if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"tfvideo-predict: error: {second}: ") and "NOT_FOUND" in errors[0]
