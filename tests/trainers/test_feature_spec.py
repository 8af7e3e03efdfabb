"""tfvideo-train --feature_spec: the spec's video column defines the clip, runs in tf.data, is recorded.

The trained run itself (`feature_spec_run`, a `tfvideo-train` subprocess) is shared with the
export and serving tests, which check the exported `features` signature.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import trainers_testlib as lib
from test_trainers_train import _BAD_FLAGS_SCRIPT

from tests.export import conftest as export_fixtures
from tests.export.conftest import SPEC_CLIP_LENGTH, SPEC_CROP, SPEC_RESIZE, video_feature_layer
from tfvideo import _experiment
from tfvideo import data as tfv_data
from tfvideo import feature_columns as fc
from trainers import _task

pytestmark = pytest.mark.slow
# The trained run is shared with tests/export and tests/serving (session fixtures).
feature_spec_run = export_fixtures.feature_spec_run
feature_spec_loaded = export_fixtures.feature_spec_loaded


def test_train_takes_the_clip_from_the_spec_and_records_it(feature_spec_run, feature_spec_loaded):
    model, config = feature_spec_loaded
    with open(os.path.join(feature_spec_run["model_dir"], _experiment.CONFIG_FILE)) as f:
        recorded = json.load(f)
    # The spec itself is in config.json (its file was deleted after training).
    assert recorded["feature_spec"] == feature_spec_run["spec"]
    # No --num_segments / --crop_size / --resize_short given: all come from the video column.
    assert recorded["clip"]["sampler"] == {"type": "segment", "num_segments": SPEC_CLIP_LENGTH, "new_length": 1,
                                           "num_clips": 1, "short_policy": "repeat_last"}
    pre = recorded["clip"]["preprocess"]
    assert (pre["crop_size"], pre["resize_short"], pre["mean"], pre["std"]) == (
        SPEC_CROP, SPEC_RESIZE, list(tfv_data.IMAGENET_MEAN), list(tfv_data.IMAGENET_STD))
    assert pre["flip"] is True  # --flip's default: training-only fields stay the flags'.
    assert recorded["model_kwargs"]["num_segments"] == SPEC_CLIP_LENGTH  # tsm_tiny's preset says 8.
    assert model.clip_length == SPEC_CLIP_LENGTH
    losses = lib.step_losses(feature_spec_run["model_dir"])
    assert len(losses) == 2 and np.all(np.isfinite(losses))
    assert "val_accuracy=" in feature_spec_run["stdout"]  # The eval pipeline ran through the layer too.


def test_dataset_runs_the_feature_layer_and_matches_its_serving_transform(feature_spec_run, feature_spec_loaded):
    """Evaluation batches equal the spec's FeatureLayer applied to the raw frames (what serving runs)."""
    _, config = feature_spec_loaded
    val = feature_spec_run["data"]["val"]
    records = tfv_data.read_annotations(val, label_map=config.labels)[:2]
    ds = _task.dataset(config, val, training=False, batch_size=2)
    element = next(iter(ds))
    # Every frame of each video, uint8 [N, H, W, 3]: the layer samples them itself.
    raw = [tfv_data.read_frames(r.path, np.arange(tfv_data.probe_video(r.path).num_frames)[None])[0] for r in records]
    layer = fc.FeatureLayer.from_spec(config.feature_spec)
    expected = layer({"video": tf.constant(np.stack(raw))})["video"].numpy()
    np.testing.assert_allclose(element["video"].numpy(), expected, atol=1e-5)

    # A column under another raw key gets the pipeline's clip under that key.
    renamed = dataclasses.replace(config, feature_spec=video_feature_layer(key="rgb").to_spec())
    element = next(iter(_task.dataset(renamed, val, training=False, batch_size=2)))
    np.testing.assert_allclose(element["video"].numpy(), expected, atol=1e-5)

    # The layer in the map checks the pipeline's clips against its column (a hand-edited
    # config whose spec disagrees with its sampler / preprocess), naming the column.
    skewed = dataclasses.replace(config, feature_spec=video_feature_layer(size=28).to_spec())
    with pytest.raises(ValueError, match=r"video_column 'video': preprocessed clips have shape .*32, 32, 3\)"):
        _task.dataset(skewed, val, training=True, batch_size=2)
    with pytest.raises(ValueError, match=r"video column 'video' makes clips \[4, 28, 28, 3\] per view"):
        _task.build_model(skewed)


