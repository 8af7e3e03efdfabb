"""tfvideo-train --mixed_precision and --jit_compile, end to end through the binary.

Each variant trains the same tiny model on the same clips (same seed) and is compared with the
float32 run: the loss trajectory agrees within what the number format allows, the saved model
carries the policy, and tfvideo-evaluate reads it back.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import trainers_testlib as lib

from tfvideo import _experiment

pytestmark = pytest.mark.slow

_STEPS = ["--train_steps=3", "--seed=3", "--checkpoint_every_steps=0"]


def _train(moving_shapes, model_dir, *extra):
    args = lib.TINY + [f"--train_data={moving_shapes['train']}", f"--label_map={moving_shapes['label_map']}",
                       f"--model_dir={model_dir}"] + _STEPS + list(extra)
    result = lib.run("train", args)
    assert result.returncode == 0, result.stderr[-3000:]
    return lib.step_losses(str(model_dir))


@pytest.fixture(scope="module")
def float32_losses(moving_shapes, tmp_path_factory):
    return _train(moving_shapes, tmp_path_factory.mktemp("float32"))


# The first step sees the same initial weights and the same clips as the float32 run, so its
# loss differs only by the rounding of half-precision activations (float16: 10 mantissa bits,
# bfloat16: 7; measured 4e-4 and 5.5e-3). Later steps are not compared: float16's dynamic loss
# scaling starts at 2**15 and skips the updates whose scaled gradients overflow.
@pytest.mark.parametrize("policy, atol", [("mixed_float16", 5e-3), ("mixed_bfloat16", 3e-2)])
def test_mixed_precision_run_saves_the_policy_and_evaluates(policy, atol, float32_losses, moving_shapes, tmp_path):
    losses = _train(moving_shapes, tmp_path, f"--mixed_precision={policy}", "--checkpoint_every_steps=1")
    assert len(losses) == len(float32_losses) == 3
    assert np.all(np.isfinite(losses))
    assert abs(losses[0] - float32_losses[0]) < atol
    assert losses[0] != float32_losses[0]  # Half-precision arithmetic did run.
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["train"]["mixed_precision"] == policy

    # Loaded back under the run's policy: the backbone the recognizer builds in its constructor
    # too (a plain load_model gives it the global float32 policy), and the global policy is kept.
    model, _ = _experiment.load_trained_model(str(tmp_path))
    assert keras.mixed_precision.global_policy().name == "float32"
    convs = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) > 10 and all(layer.dtype_policy.name == policy for layer in convs)
    assert all(v.dtype == "float32" for v in model.trainable_variables)  # Float32 master weights.

    names = tf.train.load_checkpoint(str(tmp_path / "checkpoints")).get_variable_to_shape_map()
    scales = [n for n in names if "dynamic_scale" in n]
    if policy == "mixed_float16":  # Dynamic loss scaling, saved with the checkpoint so a resume keeps it.
        scale = tf.train.load_checkpoint(str(tmp_path / "checkpoints")).get_tensor(scales[0])
        assert 1 <= scale <= 2**15 and np.log2(scale) == int(np.log2(scale))
    else:  # bfloat16 has float32's exponent range: no loss scaling.
        assert not scales

    out = lib.run("evaluate", [f"--model_dir={tmp_path}", f"--eval_data={moving_shapes['val']}",
                               f"--output_dir={tmp_path / 'eval'}"])
    assert out.returncode == 0, out.stderr[-3000:]
    with open(tmp_path / "eval" / "metrics.json") as f:
        metrics = json.load(f)
    assert 0.0 <= metrics["top1"] <= 1.0 and metrics["num_videos"] == 8


def test_jit_compile_matches_the_graph_run(float32_losses, moving_shapes, tmp_path):
    losses = _train(moving_shapes, tmp_path, "--jit_compile")
    # XLA fuses and reorders float32 arithmetic: equal up to rounding (measured 2e-6 at lr 0.05).
    np.testing.assert_allclose(losses, float32_losses, rtol=0, atol=1e-3)
    assert os.path.exists(tmp_path / "model.keras")


def test_jit_compile_with_sync_batchnorm_is_rejected(moving_shapes, tmp_path):
    args = lib.TINY + [f"--train_data={moving_shapes['train']}", f"--label_map={moving_shapes['label_map']}",
                       f"--model_dir={tmp_path}", "--jit_compile", "--sync_batchnorm", "--train_steps=1"]
    result = lib.run("train", args)
    assert result.returncode != 0
    assert "--jit_compile cannot be combined with --sync_batchnorm" in result.stderr
    assert not os.path.exists(tmp_path / "checkpoints")
