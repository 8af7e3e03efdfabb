"""--recipe=auto resolution and the flip label map a run uses."""

import pytest
from absl import flags

from trainers import _recipes

_FLAGS = {"batch_size": 8, "learning_rate": 0.01, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0,
          "lr_schedule": "constant", "warmup_epochs": 0.0, "lr_decay_at": [], "lr_decay_rate": 0.1, "clip_norm": 0.0,
          "partial_bn": False, "dropout": None, "crop_size": None, "resize_short": None, "train_crop": None}


def _auto(model, sizes=(), pretrained=False, epochs=15, explicit=(), **values):
    facts = _recipes.RunFacts(model=model, pretrained=pretrained, frame_sizes=list(sizes), epochs=epochs)
    return _recipes.apply_recipe("auto", {**_FLAGS, **values}, set(explicit), facts)


def test_input_size_never_upscales_small_frames():
    assert _recipes.input_size("tsm_tiny", 240) == (56, 64)
    assert _recipes.input_size("tsm_tiny", 64) == (56, 64)
    assert _recipes.input_size("tsm_tiny", 48) == (40, 48)  # 7/8 of 48 = 42 -> multiple of 8.
    assert _recipes.input_size("tsm_r50", 360) == (224, 256)
    assert _recipes.input_size("tsm_r50", 96) == (80, 96)
    assert _recipes.input_size("tsm_r50", 20) == (32, 32)  # Floor: the backbones need 32 px.
    assert _recipes.input_size("tsm_r50", None) == (224, 256)


def test_auto_from_scratch_on_small_videos():
    out = _auto("tsm_tiny", sizes=[(64, 80), (48, 64), (120, 160)])
    assert (out["optimizer"], out["lr_schedule"], out["learning_rate"]) == ("adam", "cosine", 0.002)
    assert (out["warmup_epochs"], out["weight_decay"], out["partial_bn"]) == (1.0, 0.0, False)
    assert (out["crop_size"], out["resize_short"]) == (56, 64)  # Median short side 64.
    assert out["train_crop"] == "center"  # Corner crops cut central actions away (a rotation's sense).
    assert out["recipe"] == "auto" and out["dropout"] is None  # The preset's dropout.
    # Square-root learning-rate scaling with the batch for Adam; short runs warm up for a tenth.
    out = _auto("tsm_r50", sizes=[(96, 128)], epochs=5, batch_size=32)
    assert out["learning_rate"] == pytest.approx(0.004)
    assert out["warmup_epochs"] == 0.5 and (out["crop_size"], out["resize_short"]) == (80, 96)
    assert _auto("trn_tiny")["learning_rate"] == 0.002
    # TANet's generated temporal kernels underfit at 2e-3 in 15 epochs: twice the rate, scaled the same way.
    assert _auto("tam_tiny")["learning_rate"] == 0.004
    assert _auto("tam_r50", batch_size=32)["learning_rate"] == pytest.approx(0.008)
    assert _auto("tam_r50", pretrained=True)["learning_rate"] == pytest.approx(0.01 * 8 / 64)  # Fine-tuning: SGD.


def test_auto_from_pretrained_weights_fine_tunes_with_sgd():
    out = _auto("tsm_r50", sizes=[(256, 340)], pretrained=True, batch_size=16)
    assert (out["optimizer"], out["momentum"], out["lr_schedule"]) == ("sgd", 0.9, "cosine")
    assert out["learning_rate"] == pytest.approx(0.01 * 16 / 64)
    assert (out["weight_decay"], out["clip_norm"], out["partial_bn"]) == (1e-4, 20.0, False)
    assert (out["crop_size"], out["resize_short"]) == (224, 256)
    assert out["train_crop"] == "multi_scale"  # The papers' fine-tuning crops.
    assert _auto("tsn_r50", pretrained=True)["partial_bn"] is True


