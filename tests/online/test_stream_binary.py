"""tfvideo-stream over precomputed features and over a video file."""

import os
import re

import numpy as np
import pytest
from absl.testing import flagsaver

from tfvideo import data, models, online
from trainers import _experiment, stream


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


def test_stream_video_through_a_recognizer_backbone(tmp_path, capsys):
    import keras

    keras.utils.set_random_seed(0)
    recognizer = models.get("tsn_tiny", num_classes=2, num_segments=1)
    recognizer.build((None, 1, 32, 32, 3))
    feature_dim = recognizer.backbone.compute_output_shape((None, 32, 32, 3))[-1]
    config = _experiment.ExperimentConfig(model="tsn_tiny", num_classes=2, labels=["a", "b"],
                                          preprocess={"crop_size": 32, "resize_short": 32})
    config.write(str(tmp_path / "rec"))
    recognizer.save(os.path.join(tmp_path, "rec", _experiment.MODEL_FILE))
    _detector_dir(tmp_path / "det", feature_dim, chunk_seconds=1.0)
    frames = np.random.default_rng(0).integers(0, 255, size=(12, 32, 32, 3)).astype("uint8")
    data.write_video(str(tmp_path / "v.mp4"), frames, fps=4)
    rc, lines, err = _run(capsys, model_dir=str(tmp_path / "det"), video=str(tmp_path / "v.mp4"),
                          feature_model_dir=str(tmp_path / "rec"), chunk_frames=4)
    assert rc == 0, err
    # 12 frames at 4 fps in chunks of 4 frames: 3 chunks of 1 s each.
    assert [line.split()[0] for line in lines] == ["00:00:00", "00:00:01", "00:00:02"]
    assert all(re.fullmatch(r"\S+  (background|jump|run)  [0-9.]+", line) for line in lines)
