"""config.json's `clip` (the run's ClipSpec): the older sampler/preprocess layout still loads, and
`tfvideo-train --model=i3d_tiny` trains on the dense clip its preset names."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from framecode import frame_code_frames, read_frame_code

from tests.trainers import trainers_testlib as lib
from tfvideo import _experiment
from tfvideo import data as tfv_data
from trainers import _task

# A config.json as the previous version wrote it: sampler and preprocess dicts, no clip.
OLD_CONFIG = {
    "model": "tsm_tiny", "num_classes": 2, "model_kwargs": {"num_segments": 4}, "labels": ["a", "b"],
    "task": "recognition", "sampler": {"type": "segment", "num_segments": 4},
    "preprocess": {"crop_size": 32, "resize_short": 36, "flip": True, "flip_label_map": [1, 0]},
    "train": {"batch_size": 4}, "feature_spec": None,
}


def test_old_config_json_still_loads(tmp_path):
    model_dir = str(tmp_path)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(OLD_CONFIG, f)
    config = _experiment.ExperimentConfig.read(model_dir)
    spec = config.clip_spec
    assert spec == tfv_data.ClipSpec({"type": "segment", "num_segments": 4}, OLD_CONFIG["preprocess"])
    assert config.build_sampler(training=False).get_config() == tfv_data.SegmentSampler(4).get_config()
    assert config.build_preprocess(num_crops=3) == tfv_data.PreprocessConfig(
        crop_size=32, resize_short=36, flip_label_map=(1, 0), num_crops=3)
    # Written again, it has the new layout and reads back the same.
    written = json.loads(config.to_json())
    assert "sampler" not in written and "preprocess" not in written and written["clip"] == spec.get_config()
    assert _experiment.ExperimentConfig.from_json(config.to_json()) == config
    # An online detector's old config (sampler {} and no preprocess) and a config without a clip.
    online = _experiment.ExperimentConfig.from_json(json.dumps({"model": "idn", "task": "online_detection",
                                                                "sampler": {}}))
    assert online.clip is None and online.clip_spec == tfv_data.ClipSpec()
    with pytest.raises(ValueError, match=r"ClipSpec\.sampler: type='bogus'"):
        _experiment.ExperimentConfig.from_json(json.dumps({**OLD_CONFIG, "sampler": {"type": "bogus"}}))


def test_checkpoints_of_an_old_config_resume_with_the_same_clip(tmp_path):
    """A model_dir trained by the previous version takes the same run (same sampler) and
    refuses another clip."""
    model_dir = str(tmp_path)
    os.makedirs(os.path.join(model_dir, "checkpoints"))
    open(os.path.join(model_dir, "checkpoints", "checkpoint"), "w").close()
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(OLD_CONFIG, f)
    same = _experiment.ExperimentConfig(
        model="tsm_tiny", num_classes=2, model_kwargs={"num_segments": 4}, labels=["a", "b"],
        clip=tfv_data.ClipSpec({"type": "segment", "num_segments": 4}, {"crop_size": 32}))
    _experiment.check_model_dir(model_dir, same)
    other = _experiment.ExperimentConfig(
        model="tsm_tiny", num_classes=2, model_kwargs={"num_segments": 4}, labels=["a", "b"],
        clip=tfv_data.ClipSpec({"type": "dense", "clip_len": 4}, {"crop_size": 32}))
    with pytest.raises(ValueError, match=r"holds checkpoints of a different model \(clip_sampler: "):
        _experiment.check_model_dir(model_dir, other)


@pytest.mark.slow
def test_i3d_trains_on_dense_clips_through_the_binary(tmp_path):
    """tfvideo-train --model=i3d_tiny: config.json records the dense clip (8 frames every 2nd),
    the pipeline built from it gives consecutive frames at that interval, and the model's time
    axis is the clip length."""
    root = tmp_path / "videos"
    root.mkdir()
    lines = []
    for i in range(4):
        path = str(root / f"v{i}.mp4")
        tfv_data.write_video(path, frame_code_frames(40 + 3 * i, height=48, width=48), fps=10)
        lines.append(f"{path} {i % 2}")
    train_list = tmp_path / "train.txt"
    train_list.write_text("\n".join(lines) + "\n")
    model_dir = str(tmp_path / "run")
    out = lib.run("train", ["--model=i3d_tiny", f"--train_data={train_list}", "--num_classes=2",
                            f"--model_dir={model_dir}", "--train_steps=1", "--batch_size=2", "--crop_size=32",
                            "--resize_short=32", "--recipe=none", "--dropout=0", "--verbose=0", "--seed=3"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "clip (config.json 'clip'): dense clip_len=8 frame_interval=2" in out.stdout, out.stdout

    config = _experiment.ExperimentConfig.read(model_dir)
    assert config.clip["sampler"] == {"type": "dense", "clip_len": 8, "frame_interval": 2, "num_clips": 1,
                                      "short_policy": "loop"}
    assert config.clip["preprocess"]["crop_size"] == 32
    # The frames the pipeline samples from this config: 8 consecutive frames every 2nd frame.
    sampler = config.build_sampler(training=True)
    raw = tfv_data.video_dataset(str(train_list), sampler, preprocess=False, seed=5)
    starts = set()
    for element in raw.take(4):
        codes = [read_frame_code(f) for f in element["video"].numpy()[0]]
        assert np.all(np.diff(codes) == 2), codes
        starts.add(codes[0])
    assert len(starts) > 1  # Random training starts.

    # The batches training takes from config.json reach the trained model: time axis 8.
    model, _ = _experiment.load_trained_model(model_dir)
    assert model.num_frames == 8
    batch = next(iter(_task.dataset(config, str(train_list), training=True, batch_size=2, seed=0)))
    video = batch["video"] if isinstance(batch, dict) else batch[0]["video"]
    assert tuple(video.shape) == (2, 1, 8, 32, 32, 3)
    assert model(video, training=False).shape == (2, 2)
    with pytest.raises(ValueError, match="num_frames"):  # The model takes no other clip length.
        model(tf.zeros((1, 1, 4, 32, 32, 3)), training=False)
