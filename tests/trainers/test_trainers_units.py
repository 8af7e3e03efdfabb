"""Library pieces of the trainers: recipes, lr schedule, remat gradients, partial BN,
metrics against hand computations, chunk indices."""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo import _experiment
from trainers import _evaluation, _features, _recipes, _remat, _task


def test_tsm_recipe_scales_lr_with_batch_and_explicit_flags_win():
    values = {"batch_size": 128, "learning_rate": 0.5, "optimizer": "adam", "dropout": None, "partial_bn": False}
    out = _recipes.apply_recipe("tsm", values, explicit=set())
    assert out["learning_rate"] == pytest.approx(0.02)  # Official TSM: 0.02 at batch 128.
    assert (out["optimizer"], out["momentum"], out["dropout"], out["partial_bn"]) == ("sgd", 0.9, 0.5, False)
    out = _recipes.apply_recipe("tsm", values, explicit={"learning_rate", "optimizer"})
    assert (out["learning_rate"], out["optimizer"]) == (0.5, "adam")
    tsn = _recipes.apply_recipe("tsn", {**values, "batch_size": 64}, explicit=set())
    assert tsn["learning_rate"] == pytest.approx(0.001 * 64 / 256)
    assert (tsn["partial_bn"], tsn["dropout"], tsn["momentum"]) == (True, 0.8, 0.9)
    with pytest.raises(ValueError, match="--recipe='nope'"):
        _recipes.apply_recipe("nope", values, set())


