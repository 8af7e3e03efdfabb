"""The models run on Keras's JAX and PyTorch backends with the same numbers as on TensorFlow.

Weights saved by a TensorFlow-backend model are loaded into the same preset built in a
subprocess under `KERAS_BACKEND=jax` (or `torch`); both compute the same inputs. A backend
that is not installed is skipped: scripts/test installs JAX (the `jax` extra); PyTorch is
checked where it is installed (`pip install torch`, CPU build).
"""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfvideo import models, online

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# One preset per temporal module (TSN's consensus is TSM's without the shift). The I3D
# Inception-v1 preset is left out: its layers are i3d_tiny's (Conv3D, BN, pooling, concat) and
# JAX compiling it op by op takes ~55 s on 2 cores.
RECOGNIZERS = {"tsm_tiny": 8, "trn_tiny": 8, "tdn_tiny": 24, "tam_tiny": 8, "i3d_tiny": 8}
DETECTORS = ["gru_tiny", "trn_tiny", "idn_tiny", "oadtr_tiny"]

_BACKEND_SCRIPT = r"""
import json, os, sys
import numpy as np
import keras
assert keras.backend.backend() == os.environ["KERAS_BACKEND"], keras.backend.backend()
from tfvideo import models, online
cases = json.loads(sys.argv[1])
for case in cases:
    if case["kind"] == "recognizer":
        model = models.get(case["name"], num_classes=5)
    else:
        model = online.get_detector(case["name"], 16, 4)
    inputs = np.load(case["inputs"])
    model(inputs, training=False)
    model.load_weights(case["weights"])
    outputs = [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(model(inputs, training=False))]
    np.savez(case["out"], *outputs)
print("BACKEND-DONE")
"""


def _cases(tmp_path, backend):
    rng = np.random.default_rng(0)
    cases, expected = [], {}
    for kind, names in (("recognizer", RECOGNIZERS), ("detector", DETECTORS)):
        for name in names:
            keras.utils.set_random_seed(1)
            if kind == "recognizer":
                model = models.get(name, num_classes=5)
                inputs = rng.normal(size=(2, 1, names[name], 32, 32, 3)).astype("float32")
            else:
                model = online.get_detector(name, 16, 4)
                inputs = rng.normal(size=(2, 10, 16)).astype("float32")
            outputs = [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(model(inputs, training=False))]
            key = f"{kind}-{name}"
            model.save_weights(str(tmp_path / f"{key}.weights.h5"))
            np.save(tmp_path / f"{key}.npy", inputs)
            cases.append({"kind": kind, "name": name, "inputs": str(tmp_path / f"{key}.npy"),
                          "weights": str(tmp_path / f"{key}.weights.h5"), "out": str(tmp_path / f"{key}-{backend}.npz")})
            expected[key] = outputs
    return cases, expected


@pytest.mark.parametrize("backend, module", [("jax", "jax"), ("torch", "torch")])
def test_tensorflow_weights_give_the_same_outputs_on_other_backends(backend, module, tmp_path):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    cases, expected = _cases(tmp_path, backend)
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2",
           "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", _BACKEND_SCRIPT, json.dumps(cases)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0 and "BACKEND-DONE" in proc.stdout, proc.stderr[-3000:]
    for case in cases:
        key = f"{case['kind']}-{case['name']}"
        with np.load(case["out"]) as got:
            outputs = [got[f"arr_{i}"] for i in range(len(got.files))]
        assert len(outputs) == len(expected[key]), key
        for a, b in zip(outputs, expected[key]):
            assert a.shape == b.shape, key
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=key)
        assert np.abs(expected[key][-1]).max() > 1e-3, key  # Not a degenerate all-zero output.
