"""Per-model training recipes: optimizer, schedule, regularization and input size (--recipe).

`auto` (the default) picks settings that train on the data at hand, see `auto_recipe`.
The named recipes (the papers' TSN and TSM, `none`, and auto's pieces `scratch` and
`finetune`) are defined in the library: `tfvideo.models.list_recipes()`, `get_recipe`,
`register_recipe` (tfvideo/models/_recipes.py, with the papers' values and sources).
A recipe value applies unless the corresponding flag is given explicitly on the command line.
"""

import dataclasses
import statistics

from absl import logging

from tfvideo import data, models
from tfvideo.data import _flip

AUTO = "auto"  # Resolved per run by `auto_recipe`; the named recipes: tfvideo.models.list_recipes().
# Input flags (they go to the clip spec): auto sets them only when the caller passes them in `values`.
INPUT_FLAGS = ("crop_size", "resize_short", "train_crop")


class _RecipeNames:
    """The --recipe choices: "auto" and the registered recipes, read when asked."""

    def __iter__(self):
        return iter([AUTO, *models.list_recipes()])

    def __contains__(self, name):
        return name == AUTO or name in models.list_recipes()


RECIPES = _RecipeNames()


# Flags that start a run from pretrained weights (defined by trainers/train.py when available).
PRETRAINED_FLAGS = ("init_checkpoint", "imagenet_weights", "pretrained", "backbone_weights")
TINY_CROP = 56  # The *_tiny presets: ResNet-10 of width 16 made for 56x56 inputs.
FULL_CROP = 224


@dataclasses.dataclass
class RunFacts:
    """What `auto` looks at: the preset, the weights a run starts from and the data's frames.

    `frame_sizes`: (height, width) of a few training videos (`tfvideo.data.probe_frame_sizes`).
    `epochs`: the run's length in epochs when known (--epochs), for the warm-up.
    """

    model: str
    pretrained: bool = False
    frame_sizes: list = dataclasses.field(default_factory=list)
    epochs: int = None

    @property
    def short_side(self):
        """Median shorter side of the probed frames (None when nothing was probed)."""
        if not self.frame_sizes:
            return None
        return int(statistics.median(min(h, w) for h, w in self.frame_sizes))


def pretrained_init(flag_values):
    """True when any of `PRETRAINED_FLAGS` is set in `flag_values` (absl FlagValues)."""
    return any(name in flag_values and flag_values[name].value for name in PRETRAINED_FLAGS)


