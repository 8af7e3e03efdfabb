"""tfvideo-export under bad input and faults: one-line errors, nothing half-written, readable output."""

import contextlib
import os
import re
import stat
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfvideo import export as tfv_export

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run_export(*args):
    env = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "export.export_saved_model", *args], check=False,
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def _error_lines(stderr):
    """stderr without TensorFlow's native start-up log lines (another issue item hides those)."""
    native = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl|To enable the following instructions)")
    return [line for line in stderr.splitlines() if line.strip() and not native.match(line)]


@pytest.mark.parametrize("case", ["unfinished", "missing"])
def test_export_without_a_trained_model_is_one_line_and_writes_nothing(case, tmp_path):
    from tfvideo import _experiment

    model_dir = str(tmp_path / "run")
    if case == "unfinished":  # What a killed tfvideo-train leaves: config and checkpoints, no model.keras.
        _experiment.ExperimentConfig(model="tsm_tiny", num_classes=4).write(model_dir)
        os.makedirs(os.path.join(model_dir, "checkpoints"))
        expected = f"tfvideo-export: error: --model_dir={model_dir} holds no trained model: model.keras is missing"
    else:
        expected = f"tfvideo-export: error: --model_dir={model_dir} does not exist"
    export_dir = str(tmp_path / "exports")
    out = _run_export(f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    (line,) = _error_lines(out.stderr)
    assert line.startswith(expected), out.stderr[-2000:]
    if case == "unfinished":
        assert "rerun the same tfvideo-train command" in out.stderr
    assert out.stdout == ""
    assert not os.path.exists(export_dir)


def test_bad_export_flag_is_a_usage_error(tmp_path):
    out = _run_export(f"--model_dir={tmp_path}", f"--export_dir={tmp_path}/e", "--top_k=0")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert _error_lines(out.stderr) == ["tfvideo-export: error: --top_k=0 must be >= 1."]


def test_failed_export_leaves_nothing_behind(tiny_model_dir, tmp_path, monkeypatch):
    root = str(tmp_path / "exports")
    real_save = tf.saved_model.save

    def save_then_fail(obj, export_dir, signatures=None, **kwargs):
        os.makedirs(export_dir)
        with open(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
            f.write(b"\x08half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", save_then_fail)
    with pytest.raises(OSError, match="No space left"):
        tfv_export.export_saved_model(root, model_dir=tiny_model_dir, model_name="m", input_types="frames", warmup=False)
    assert not os.path.exists(root)  # Not even the empty directories the export created.

    monkeypatch.setattr(tf.saved_model, "save", real_save)
    first = tfv_export.export_saved_model(root, model_dir=tiny_model_dir, model_name="m", input_types="frames",
                                          warmup=False)
    monkeypatch.setattr(tf.saved_model, "save", save_then_fail)
    with pytest.raises(OSError):
        tfv_export.export_saved_model(root, model_dir=tiny_model_dir, model_name="m", input_types="frames")
    assert sorted(os.listdir(os.path.join(root, "m"))) == ["1"] and first.version == 1
    assert sorted(os.listdir(root)) == ["m", "models.config"]


@contextlib.contextmanager
def _umask(mask):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _modes(root):
    """{relative path: permission bits} of everything under root, root itself as '.'."""
    modes = {".": stat.S_IMODE(os.stat(root).st_mode)}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            modes[os.path.relpath(path, root)] = stat.S_IMODE(os.stat(path).st_mode)
    return modes


def _assert_readable_by_others(root):
    modes = _modes(root)
    wrong = {p: oct(m) for p, m in modes.items()
             if m != (0o755 if os.path.isdir(os.path.join(root, p)) else 0o644)}
    assert not wrong, f"not 0755 dirs / 0644 files: {wrong}"
    assert len(modes) > 5


def test_recognition_export_is_readable_by_other_users(tiny_model_dir, tmp_path):
    root = str(tmp_path / "exports")
    with _umask(0o077):  # The strictest usual umask: the export must not depend on it.
        result = tfv_export.export_saved_model(root, model_dir=tiny_model_dir, model_name="m", input_types="frames")
    _assert_readable_by_others(root)
    assert os.path.exists(os.path.join(result.path, "assets.extra", "tf_serving_warmup_requests"))
    assert stat.S_IMODE(os.stat(result.models_config).st_mode) == 0o644


@pytest.fixture(scope="module")
def online_model_dir(tmp_path_factory):
    """A model_dir holding a trained-shaped online detector (chunk_mlp_tiny, D=5, K=3)."""
    import keras

    from tfvideo import _experiment, online

    keras.utils.set_random_seed(0)
    model = online.get_detector("chunk_mlp_tiny", 5, 3)
    model(np.zeros((1, 4, 5), np.float32))
    model_dir = str(tmp_path_factory.mktemp("online") / "stream")
    _experiment.ExperimentConfig(model="chunk_mlp_tiny", task="online_detection", num_classes=3,
                                 labels=["bg", "a", "b"]).write(model_dir)
    model.save(os.path.join(model_dir, _experiment.MODEL_FILE))
    return model_dir, model


def test_streaming_export_is_staged_numbered_and_readable(online_model_dir, tmp_path, monkeypatch):
    from tfvideo.export import _streaming, _versions

    model_dir, model = online_model_dir
    root = str(tmp_path / "exports")
    with _umask(0o077):
        first = tfv_export.export_saved_model(root, model_dir=model_dir)
        second = tfv_export.export_saved_model(root, model_dir=model_dir)
    assert (first.path, second.path) == (os.path.join(root, "stream", "1"), os.path.join(root, "stream", "2"))
    _assert_readable_by_others(root)
    x = np.random.default_rng(0).normal(size=(2, 5)).astype(np.float32)
    loaded = tf.saved_model.load(second.path)
    scores, _ = loaded.step(tf.constant(x), loaded.init_state(tf.constant(2)))
    logits, _ = model.step(x, model.init_state(2))
    np.testing.assert_allclose(scores.numpy(), tf.nn.softmax(logits).numpy(), atol=1e-5)

    # One "next version" rule for both exports: any numeric directory counts, complete or not.
    os.makedirs(os.path.join(root, "stream", "7"))
    assert _versions.next_version(os.path.join(root, "stream")) == 8
    real_export = _streaming.export_streaming_model

    def write_half_then_fail(model, export_dir, labels=None):
        real_export(model, export_dir, labels)
        os.remove(os.path.join(export_dir, "saved_model.pb"))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_streaming, "export_streaming_model", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        tfv_export.export_saved_model(root, model_dir=model_dir)
    assert sorted(os.listdir(os.path.join(root, "stream"))) == ["1", "2", "7"]  # No half version, no temp dir.
    monkeypatch.setattr(_streaming, "export_streaming_model", real_export)
    assert tfv_export.export_saved_model(root, model_dir=model_dir).version == 8


def test_export_binary_loads_an_online_detector_in_a_fresh_process(online_model_dir, tmp_path):
    """tfvideo-export imports no tfvideo.online itself (namespaces load on first use); loading
    the model_dir's model.keras must still find the detector's Keras classes."""
    model_dir, _ = online_model_dir
    result = _run_export(f"--model_dir={model_dir}", f"--export_dir={tmp_path}")
    assert result.returncode == 0, _error_lines(result.stderr)[-3:]
    assert result.stdout.strip().splitlines()[-1] == os.path.join(str(tmp_path), "stream", "1")
    assert os.path.isfile(os.path.join(str(tmp_path), "stream", "1", "saved_model.pb"))
