"""A preset and a recipe registered by the user (tfvideo.models.register_preset / register_recipe)
train through the trainer binary: --model and --recipe accept them, a mistyped recipe is refused
with one line listing the registered ones."""

import json
import os

import pytest
import trainers_testlib as lib

pytestmark = pytest.mark.slow

# A user's launcher: register, then run the stock binary (the --recipe choices are read when
# trainers.train is imported, so registration comes first).
_LAUNCHER = r"""
import sys
from absl import flags
from tfvideo import models
from trainers import _cli, train  # Before registering: --recipe reads the registry when parsed.
models.register_preset("user_tsm_micro", models.TSM, "TSM, ResNet-10 width 8, 2 segments", num_segments=2,
                       backbone="resnet10", width=8, dropout=0.0)
models.register_recipe("user_sgd", models.Recipe(optimizer="sgd", momentum=0.5, learning_rate=0.04,
                                                 lr_reference_batch=8, lr_schedule="constant", clip_norm=5.0))
try:
    _cli.parse_flags("tfvideo-train", ["tfvideo-train", "--recipe=user_sdg"])
except SystemExit as e:
    print(f"mistyped recipe: exit {e.code}", flush=True)
flags.FLAGS.unparse_flags()
sys.argv = ["tfvideo-train", *sys.argv[1:]]
train.run()
"""


def test_user_preset_and_recipe_train_through_the_binary(moving_shapes, tmp_path):
    model_dir = str(tmp_path / "run")
    proc = lib.subprocess_python(_LAUNCHER, [
        "--model=user_tsm_micro", "--recipe=user_sgd", f"--train_data={moving_shapes['train']}",
        f"--label_map={moving_shapes['label_map']}", f"--model_dir={model_dir}", "--batch_size=4", "--train_steps=2",
        "--crop_size=32", "--resize_short=32", "--momentum=0.7", "--verbose=0"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mistyped recipe: exit 2" in proc.stdout
    refused = [line for line in proc.stderr.splitlines() if line.startswith("tfvideo-train: error:")]
    assert len(refused) == 1 and "--recipe=user_sdg" in refused[0], proc.stderr[-3000:]
    assert "<auto|finetune|none|scratch|tsm|tsn|user_sgd>" in refused[0], refused[0]

    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    assert config["model"] == "user_tsm_micro"
    train = config["train"]
    assert train["recipe"] == "user_sgd"
    # The recipe's values, its rate scaled to the batch (0.04 at 8 -> 0.02 at 4); the explicit flag wins.
    opt, schedule = train["optimizer"], train["schedule"]
    assert (opt["name"], opt["learning_rate"], schedule["name"], opt["clip_norm"]) == ("sgd", 0.02, "constant", 5.0)
    assert opt["momentum"] == 0.7
    # The preset's 2 segments define the clip.
    assert config["clip"]["sampler"]["num_segments"] == 2
    steps = [r for r in lib.history(model_dir) if "loss" in r]
    assert len(steps) == 2 and all(r["loss"] > 0 for r in steps)
    assert os.path.exists(os.path.join(model_dir, "model.keras"))
