"""Public registration of model presets, training recipes and checkpoint formats."""

import dataclasses

import numpy as np
import pytest

from tfvideo import models
from tfvideo.models import _convert, _presets, _recipes


@pytest.fixture
def cleanup():
    """Names registered by a test, removed afterwards (through the private registries: tests only)."""
    added = []
    yield added
    for registry, name in added:
        registry.unregister(name)


def test_user_preset_builds_through_the_public_getter(cleanup):
    cleanup.append((_presets._PRESETS, "user_tsm_micro"))
    models.register_preset("user_tsm_micro", models.TSM, "TSM, ResNet-10 width 8, 2 segments", num_segments=2,
                           backbone="resnet10", width=8, dropout=0.0)
    assert "user_tsm_micro" in models.list_presets()
    assert models.preset_config("user_tsm_micro") == {"num_segments": 2, "backbone": "resnet10", "width": 8, "dropout": 0.0}
    model = models.get("user_tsm_micro", num_classes=3)
    assert isinstance(model, models.TSM) and model.num_segments == 2
    logits = np.asarray(model(np.zeros((1, 2, 32, 32, 3), "float32")))
    assert logits.shape == (1, 3)
    assert models.get("user_tsm_micro", num_classes=5, num_segments=4).num_segments == 4  # Overrides win.

    with pytest.raises(ValueError, match=r"^Model preset 'user_tsm_micro' is already registered; pass overwrite=True"):
        models.register_preset("user_tsm_micro", models.TSN)
    models.register_preset("user_tsm_micro", models.TSN, overwrite=True, num_segments=2, backbone="resnet10", width=8)
    assert isinstance(models.get("user_tsm_micro", 3), models.TSN)
    with pytest.raises(TypeError, match=r"register_preset\('x'\): builder 3 is not callable"):
        models.register_preset("x", 3)


def test_unknown_preset_error_is_one_line_listing_every_preset():
    with pytest.raises(ValueError) as e:
        models.get("tsm_r49", 3)
    message = str(e.value)
    assert message == f"Unknown model preset 'tsm_r49'; available: {', '.join(models.list_presets())}."
    assert "\n" not in message and "tsm_r50" in message and "i3d_tiny" in message
    with pytest.raises(ValueError, match=r"^Unknown model preset 'tsm_r49'; available: "):
        models.preset_config("tsm_r49")


def test_recipe_table_keeps_the_papers_values():
    """The moved table: the values trainers/_recipes.py held (TSN and TSM papers)."""
    assert models.list_recipes() == ["finetune", "none", "scratch", "tsm", "tsn"]
    assert models.get_recipe("none").settings() == {}
    assert models.get_recipe("tsn").settings() == {
        "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4, "learning_rate": 0.001, "lr_schedule": "step",
        "lr_decay_at": [0.375, 0.75], "lr_decay_rate": 0.1, "clip_norm": 20.0, "partial_bn": True, "dropout": 0.8}
    assert models.get_recipe("tsm").settings() == {
        "optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "learning_rate": 0.01, "lr_schedule": "step",
        "lr_decay_at": [0.4, 0.8], "lr_decay_rate": 0.1, "clip_norm": 20.0, "partial_bn": False, "dropout": 0.5}
    # Linear scaling for the papers' recipes, square root (6 decimals) for training from scratch.
    assert models.get_recipe("tsn").learning_rate_for(64) == 0.001 * 64 / 256
    assert models.get_recipe("tsm").learning_rate_for(8) == 0.00125
    assert models.get_recipe("scratch").learning_rate_for(32) == 0.004
    assert models.get_recipe("scratch").learning_rate_for(3) == round(2e-3 * (3 / 8) ** 0.5, 6) == 0.001225
    assert models.get_recipe("finetune").learning_rate_for(16) == 0.0025
    assert models.Recipe(learning_rate=0.1).learning_rate_for(512) == 0.1  # No reference batch: not scaled.


def test_register_recipe_and_bad_recipes(cleanup):
    cleanup.append((_recipes._RECIPES, "user_adamw"))
    recipe = models.Recipe(optimizer="adamw", learning_rate=3e-4, lr_reference_batch=16, weight_decay=0.05,
                           lr_schedule="cosine", warmup_epochs=2.0)
    models.register_recipe("user_adamw", recipe)
    assert models.get_recipe("user_adamw") is recipe and "user_adamw" in models.list_recipes()
    assert recipe.settings() == {"optimizer": "adamw", "learning_rate": 3e-4, "weight_decay": 0.05,
                                 "lr_schedule": "cosine", "warmup_epochs": 2.0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.learning_rate = 1.0
    with pytest.raises(ValueError, match=r"^Training recipe 'user_adamw' is already registered"):
        models.register_recipe("user_adamw", models.Recipe())
    with pytest.raises(ValueError, match=r"^Training recipe 'auto' is reserved: the trainer resolves it per run\.$"):
        models.register_recipe("auto", models.Recipe())
    with pytest.raises(TypeError, match=r"register_recipe\('mine'\): \{'optimizer': 'sgd'\} is not a tfvideo.models.Recipe"):
        models.register_recipe("mine", {"optimizer": "sgd"})
    with pytest.raises(ValueError) as e:
        models.get_recipe("tsm2")
    assert str(e.value) == f"Unknown training recipe 'tsm2'; available: {', '.join(models.list_recipes())}."

    bad = {
        "optimizer='rmsprop': must be one of sgd, adam, adamw": {"optimizer": "rmsprop"},
        "learning_rate=0: must be a number > 0": {"learning_rate": 0},
        "momentum=1.0: must be a number in [0, 1)": {"momentum": 1.0},
        "weight_decay=-0.1: must be a number >= 0": {"weight_decay": -0.1},
        "dropout=True: must be a number in [0, 1)": {"dropout": True},
        "lr_reference_batch=0: must be an integer >= 1": {"learning_rate": 0.1, "lr_reference_batch": 0},
        "lr_reference_batch=64: needs the learning_rate it is the batch of": {"lr_reference_batch": 64},
        "lr_scaling='log': must be one of linear, sqrt": {"lr_scaling": "log"},
        "lr_decay_at=[0.8, 0.4]: must be increasing fractions of training in (0, 1)": {"lr_decay_at": [0.8, 0.4]},
        "lr_decay_at=[1.5]: must be increasing fractions of training in (0, 1)": {"lr_decay_at": [1.5]},
        "partial_bn=1: must be True or False": {"partial_bn": 1},
    }
    for message, fields in bad.items():
        with pytest.raises(ValueError) as e:
            models.Recipe(**fields)
        assert str(e.value) == f"Recipe: {message}.", fields


def test_checkpoint_format_registry_refuses_duplicates_and_lists_formats(cleanup):
    cleanup.append((_convert._FORMATS, "user_npz"))

    def reader(path):
        return dict(np.load(path))

    models.register_checkpoint_format("user_npz", reader, lambda state, model: {})
    with pytest.raises(ValueError, match=r"^Checkpoint format 'user_npz' is already registered"):
        models.register_checkpoint_format("user_npz", reader, lambda state, model: {})
    models.register_checkpoint_format("user_npz", reader, lambda state, model: {}, overwrite=True)
    with pytest.raises(models.CheckpointError) as e:
        models.convert_checkpoint("caffe", "x.caffemodel", "tsm_tiny", num_classes=3)
    assert str(e.value) == f"Unknown checkpoint format 'caffe'; available: {', '.join(models.list_checkpoint_formats())}."
    assert "user_npz" in str(e.value) and "torchvision" in str(e.value)