def test_bad_feature_specs_are_rejected_before_any_work(moving_shapes, tmp_path):
    specs = {
        "side_feature": video_feature_layer(extra=[fc.numeric_column("duration")]),
        "no_video": fc.FeatureLayer([fc.numeric_column("duration")]),
        "flow": fc.FeatureLayer([fc.video_column("video", tfv_data.SegmentSampler(4), size=32, modality="flow")]),
        "two_videos": fc.FeatureLayer([fc.video_column(k, tfv_data.SegmentSampler(4), size=32) for k in ("a", "b")]),
    }
    paths = {name: layer.save_spec(str(tmp_path / f"{name}.json")) for name, layer in specs.items()}
    (tmp_path / "broken.json").write_text('{"format": "tfvideo.feature_spec",\n oops}')
    good = str(video_feature_layer().save_spec(str(tmp_path / "good.json")))
    base = ["--model=tsm_tiny", f"--train_data={moving_shapes['train']}", f"--label_map={moving_shapes['label_map']}",
            "--train_steps=1", "--verbose=0"]
    cases = {name: base + [f"--feature_spec={path}", f"--model_dir={tmp_path / name}"] for name, path in paths.items()}
    cases["broken"] = base + [f"--feature_spec={tmp_path / 'broken.json'}", f"--model_dir={tmp_path / 'broken'}"]
    cases["crop_size"] = base + [f"--feature_spec={good}", "--crop_size=48", f"--model_dir={tmp_path / 'crop_size'}"]
    cases["num_segments"] = base + [f"--feature_spec={good}", "--num_segments=8", f"--model_dir={tmp_path / 'segs'}"]
    cases["missing"] = base + [f"--feature_spec={tmp_path / 'nope.json'}", f"--model_dir={tmp_path / 'missing'}"]
    proc = subprocess.run([sys.executable, "-c", _BAD_FLAGS_SCRIPT, json.dumps(cases)], check=False, cwd=lib.REPO,
                          env=lib.env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.split("RESULTS", 1)[1])
    assert "column 'duration' (NumericColumn) is not a video column" in results["side_feature"]
    assert f"--feature_spec={paths['side_feature']}" in results["side_feature"]
    assert "column 'duration' (NumericColumn) is not a video column" in results["no_video"]
    assert "modality 'flow'" in results["flow"]
    assert "exactly one video_column, found ['a', 'b']" in results["two_videos"]
    assert "broken.json:2: invalid JSON" in results["broken"]
    assert "--crop_size=48 disagrees with --feature_spec=" in results["crop_size"]
    assert "crop_size=32" in results["crop_size"]
    assert "--num_segments=8 disagrees" in results["num_segments"] and "num_segments=4" in results["num_segments"]
    assert "--feature_spec=" in results["missing"] and "nope.json: no such file" in results["missing"]
    for name in ("side_feature", "no_video", "flow", "two_videos", "broken", "crop_size", "segs", "missing"):
        assert not (tmp_path / name).exists(), name  # Nothing written for a rejected run.


def test_evaluate_reads_a_feature_spec_run_and_agrees_with_its_validation(feature_spec_run, tmp_path):
    out = lib.run("evaluate", [f"--model_dir={feature_spec_run['model_dir']}",
                               f"--eval_data={feature_spec_run['data']['val']}", f"--output_dir={tmp_path}"])
    assert out.returncode == 0, out.stderr[-3000:]
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["num_videos"] == 8
    # The trainer's end-of-training validation used the same centre view of the same clips.
    validation = [r["val_accuracy"] for r in lib.history(feature_spec_run["model_dir"]) if "val_accuracy" in r]
    assert metrics["top1"] == pytest.approx(validation[-1])


def test_resuming_with_another_feature_spec_is_rejected(feature_spec_run, tmp_path):
    with open(os.path.join(feature_spec_run["model_dir"], _experiment.CONFIG_FILE)) as f:
        config = json.load(f)
    # A model_dir whose run used the same clip under another raw key ("clip", not "video").
    config["feature_spec"] = json.loads(json.dumps(config["feature_spec"]).replace('"video"', '"clip"'))
    assert config["feature_spec"] != feature_spec_run["spec"]
    other = tmp_path / "other"
    other.mkdir()
    (other / _experiment.CONFIG_FILE).write_text(json.dumps(config))
    (other / "checkpoints").mkdir()  # That run's training state, which the new spec could not resume.
    (other / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    spec = str(video_feature_layer().save_spec(str(tmp_path / "spec.json")))
    data = feature_spec_run["data"]
    argv = ["--model=tsm_tiny", f"--feature_spec={spec}", f"--train_data={data['train']}",
            f"--label_map={data['label_map']}", f"--model_dir={other}", "--train_steps=1", "--verbose=0", "--dropout=0"]
    proc = subprocess.run([sys.executable, "-c", _BAD_FLAGS_SCRIPT, json.dumps({"other": argv})], check=False,
                          cwd=lib.REPO, env=lib.env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    message = json.loads(proc.stdout.split("RESULTS", 1)[1])["other"]
    assert f"--model_dir={other} holds checkpoints of a different model (feature_spec:" in message
    assert sorted(os.listdir(other)) == ["checkpoints", _experiment.CONFIG_FILE]  # Nothing else written.
    assert os.listdir(other / "checkpoints") == ["checkpoint"]