def input_size(model, short_side):
    """(crop_size, resize_short) for `model` on frames whose shorter side is `short_side`.

    The preset's own input (56 for *_tiny, 224 otherwise) cropped from frames resized to
    8/7 of it (64 / 256), as in the papers; frames smaller than that are not upscaled: they
    keep their size and the crop is 7/8 of it (a multiple of 8, at least 32).
    """
    crop = TINY_CROP if model.endswith("_tiny") else FULL_CROP
    resize = round(crop * 8 / 7)
    if short_side is None or short_side >= resize:
        return crop, resize
    resize = max(int(short_side), 32)
    return max(32, min(crop, resize * 7 // 8 // 8 * 8)), resize


# Adam's rate for a batch of 8 from scratch where a family differs from 2e-3 (see `auto_recipe`).
SCRATCH_LR = {"tam": 4e-3}


def auto_recipe(facts, batch_size):
    """The `auto` settings for a run: training-flag values plus `crop_size`, `resize_short`, `train_crop`.

    * From scratch: Adam at 2e-3 for a batch of 8 (square-root scaled with the batch),
      cosine decay, one epoch of linear warm-up (a tenth of the run when shorter than 10
      epochs), no weight decay, the preset's dropout, and the centre crop (with flips) in
      training. Measured on small sets (the demo's and benchmarks/default_recipe.py): SGD
      0.01 without schedule barely moves a network trained from scratch in 15 epochs, Adam
      with cosine converges. TAM presets start at 4e-3: at 2e-3 tam_tiny still underfit
      after 15 epochs (train accuracy 0.68). The centre crop: TSN's multi-scale crops take
      a 0.66-1.0 square of the shorter side at a corner or the centre, so on 4:3 frames a
      corner crop loses up to half the width, and an action near the middle (a rotation)
      is cut away in a fifth of the clips while keeping its label. TRN and TAM, which
      compare frames late or through learned kernels, then learned the rotation's sense
      at chance (84-88% top-1 on two video sets); with the centre crop 99.0% and 97.9%
      (docs/notes/trainers.md).
    * From pretrained weights: the TSM fine-tuning recipe (SGD momentum 0.9, 0.01 per 64
      clips, weight decay 1e-4, gradient clip 20) with cosine decay, the same warm-up and
      TSN's multi-scale crops; TSN presets also freeze all BatchNorm layers but the first
      (partial BN), as the TSN paper does with ImageNet weights.
    * Input size from the preset and the frames (`input_size`).
    """
    epochs = facts.epochs
    warmup = 1.0 if not epochs or epochs >= 10 else round(0.1 * epochs, 3)
    recipe = models.get_recipe("finetune" if facts.pretrained else "scratch")
    base = next((lr for prefix, lr in SCRATCH_LR.items() if facts.model.startswith(prefix)), None)
    if not facts.pretrained and base is not None:
        recipe = dataclasses.replace(recipe, learning_rate=base)
    out = {**recipe.settings(), "learning_rate": recipe.learning_rate_for(batch_size), "warmup_epochs": warmup}
    if facts.pretrained:
        out["partial_bn"] = facts.model.startswith("tsn")
    out["crop_size"], out["resize_short"] = input_size(facts.model, facts.short_side)
    out["train_crop"] = "multi_scale" if facts.pretrained else "center"
    return out


def apply_recipe(name, values, explicit, facts=None):
    """Merges recipe `name` into flag `values` (dict); flags named in `explicit` win.

    The papers' recipes scale their learning rate linearly by `batch_size /
    lr_reference_batch` (only when --learning_rate was not given explicitly). `auto`
    needs `facts` (a `RunFacts`) and may also set `crop_size` / `resize_short` /
    `train_crop` when those keys are in `values`.

    Returns:
      A new dict of resolved values (keys of `values`, plus `recipe`).
    """
    if name not in RECIPES:
        raise ValueError(f"--recipe={name!r} is not one of {sorted(RECIPES)}.")
    out = dict(values)
    if name == AUTO:
        if facts is None:
            raise ValueError("--recipe=auto needs the run's facts (model, pretrained weights, frame sizes).")
        for key, value in auto_recipe(facts, out["batch_size"]).items():
            if key not in explicit and (key in values or key not in INPUT_FLAGS):
                out[key] = value
        if "crop_size" in explicit and "resize_short" not in explicit and "resize_short" in out:
            out["resize_short"] = max(out["resize_short"], out["crop_size"])  # Room for the asked crop.
        out["recipe"] = name
        return out
    recipe = models.get_recipe(name)
    for key, value in recipe.settings().items():
        if key not in explicit:
            out[key] = value
    if recipe.lr_reference_batch and "learning_rate" not in explicit:
        out["learning_rate"] = recipe.learning_rate_for(out["batch_size"])
    out["recipe"] = name
    return out


_SHOWN = ("optimizer", "learning_rate", "momentum", "weight_decay", "lr_schedule", "warmup_epochs", "lr_decay_at",
          "clip_norm", "partial_bn", "dropout", "crop_size", "resize_short", "train_crop", "flip", "flip_label_map")


def describe(values, explicit, basis=None):
    """The resolved settings as one readable block (for the start-of-run log).

    One line per setting: `name  value  (where it came from)`: `flag` when given on the
    command line, else the recipe, the preset (dropout) or how the flip map was chosen.
    """
    lines = [f"recipe {values.get('recipe')}" + (f": {basis}" if basis else "")]
    for key in _SHOWN:
        if key not in values:
            continue
        value = values[key]
        if key == "momentum" and values.get("optimizer") != "sgd":
            continue
        if key == "lr_decay_at" and values.get("lr_schedule") != "step":
            continue
        if key in explicit or key == "flip":
            source = "flag"
        elif key == "flip_label_map":
            source = values.get("flip_label_map_source", "flag")
        elif key == "dropout" and value is None:
            value, source = "preset's", "preset"
        elif key == "train_crop" and value is None:
            value, source = data.PreprocessConfig.train_crop, "default"
        else:
            source = f"recipe {values.get('recipe')}"
        lines.append(f"  {key:<15} {_format(value):<26} ({source})")
    return "\n".join(lines)


def _format(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def basis_text(facts):
    """'tsm_tiny, from scratch, frames' shorter side 64 px (median of 8 probed videos, 48-120 px)'."""
    start = "pretrained weights" if facts.pretrained else "from scratch"
    if not facts.frame_sizes:
        return f"{facts.model}, {start}, frame size unknown"
    shorts = [min(s) for s in facts.frame_sizes]
    spread = f"{min(shorts)}-{max(shorts)} px" if min(shorts) != max(shorts) else "all alike"
    return (f"{facts.model}, {start}, frames' shorter side {facts.short_side} px "
            f"(median of {len(shorts)} probed videos, {spread})")


class FlipMapError(ValueError):
    """The flip label map cannot be derived from the class names (message: one line)."""


def flip_label_map(flip, given, labels, label_map_path=None):
    """The flip label map a run uses: (mapping or None, how it was chosen).

    `given` (--flip_label_map as a list) wins; with flipping on and class names, the map
    is derived from the names (`tfvideo.data.derive_flip_label_map`); a map that keeps
    every class is dropped (None). Raises FlipMapError when a horizontal direction word
    has no partner among the names.
    """
    num_classes = len(labels)
    if given:
        mirror = [int(v) for v in given]
        if num_classes and (len(mirror) != num_classes or sorted(mirror) != list(range(num_classes))):
            raise FlipMapError(f"--flip_label_map={','.join(str(v) for v in given)}: must be a permutation of "
                               f"0..{num_classes - 1}")
        return mirror, "flag"
    if not flip or not labels:
        return None, "none"
    try:
        mirror = data.derive_flip_label_map(labels)
    except ValueError as e:
        where = f"--label_map={label_map_path}" if label_map_path else "the label names"
        raise FlipMapError(f"{where}: {e}; horizontal flips would mislabel it: give --flip_label_map "
                           "(class id of each class's mirror image) or --noflip") from None
    if mirror == list(range(num_classes)):
        return None, "derived: no direction pairs"
    return mirror, "derived from the label names"


def announce(settings, explicit, labels, mirror_source):
    """Logs the resolved settings block and prints the flip label map line when one applies."""
    logging.info("Resolved training settings, recorded in config.json:\n%s",
                 describe(settings, explicit, basis=settings.get("recipe_basis")))
    mirror = settings.get("flip_label_map")
    if mirror is not None and settings.get("flip"):
        text = _flip.describe_flip_label_map(mirror, labels) if labels else ",".join(map(str, mirror))
        print(f"flip label map ({mirror_source}): {text}", flush=True)
