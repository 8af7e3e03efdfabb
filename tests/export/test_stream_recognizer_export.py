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


def _run(module, *args):
    env = {**os.environ, "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=300, check=False)


def _long_video(run, tmp_path):
    """Two moving-shapes videos of different directions, one after the other (32 frames at 12 fps)."""
    from tfvideo import data

    root = os.path.dirname(run["data"]["train"])
    with open(run["data"]["train"]) as f:
        rels = [line.split()[0] for line in f]
    first = next(r for r in rels if "move_right" in r)
    second = next(r for r in rels if "move_up" in r)
    frames = np.concatenate([data.read_all_frames(os.path.join(root, r))[0] for r in (first, second)])
    path = str(tmp_path / "long.mp4")
    data.write_video(path, frames, fps=12, options={"qp": "0"})
    return path, data.read_all_frames(path)[0]


def test_stream_binary_prints_label_changes_and_draws_every_frame(online_run, tmp_path):
    import re

    from tfvideo.export import _stream_recognizer as sr
    from trainers import _stream_recognizer

    video, frames = _long_video(online_run, tmp_path)
    litert = os.path.join(online_run["export_dir"], "online.float32.tflite")
    out_video = str(tmp_path / "labelled.mp4")
    proc = _run("trainers.stream", f"--litert={litert}", f"--video={video}", f"--output_video={out_video}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    # The same stream in-process: one line at each change of the arg-max, at that frame's time.
    runner = sr.LiteRTStream(litert)
    tops = [int(s.argmax()) for _, _, s in _stream_recognizer.label_stream(runner, ((i / 12, f) for i, f in
                                                                                   enumerate(frames)), 12)]
    changes = [i for i in range(len(tops)) if i == 0 or tops[i] != tops[i - 1]]
    assert [line.split()[1] for line in lines] == [runner.labels[tops[i]] for i in changes]
    assert [line.split()[0] for line in lines] == [_stream_recognizer.timestamp(i / 12) for i in changes]
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}  \S+  [01]\.\d{3}", line) for line in lines), lines
    assert f"streamed {len(frames)} frames" in proc.stderr

    from tfvideo import data

    drawn = data.read_all_frames(out_video)[0]
    assert drawn.shape[0] == len(frames) and min(drawn.shape[1:3]) >= _stream_recognizer.MIN_DRAWN_SIDE
    panel = drawn[:, :40, :80].astype(int)  # The top label's bar is green, the background grey.
    assert ((panel[..., 1] > 150) & (panel[..., 0] < 120)).mean() > 0.05


def test_stream_binary_bad_input_is_one_line(online_run, tmp_path):
    litert = os.path.join(online_run["export_dir"], "online.float32.tflite")
    for args, message in [
        ([f"--litert={litert}", "--camera=57"], "--camera=57: no camera with this index can be opened"),
        ([f"--litert={litert}", f"--video={tmp_path / 'missing.mp4'}"], "cannot be read as a video"),
        ([f"--litert={litert}", "--video=x.mp4", "--frame_stride=0"], "--frame_stride=0"),
    ]:
        proc = _run("trainers.stream", *args)
        err = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(err) == 1 and message in err[0], (args, proc.stderr[-1500:])
        assert "Traceback" not in proc.stderr
    from tfvideo.export import _stream_recognizer as sr

    with pytest.raises(ValueError, match="give one of --saved_model or --litert"):
        sr.open_stream(online_run["export_dir"], litert)
    with pytest.raises(ValueError, match="not a streaming export"):
        sr.open_stream(saved_model=online_run["model_dir"])


def test_sliding_window_scores_each_window_and_writes_csv_and_plot(online_run, tmp_path):
    import csv

    import keras

    from export import _sliding_window
    from tfvideo import _experiment
    from trainers import _stream_recognizer

    video, frames = _long_video(online_run, tmp_path)
    model, config = _experiment.load_trained_model(online_run["model_dir"])
    centres, scores, duration = _sliding_window.window_scores(model, config, video, 1.0, 0.5)
    assert duration == pytest.approx(len(frames) / 12)
    assert len(centres) == int((duration - 1.0) / 0.5 + 1e-6) + 1  # Windows end at 1.0, 1.5, ... seconds.
    # The last window by hand: its 12 frames' segment centres, preprocessed, through the model.
    preprocess = config.build_preprocess()
    crop = {"crop_size": preprocess.crop_size, "resize_short": preprocess.resize_short}
    end = int(round((centres[-1] + 0.5) * 12))
    window = frames[end - 12 : end]
    clip = np.stack([_stream_recognizer.network_input(window[i], crop)[0] for i in (0, 2, 3, 5, 6, 8, 9, 11)])
    mean, std = np.asarray(preprocess.mean) * 255, np.asarray(preprocess.std) * 255
    want = keras.ops.convert_to_numpy(keras.ops.softmax(model(((clip - mean) / std)[None].astype("float32"))))[0]
    np.testing.assert_allclose(scores[-1], want, rtol=1e-5, atol=1e-6)

    out_csv, out_png = str(tmp_path / "s.csv"), str(tmp_path / "s.png")
    proc = _run("export.predict", f"--model_dir={online_run['model_dir']}", "--sliding_window", "--window_seconds=1",
                "--stride_seconds=0.5", f"--output_csv={out_csv}", f"--output_plot={out_png}", video)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out_csv) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["second", "top_label", "top_score", *online_run["labels"]]
    assert len(rows) - 1 == int(np.ceil(duration))
    per_sec = _sliding_window.per_second(centres, scores, duration)
    np.testing.assert_allclose(np.asarray(rows[1:])[:, 3:].astype(float), per_sec, atol=1e-4)
    assert [r[1] for r in rows[1:]] == [online_run["labels"][k] for k in per_sec.argmax(1)]
    with open(out_png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    proc = _run("export.predict", f"--model_dir={online_run['model_dir']}", "--sliding_window", "--stride_seconds=0",
                video)
    assert proc.returncode == 2 and "--stride_seconds=0" in proc.stderr
