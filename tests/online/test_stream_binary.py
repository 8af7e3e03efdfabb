"""tfvideo-stream over precomputed features and over a video file."""

import os
import re

import numpy as np
import pytest
from absl.testing import flagsaver

from tfvideo import _experiment, data, models, online
from trainers import stream


def _detector_dir(root, feature_dim, chunk_seconds):
    import keras

    keras.utils.set_random_seed(0)
    model = online.get_detector("gru_tiny", feature_dim, 3)
    config = _experiment.ExperimentConfig(model="gru_tiny", num_classes=3, model_kwargs={"feature_dim": feature_dim},
                                          labels=["background", "jump", "run"], task="online_detection", sampler={},
                                          train={"chunk_seconds": chunk_seconds})
    config.write(str(root))
    model.save(os.path.join(root, _experiment.MODEL_FILE))
    return model


def _run(capsys, **flag_values):
    stream.FLAGS(["tfvideo-stream"])  # Parse defaults once so flagsaver can set values.
    with flagsaver.flagsaver(**flag_values):
        rc = stream.main(["tfvideo-stream"])
    out = capsys.readouterr()
    return rc, out.out.strip().splitlines(), out.err


def test_stream_features_prints_each_second(tmp_path, capsys):
    model = _detector_dir(tmp_path / "det", 5, chunk_seconds=0.5)
    rng = np.random.default_rng(0)
    rgb, flow = rng.normal(size=(7, 3)).astype("float32"), rng.normal(size=(7, 2)).astype("float32")
    np.save(tmp_path / "rgb.npy", rgb)
    np.save(tmp_path / "flow.npy", flow)
    rc, lines, _ = _run(capsys, model_dir=str(tmp_path / "det"),
                        features=[str(tmp_path / "rgb.npy"), str(tmp_path / "flow.npy")])
    assert rc == 0
    # 7 chunks of 0.5 s: seconds 0, 1, 2 hold two chunks each, second 3 one.
    probs = online.score_sequence(model, np.concatenate([rgb, flow], 1))
    expected = [probs[i : i + 2].mean(0) for i in (0, 2, 4, 6)]
    names = ["background", "jump", "run"]
    assert len(lines) == 4
    for second, (line, p) in enumerate(zip(lines, expected)):
        stamp, name, score = line.split()
        assert stamp == f"00:00:{second:02d}" and name == names[p.argmax()]
        assert float(score) == pytest.approx(p.max(), abs=1e-3)


def test_stream_errors_name_the_flag(tmp_path, capsys):
    _detector_dir(tmp_path / "det", 5, chunk_seconds=1.0)
    np.save(tmp_path / "x.npy", np.zeros((3, 4), "float32"))
    rc, _, err = _run(capsys, model_dir=str(tmp_path / "det"), features=[str(tmp_path / "x.npy")])
    assert rc == 2 and "--features give 4 features per chunk" in err
    rc, _, err = _run(capsys, model_dir=str(tmp_path / "det"), video="v.mp4")
    assert rc == 2 and "--feature_model_dir" in err


def test_stream_video_gives_the_detector_the_features_it_was_trained_on(tmp_path, capsys):
    """--video chunk features equal tfvideo-extract-features' for the same recognizer (TSM, 2 segments)."""
    import keras

    from trainers import _features

    keras.utils.set_random_seed(0)
    recognizer = models.get("tsm_tiny", num_classes=2, num_segments=2)
    recognizer.build((None, 1, 2, 32, 32, 3))
    config = _experiment.ExperimentConfig(model="tsm_tiny", num_classes=2, labels=["a", "b"],
                                          model_kwargs={"num_segments": 2},
                                          sampler={"type": "segment", "num_segments": 2},
                                          preprocess={"crop_size": 32, "resize_short": 32})
    config.write(str(tmp_path / "rec"))
    recognizer.save(os.path.join(tmp_path, "rec", _experiment.MODEL_FILE))
    frames = np.random.default_rng(0).integers(0, 255, size=(14, 32, 32, 3)).astype("uint8")
    data.write_video(str(tmp_path / "v.mp4"), frames, fps=4, options={"qp": "0"})

    # What tfvideo-extract-features writes for this video (the detector's training input).
    model, loaded = _experiment.load_trained_model(str(tmp_path / "rec"))
    decoded, _ = data.read_all_frames(str(tmp_path / "v.mp4"))
    offline = _features.chunk_features(_features.feature_extractor(model), decoded, loaded.build_preprocess(),
                                       chunk_size=4, frames_per_chunk=2)
    assert offline.shape[0] == 4  # 14 frames in chunks of 4: three full chunks and a short one.
    fps, chunks = stream.video_chunk_features(str(tmp_path / "v.mp4"), str(tmp_path / "rec"), chunk_frames=4)
    streamed = np.stack(list(chunks))
    assert fps == pytest.approx(4)
    np.testing.assert_allclose(streamed, offline, rtol=1e-5, atol=1e-5)
    # A single frame of the chunk would be another feature: the check above can fail.
    centre_only = _features.chunk_features(_features.feature_extractor(model), decoded[[2, 2, 2, 2]],
                                           loaded.build_preprocess(), 4, 2)[0]
    assert np.abs(offline[0] - centre_only).max() > 1e-3

    _detector_dir(tmp_path / "det", offline.shape[1], chunk_seconds=1.0)
    np.save(tmp_path / "offline.npy", offline)
    rc, from_video, err = _run(capsys, model_dir=str(tmp_path / "det"), video=str(tmp_path / "v.mp4"),
                               feature_model_dir=str(tmp_path / "rec"), chunk_frames=4)
    assert rc == 0, err
    rc, from_features, err = _run(capsys, model_dir=str(tmp_path / "det"), features=[str(tmp_path / "offline.npy")])
    assert rc == 0, err
    # 4 chunks of 4 frames at 4 fps: one a second.
    assert [line.split()[0] for line in from_video] == ["00:00:00", "00:00:01", "00:00:02", "00:00:03"]
    assert [line.split()[:2] for line in from_video] == [line.split()[:2] for line in from_features]
    for a, b in zip(from_video, from_features):
        assert float(a.split()[2]) == pytest.approx(float(b.split()[2]), abs=2e-3)
    assert all(re.fullmatch(r"\S+  (background|jump|run)  [0-9.]+", line) for line in from_video)
