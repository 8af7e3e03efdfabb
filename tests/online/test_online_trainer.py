"""--task=online_detection end to end: train on npy folders, evaluate, export the stream model."""

import json
import os
import re
import types

import numpy as np
import pytest
import tensorflow as tf

from tfvideo import online
from trainers import _online


class _Flags(types.SimpleNamespace):
    """Stands in for absl FLAGS: attributes, and `flags[name].present` for the ones given."""

    def __getitem__(self, name):
        return types.SimpleNamespace(present=hasattr(self, name))


def _write_dataset(root, streams, split):
    names = []
    for k, (features, targets) in enumerate(streams):
        name = f"{split}_{k:03d}"
        for folder, part in (("rgb", features[:, :10]), ("flow", features[:, 10:]), ("targets", targets)):
            os.makedirs(root / folder, exist_ok=True)
            np.save(root / folder / f"{name}.npy", part)
        names.append(name)
    (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    return str(root / f"{split}.txt")


@pytest.mark.slow
def test_train_evaluate_export(tmp_path, capsys):
    train_list = _write_dataset(tmp_path, online.make_onset_streams(24, seed=0), "train")
    test_list = _write_dataset(tmp_path, online.make_onset_streams(6, seed=1), "test")
    model_dir = str(tmp_path / "run")
    flags = _Flags(model="gru_tiny", model_dir=model_dir, train_data=train_list, eval_data=test_list,
                   features_dirs=[str(tmp_path / "rgb"), str(tmp_path / "flow")], targets_dir=str(tmp_path / "targets"),
                   history=16, window_stride=8, batch_size=16, epochs=12, learning_rate=3e-3, seed=0, verbose=0,
                   detector_kwargs="{}")
    assert _online.train_main(flags) == 0
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    assert config["task"] == "online_detection" and config["num_classes"] == 6
    assert config["model_kwargs"]["feature_dim"] == 16
    assert os.path.exists(os.path.join(model_dir, "model.keras"))
    capsys.readouterr()

    assert _online.evaluate_main(_Flags(model_dir=model_dir)) == 0
    printed = capsys.readouterr().out
    mean_ap = float(re.search(r"per-frame mAP: ([0-9.]+)", printed).group(1))
    assert mean_ap >= 0.8, printed
    assert re.search(r"mcAP: [0-9.]+", printed)

    from tfvideo.export import _streaming

    path = _streaming.export_from_model_dir(model_dir, str(tmp_path / "exports"), model_name="onset")
    assert path.endswith(os.path.join("onset", "1"))
    loaded = tf.saved_model.load(path)
    features = np.load(tmp_path / "rgb" / "test_000.npy"), np.load(tmp_path / "flow" / "test_000.npy")
    chunks = np.concatenate(features, 1)
    state = loaded.init_state(tf.constant(1))
    exported = []
    for chunk in chunks:
        scores, state = loaded.step(tf.constant(chunk[None]), state)
        exported.append(scores.numpy()[0])
    from tfvideo import _experiment

    detector, _ = _experiment.load_trained_model(model_dir)
    np.testing.assert_allclose(np.stack(exported), online.score_sequence(detector, chunks), atol=1e-5)


def test_flag_errors_name_the_flag(tmp_path, capsys):
    flags = _Flags(model="tsm_tiny", model_dir=str(tmp_path / "x"), train_data="a.txt", detector_kwargs="{}")
    assert _online.train_main(flags) == 2
    assert "--model='tsm_tiny' is not an online detector" in capsys.readouterr().err
    flags = _Flags(model="gru_tiny", model_dir=str(tmp_path / "x"), train_data=str(tmp_path / "list.txt"),
                   detector_kwargs="{}")
    assert _online.train_main(flags) == 2
    assert "--features_dirs and --targets_dir are required" in capsys.readouterr().err


def test_train_and_evaluate_from_tfrecords(tmp_path, capsys):
    from tfvideo import data

    path = str(tmp_path / "videos.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for k, (features, targets) in enumerate(online.make_onset_streams(3, num_chunks=20, num_actions=2,
                                                                            feature_dim=4, seed=2)):
            labels = targets.argmax(1)
            segments = [(t, t, int(c) - 1) for t, c in enumerate(labels) if c > 0]
            writer.write(data.make_chunk_feature_example(features, segments, media_id=f"v{k}").SerializeToString())
    flags = _Flags(model="chunk_mlp_tiny", model_dir=str(tmp_path / "run"), train_data=path, eval_data=path,
                   num_classes=2, history=8, batch_size=4, epochs=1, seed=0, verbose=0, detector_kwargs="{}")
    assert _online.train_main(flags) == 0
    with open(tmp_path / "run" / "eval" / "online_metrics.json") as f:
        results = json.load(f)
    assert results["num_videos"] == 3 and results["num_chunks"] == 60
    assert sorted(results["per_class_ap"]) == ["1", "2"]
    assert "per-frame mAP:" in capsys.readouterr().out