def test_explicit_flags_win_over_auto():
    out = _auto("tsm_tiny", sizes=[(64, 64)], explicit={"optimizer", "learning_rate", "crop_size"}, optimizer="sgd",
                learning_rate=0.05, crop_size=96)
    assert (out["optimizer"], out["learning_rate"], out["lr_schedule"]) == ("sgd", 0.05, "cosine")
    assert (out["crop_size"], out["resize_short"]) == (96, 96)  # Room for the crop that was asked for.
    out = _auto("tsm_tiny", explicit={"resize_short"}, resize_short=128)
    assert (out["crop_size"], out["resize_short"]) == (56, 128)
    out = _auto("tsm_tiny", explicit={"train_crop"}, train_crop="random_resized")
    assert out["train_crop"] == "random_resized"
    # The papers' recipes and none are unchanged by the frames.
    assert _recipes.apply_recipe("none", dict(_FLAGS), set())["optimizer"] == "sgd"
    with pytest.raises(ValueError, match="needs the run's facts"):
        _recipes.apply_recipe("auto", dict(_FLAGS), set())


def test_pretrained_init_reads_any_pretrained_flag():
    values = flags.FlagValues()
    flags.DEFINE_string("init_checkpoint", None, "", flag_values=values)
    flags.DEFINE_boolean("imagenet_weights", False, "", flag_values=values)
    values(["prog"])
    assert not _recipes.pretrained_init(values)
    values(["prog", "--init_checkpoint=/w/tsm.keras"])
    assert _recipes.pretrained_init(values)
    values.unparse_flags()
    values(["prog", "--imagenet_weights"])
    assert _recipes.pretrained_init(values)
    assert not _recipes.pretrained_init(flags.FlagValues())  # Flags not defined at all: from scratch.


def test_flip_label_map_given_derived_or_refused():
    names = ["left_to_right", "right_to_left", "up"]
    assert _recipes.flip_label_map(True, ["0", "1", "2"], names) == ([0, 1, 2], "flag")  # The flag wins.
    assert _recipes.flip_label_map(True, None, names) == ([1, 0, 2], "derived from the label names")
    assert _recipes.flip_label_map(False, None, names) == (None, "none")
    assert _recipes.flip_label_map(True, None, ["a", "b"]) == (None, "derived: no direction pairs")
    with pytest.raises(_recipes.FlipMapError, match=r"--flip_label_map=1,1,2: must be a permutation of 0..2"):
        _recipes.flip_label_map(True, ["1", "1", "2"], names)
    with pytest.raises(_recipes.FlipMapError) as e:
        _recipes.flip_label_map(True, None, ["walk", "turn_left"], "labels.txt")
    message = str(e.value)
    assert message.startswith("--label_map=labels.txt: class 1 'turn_left' has the horizontal direction word 'left'")
    assert "--flip_label_map" in message and "--noflip" in message and "\n" not in message
    assert _recipes.flip_label_map(False, None, ["walk", "turn_left"]) == (None, "none")  # --noflip: no question.


def test_describe_shows_each_setting_and_where_it_came_from():
    values = {**_auto("tsm_tiny", sizes=[(64, 64)], explicit={"learning_rate"}, learning_rate=0.003),
              "flip": True, "flip_label_map": [1, 0, 2], "flip_label_map_source": "derived from the label names"}
    text = _recipes.describe(values, {"learning_rate"}, basis="tsm_tiny, from scratch")
    lines = text.splitlines()
    assert lines[0] == "recipe auto: tsm_tiny, from scratch"
    row = {line.split()[0]: line for line in lines[1:]}
    assert row["learning_rate"].split()[1] == "0.003" and row["learning_rate"].endswith("(flag)")
    assert row["optimizer"].split()[1] == "adam" and row["optimizer"].endswith("(recipe auto)")
    assert row["crop_size"].split()[1] == "56" and "momentum" not in row  # Adam has no momentum flag.
    assert row["flip_label_map"].split()[1] == "1,0,2" and row["flip_label_map"].endswith("(derived from the label names)")
    assert row["dropout"].endswith("(preset)")
