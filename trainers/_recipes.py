"""Per-model training recipes: optimizer and regularization presets selected with --recipe.

Values come from the papers' reference trainings (Kinetics, 8 segments, ResNet-50):
  * TSN (Wang et al. 2016; tsn-pytorch): SGD momentum 0.9, weight decay 5e-4, lr 0.001 at
    batch 256, /10 twice (after 3/8 and 3/4 of training), gradient norm clip 20,
    partial BN (all BatchNorm layers frozen but the first), dropout 0.8.
  * TSM (Lin et al. 2019; official scripts: lr 0.02 at batch 128, wd 1e-4, steps at epochs
    20/40 of 50, --npb, dropout 0.5, clip 20): lr scales linearly with the global batch
    (0.01 per 64 clips).
A recipe value applies unless the corresponding flag is given explicitly on the command line.
"""

RECIPES = {
    "none": {},
    "tsn": {
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "learning_rate": 0.001,
        "lr_reference_batch": 256,
        "lr_schedule": "step",
        "lr_decay_at": [0.375, 0.75],
        "lr_decay_rate": 0.1,
        "clip_norm": 20.0,
        "partial_bn": True,
        "dropout": 0.8,
    },
    "tsm": {
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "learning_rate": 0.01,
        "lr_reference_batch": 64,
        "lr_schedule": "step",
        "lr_decay_at": [0.4, 0.8],
        "lr_decay_rate": 0.1,
        "clip_norm": 20.0,
        "partial_bn": False,
        "dropout": 0.5,
    },
}


def apply_recipe(name, values, explicit):
    """Merges recipe `name` into flag `values` (dict); flags named in `explicit` win.

    The recipe learning rate is scaled linearly by `batch_size / lr_reference_batch`
    (only when --learning_rate was not given explicitly).

    Returns:
      A new dict of resolved values (keys of `values`, plus `recipe`).
    """
    if name not in RECIPES:
        raise ValueError(f"--recipe={name!r} is not one of {sorted(RECIPES)}.")
    out = dict(values)
    recipe = dict(RECIPES[name])
    reference_batch = recipe.pop("lr_reference_batch", None)
    for key, value in recipe.items():
        if key not in explicit:
            out[key] = value
    if reference_batch and "learning_rate" not in explicit:
        out["learning_rate"] = recipe["learning_rate"] * out["batch_size"] / reference_batch
    out["recipe"] = name
    return out