def test_oadtr_trains_with_its_authors_loss_weight_and_real_history(tmp_path, capsys):
    from tfvideo import data

    streams = online.make_onset_streams(2, num_chunks=20, num_actions=2, feature_dim=4, seed=2)
    path = str(tmp_path / "videos.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for k, (features, targets) in enumerate(streams):
            segments = [(t, t, int(c) - 1) for t, c in enumerate(targets.argmax(1)) if c > 0]
            writer.write(data.make_chunk_feature_example(features, segments, media_id=f"v{k}").SerializeToString())
    base = dict(model="oadtr_tiny", train_data=path, num_classes=2, history=8, batch_size=4, epochs=1, seed=0,
                verbose=0, detector_kwargs="{}")
    assert _online.train_main(_Flags(model_dir=str(tmp_path / "run"), **base)) == 0
    with open(tmp_path / "run" / "config.json") as f:
        assert json.load(f)["train"]["online"]["anticipation_weight"] == 0.5  # OadTR's classification_pred_loss_coef
    assert _online.train_main(_Flags(model_dir=str(tmp_path / "bad"), anticipation_weight=-1.0, **base)) == 2
    assert "--anticipation_weight=-1 must be >= 0." in capsys.readouterr().err


def test_train_steps_stops_at_exactly_that_many_steps_and_resumes_to_more(tmp_path):
    from tfvideo import _experiment, data

    path = str(tmp_path / "videos.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:  # 3 videos x 20 chunks: 3 windows of 8 each, 3 batches of 4 a pass.
        for k, (features, targets) in enumerate(online.make_onset_streams(3, num_chunks=20, num_actions=2,
                                                                            feature_dim=4, seed=2)):
            segments = [(t, t, int(c) - 1) for t, c in enumerate(targets.argmax(1)) if c > 0]
            writer.write(data.make_chunk_feature_example(features, segments, media_id=f"v{k}").SerializeToString())
    model_dir = str(tmp_path / "run")
    base = dict(model="chunk_mlp_tiny", model_dir=model_dir, train_data=path, num_classes=2, history=8, batch_size=4,
                seed=0, verbose=0, detector_kwargs="{}")

    def steps_done():
        with open(os.path.join(model_dir, "logs", "train_history.jsonl")) as f:
            return [entry["step"] for entry in map(json.loads, f) if "event" not in entry]  # Epoch ends.

    assert _online.train_main(_Flags(train_steps=4, **base)) == 0  # 1 pass + 1 step of the second.
    assert steps_done() == [3, 4]
    model, config = _experiment.load_trained_model(model_dir)
    assert int(model.optimizer.iterations.numpy()) == 4
    assert (config.train.train_steps, config.train.epochs, config.train.online.history) == (4, None, 8)
    assert _online.train_main(_Flags(train_steps=7, **base)) == 0  # Resumes after epoch 2: its third pass ends at 7.
    assert steps_done() == [3, 4, 7] and _experiment.ExperimentConfig.read(model_dir).train.train_steps == 7


def test_train_steps_and_recognition_flags_are_checked(tmp_path, capsys):
    flags = _Flags(model="gru_tiny", model_dir=str(tmp_path / "x"), train_data="a.txt", detector_kwargs="{}",
                   train_steps=0)
    assert _online.train_main(flags) == 2
    assert capsys.readouterr().err.strip().endswith("--train_steps=0 must be >= 1.")
    flags = _Flags(model="gru_tiny", model_dir=str(tmp_path / "x"), train_data="a.txt", detector_kwargs="{}",
                   lr_schedule="cosine")  # Recorded in config.json by recognition only: refused, not ignored.
    assert _online.train_main(flags) == 2
    assert capsys.readouterr().err.strip().endswith("--lr_schedule applies to recognition training, not "
                                                    "--task=online_detection.")
    assert not os.path.exists(tmp_path / "x")
