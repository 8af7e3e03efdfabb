"""tfvideo-export --streaming / --litert of an online TSM: SavedModel and LiteRT parity with Keras, bad input."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CROP, RESIZE, T = 32, 36, 8


def _randomized(name, num_classes, seed=0, **overrides):
    sys.path.insert(0, os.path.join(REPO, "tests", "models"))
    from test_online_tsm import randomize

    from tfvideo import models

    model = models.get(name, num_classes=num_classes, **overrides)
    model.build((None, T, CROP, CROP, 3))
    randomize(model, seed)
    return model


@pytest.fixture(scope="module")
def online_run(moving_shapes, tmp_path_factory):
    """A model_dir of tsm_online_tiny (random, non-trivial weights) on the moving-shapes lists."""
    from tfvideo import _experiment

    with open(moving_shapes["label_map"]) as f:
        labels = [line.strip() for line in f if line.strip()]
    model_dir = str(tmp_path_factory.mktemp("online") / "online")
    model = _randomized("tsm_online_tiny", len(labels))
    config = _experiment.ExperimentConfig(
        model="tsm_online_tiny", num_classes=len(labels), labels=labels,
        sampler={"type": "segment", "num_segments": T}, preprocess={"crop_size": CROP, "resize_short": RESIZE},
        train={"train_data": moving_shapes["train"], "eval_data": moving_shapes["val"]})
    config.write(model_dir)
    model.save(os.path.join(model_dir, _experiment.MODEL_FILE))
    export_dir = str(tmp_path_factory.mktemp("exports"))
    env = {**os.environ, "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "export.export_saved_model", f"--model_dir={model_dir}", f"--export_dir={export_dir}",
         "--streaming", "--litert", "--representative_clips=8"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=400, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"model_dir": model_dir, "export_dir": export_dir, "stdout": proc.stdout, "data": moving_shapes,
            "labels": labels}


def _val_clips(run):
    from export import _stream_export
    from tfvideo import _experiment

    config = _experiment.ExperimentConfig.read(run["model_dir"])
    clips, _ = _stream_export._pixel_clips(config, run["data"]["val"], 100)
    return clips


def test_export_writes_the_streaming_saved_model_and_both_litert_files(online_run):
    out = online_run["stdout"].splitlines()
    base = os.path.join(online_run["export_dir"], "online")
    assert out[0] == os.path.join(base, "1")
    assert os.path.isfile(os.path.join(base, "1", "saved_model.pb"))
    for q in ("float32", "int8"):
        path = os.path.join(online_run["export_dir"], f"online.{q}.tflite")
        assert path in out and os.path.isfile(path) and os.path.isfile(path[: -len(".tflite")] + ".json")
        assert any(line.startswith(f"  {q}: max relative logit difference") for line in out), out
    # int8 is about 4x smaller than float.
    sizes = {q: os.path.getsize(os.path.join(online_run["export_dir"], f"online.{q}.tflite")) for q in ("float32", "int8")}
    assert sizes["int8"] < 0.4 * sizes["float32"], sizes


def test_saved_model_and_litert_streams_match_keras_on_the_validation_set(online_run):
    from export import _stream_export
    from tfvideo import _experiment
    from tfvideo.export import _stream_recognizer as sr

    model, config = _experiment.load_trained_model(online_run["model_dir"])
    preprocess = config.build_preprocess()
    clips = _val_clips(online_run)
    assert len(clips) == 8
    saved = sr.SavedModelStream(os.path.join(online_run["export_dir"], "online", "1"))
    assert saved.labels == online_run["labels"]
    worst, agree = _stream_export.parity(model, preprocess, saved, clips)
    assert worst <= 1e-5 and agree == 1.0
    worst, agree = _stream_export.parity(model, preprocess, sr.LiteRTStream(
        os.path.join(online_run["export_dir"], "online.float32.tflite")), clips)
    assert worst <= 1e-4 and agree == 1.0
    worst, agree = _stream_export.parity(model, preprocess, sr.LiteRTStream(
        os.path.join(online_run["export_dir"], "online.int8.tflite")), clips)
    assert agree >= 0.98 and 1e-4 < worst < 0.2  # Quantized (not a float file), and close.


def test_streams_name_a_bad_frame_a_stale_state_and_a_litert_file_of_another_preset(online_run, tmp_path):
    from tfvideo import data
    from tfvideo.export import _stream_recognizer as sr
    from tfvideo.models import StreamingRecognizer

    path = os.path.join(online_run["export_dir"], "online.float32.tflite")
    stream = sr.LiteRTStream(path)
    state = stream.init_state()
    with pytest.raises(ValueError, match=r"frame has shape \(1, 32, 32, 1\), expected \[1, 32, 32, 3\]"):
        stream.step(np.zeros((1, CROP, CROP, 1), "float32"), state)
    with pytest.raises(ValueError, match=r"frame has shape \(1, 48, 32, 3\)"):
        stream.step(np.zeros((1, 48, CROP, 3), "float32"), state)

    # Another preset's stream: its own state, and its file under this one's description.
    other = StreamingRecognizer(_randomized("tsm_mobilenetv2_online_tiny", 4), (CROP, CROP))
    other_path = str(tmp_path / "other.tflite")
    sr.export_litert(other, other_path, data.PreprocessConfig(crop_size=CROP, resize_short=RESIZE))
    other_state = sr.LiteRTStream(other_path).init_state()
    with pytest.raises(ValueError, match="the state is not this model's .*another model"):
        stream.step(np.zeros((1, CROP, CROP, 3), "float32"), other_state)
    shutil.copy(path[: -len(".tflite")] + ".json", str(tmp_path / "other.json"))
    with pytest.raises(ValueError, match=r"--litert=.*other.tflite: input .* in the file but .* in .*other.json "
                                         r"\(tsm_online_tiny\): a LiteRT file of another preset\?"):
        sr.LiteRTStream(other_path)
    with pytest.raises(ValueError, match="no such file"):
        sr.LiteRTStream(str(tmp_path / "missing.tflite"))