def test_lr_schedule_values():
    step = _task.WarmupSchedule(0.1, 12, "step", boundaries=[4, 8], decay_rate=0.1)
    got = [float(step(s)) for s in (0, 3, 4, 7, 8, 11)]
    np.testing.assert_allclose(got, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    cosine = _task.WarmupSchedule(0.1, 10, "cosine", warmup_steps=2)
    got = [float(cosine(s)) for s in (0, 1, 2, 6, 10)]
    np.testing.assert_allclose(got, [0.1 * 0.5, 0.1, 0.1, 0.05, 0.0], rtol=1e-6, atol=1e-9)


def _config(**train):
    return _experiment.ExperimentConfig(
        model="tsm_tiny", num_classes=4, model_kwargs={"num_segments": 4, "dropout": 0.0},
        sampler={"type": "segment", "num_segments": 4}, preprocess={"crop_size": 32, "resize_short": 32},
        train=train)


def _train_step(model, video, label):
    """One SGD step in a tf.function (graph mode, as in training): loss and gradients."""
    optimizer = keras.optimizers.SGD(0.1)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(_task.per_example_loss(label, model(video, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss, grads

    return step()


def test_remat_gives_the_same_gradients_and_state(monkeypatch):
    recomputed = []
    original = _remat._recompute

    def counting(fn, state_layers):
        def traced(x):
            recomputed.append(1)
            return fn(x)
        return original(traced, state_layers)

    monkeypatch.setattr(_remat, "_recompute", counting)
    keras.utils.set_random_seed(0)
    plain = _task.build_model(_config())
    remat = _task.build_model(_config(remat=True))
    remat.set_weights(plain.get_weights())
    video = tf.random.stateless_normal([2, 1, 4, 32, 32, 3], seed=[1, 2])
    label = tf.constant([1, 3])
    loss_a, grads_a = _train_step(plain, video, label)
    calls_before = len(recomputed)
    loss_b, grads_b = _train_step(remat, video, label)
    # Each segment but the last (7 in all) is traced twice: in the forward and the backward pass.
    assert len(recomputed) - calls_before == 2 * 6
    assert float(loss_a) == pytest.approx(float(loss_b), abs=1e-6)
    assert len(grads_a) == len(grads_b) > 30
    for a, b, v in zip(grads_a, grads_b, plain.trainable_variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-6, err_msg=v.path)
    # Same weights and BatchNorm moving statistics after the step (no double update on recompute).
    for a, b in zip(plain.get_weights(), remat.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


# TensorFlow keeps CPU allocator statistics only with its BFC CPU allocator, which must be chosen
# before TensorFlow loads; oneDNN (on by default only on CPUs with AVX512-VNNI and newer) is pinned
# on so that the measurement does not depend on the machine: without it, Eigen's convolution
# scratch buffers dominate the peak of so small a model. So the measurement runs in its own process.
_PEAK_ENV = {"TF_CPU_ALLOCATOR_USE_BFC": "true", "TF_ENABLE_ONEDNN_OPTS": "1", "CUDA_VISIBLE_DEVICES": ""}


def test_remat_frees_activations_between_forward_and_backward():
    """The allocator's peak during a training step shrinks: not every activation waits for the backward pass."""
    script = os.path.join(os.path.dirname(__file__), "remat_peak.py")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, **_PEAK_ENV, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    peaks = json.loads(done.stdout.strip().splitlines()[-1])
    assert peaks["plain"] > 0 and peaks["remat"] > 0, peaks
    assert peaks["remat"] < 0.8 * peaks["plain"], peaks


def test_remat_without_a_segmentable_backbone_is_rejected():
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(4)(inputs)), name="mlp")
    with pytest.raises(ValueError, match="--remat: mlp has no Functional backbone"):
        _remat.apply_remat(model)


def test_cut_tensors_are_residual_block_outputs():
    model = _task.build_model(_config())
    names = [t._keras_history[0].name for t in _remat.cut_tensors(model.backbone)]
    assert [n for n in names if n.endswith("_out")] == [
        "conv2_block1_out", "conv3_block1_out", "conv4_block1_out", "conv5_block1_out"]
    assert "conv2_block1_1_relu" not in names  # Inside a block: the shortcut is still alive.


def test_partial_bn_freezes_all_batchnorm_but_the_first():
    model = _task.build_model(_config(partial_bn=True))
    bns = _task.batchnorm_layers(model)
    assert len(bns) > 5
    assert [b.trainable for b in bns] == [True] + [False] * (len(bns) - 1)
    assert bns[0].name == "conv1_bn"


def test_classification_metrics_against_hand_computation():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    predicted = [0, 1, 1, 1, 2, 0, 2]
    second = [1, 0, 0, 2, 1, 2, 0]
    scores = np.full((7, 3), 0.1)
    scores[np.arange(7), second] = 0.3
    scores[np.arange(7), predicted] = 0.6
    m = _evaluation.classification_metrics(labels, scores, 3)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert m["top1"] == pytest.approx(5 / 7)
    assert m["mean_class_accuracy"] == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)
    assert _evaluation.top_k_accuracy(labels, scores, 2) == pytest.approx(7 / 7)
    assert m["top5"] == 1.0
    # A class absent from the labels does not count in the mean class accuracy.
    m = _evaluation.classification_metrics(np.array([0, 0, 1]), np.eye(4)[[0, 1, 1]], 4)
    assert m["per_class_accuracy"] == [0.5, 1.0, None, None]
    assert m["mean_class_accuracy"] == pytest.approx(0.75)


class _ChannelMeanModel(keras.Model):
    """Deterministic 'recognizer': logits = 5 * one_hot(round(mean of channel 0)) over the views."""

    def call(self, video, training=None):
        cls = tf.cast(tf.round(tf.reduce_mean(video[..., 0], axis=list(range(1, len(video.shape) - 1)))), tf.int32)
        return 5.0 * tf.one_hot(cls, 3)


def test_predict_writes_consistent_csv(tmp_path):
    classes = np.array([0, 2, 1, 2, 2])
    video = np.broadcast_to(classes[:, None, None, None, None, None].astype(np.float32), (5, 2, 2, 4, 4, 3))
    ds = tf.data.Dataset.from_tensor_slices({"video": video, "label": np.array([0, 2, 1, 1, 0], np.int32),
                                             "media_id": [f"v{i}" for i in range(5)]}).batch(2)
    labels, probs, ids = _evaluation.predict(_ChannelMeanModel(), ds)
    assert ids == ["v0", "v1", "v2", "v3", "v4"]
    np.testing.assert_array_equal(np.argmax(probs, -1), classes)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    metrics = _evaluation.classification_metrics(labels, probs, 3)
    assert metrics["confusion_matrix"] == [[1, 0, 1], [0, 1, 1], [0, 0, 1]]
    assert metrics["mean_class_accuracy"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    _evaluation.write_report(str(tmp_path), metrics, ids, labels, probs, ["a", "b", "c"])
    with open(tmp_path / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["media_id"], r["label_name"], r["prediction_name"]) for r in rows] == [
        ("v0", "a", "a"), ("v1", "c", "c"), ("v2", "b", "b"), ("v3", "b", "c"), ("v4", "a", "c")]
    png = tf.io.decode_png(tf.io.read_file(str(tmp_path / "confusion_matrix.png")))
    assert 400 <= png.shape[0] <= 900 and 400 <= png.shape[1] <= 1000  # The labelled figure (test_reports.py).


def test_chunk_frame_indices():
    np.testing.assert_array_equal(_features.chunk_frame_indices(16, 6, 4),
                                  [[0, 2, 3, 5], [6, 8, 9, 11], [12, 14, 15, 15]])
    np.testing.assert_array_equal(_features.chunk_frame_indices(12, 6, 1), [[3], [9]])
    with pytest.raises(ValueError, match="chunk_size=0"):
        _features.chunk_frame_indices(10, 0, 1)


def test_dataset_passes_the_run_s_input_policy(monkeypatch):
    seen = {}

    def fake_video_dataset(source, sampler, **kwargs):
        seen.update(kwargs, source=source, training=sampler.training)
        return tf.data.Dataset.range(1)

    monkeypatch.setattr(_task.tfv_data, "video_dataset", fake_video_dataset)
    config = _config(shuffle_buffer=16, on_error="skip")
    _task.dataset(config, "shards-*.tfrecord", True, batch_size=2, seed=5)
    assert (seen["shuffle_buffer"], seen["on_error"], seen["seed"], seen["training"]) == (16, "skip", 5, True)
    _task.dataset(_config(), "val.txt", False, batch_size=2)
    assert (seen["shuffle_buffer"], seen["on_error"], seen["training"]) == (512, "raise", False)
