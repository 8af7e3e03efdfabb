"""Training recipes: named optimizer, schedule and regularization settings (the trainer's --recipe).

A `Recipe` holds the values it sets; a field left None keeps the trainer's flag value. A
value applies unless the corresponding flag is given explicitly on the command line.
The trainer's `--recipe=auto` (its default, resolved per run in trainers/_recipes.py)
starts from `scratch` or `finetune` below and adapts them to the preset and the data.

Values come from the papers' reference trainings (Kinetics, 8 segments, ResNet-50):
  * TSN (Wang et al. 2016; tsn-pytorch): SGD momentum 0.9, weight decay 5e-4, lr 0.001 at
    batch 256, /10 twice (after 3/8 and 3/4 of training), gradient norm clip 20,
    partial BN (all BatchNorm layers frozen but the first), dropout 0.8.
  * TSM (Lin et al. 2019; official scripts: lr 0.02 at batch 128, wd 1e-4, steps at epochs
    20/40 of 50, --npb, dropout 0.5, clip 20): lr scales linearly with the global batch
    (0.01 per 64 clips).
`none` keeps the flags' own defaults (SGD 0.01, constant, 224 multi-scale crops of 256 frames).
"""

import dataclasses
import numbers

from tfvideo.api._export import tf_export
from tfvideo.api._registry import Registry

_OPTIMIZERS = ("sgd", "adam", "adamw")
_SCHEDULES = ("constant", "step", "cosine")
_SCALINGS = ("linear", "sqrt")
# Names the trainer resolves itself (per run), so no table entry may take them.
_RESERVED = ("auto",)


def _number(value, allow_bool=False):
    return isinstance(value, numbers.Real) and (allow_bool or not isinstance(value, bool))


@tf_export("tfvideo.models.Recipe")
@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training recipe: the flag values it sets (None: the flag's value stays).

    `learning_rate` is for a global batch of `lr_reference_batch` clips; the trainer scales
    it to the run's batch, linearly (`lr_scaling="linear"`) or by the square root ("sqrt",
    rounded to 6 decimals), unless --learning_rate is given. `lr_decay_at`: fractions of
    training where a step schedule multiplies the rate by `lr_decay_rate`.
    """

    optimizer: str = None
    momentum: float = None
    weight_decay: float = None
    learning_rate: float = None
    lr_reference_batch: int = None
    lr_scaling: str = "linear"
    lr_schedule: str = None
    lr_decay_at: tuple = None
    lr_decay_rate: float = None
    warmup_epochs: float = None
    clip_norm: float = None
    partial_bn: bool = None
    dropout: float = None
    description: str = ""

    def __post_init__(self):
        if self.lr_decay_at is not None:
            object.__setattr__(self, "lr_decay_at", tuple(self.lr_decay_at))
        problem = self._problem()
        if problem:
            raise ValueError(f"Recipe: {problem}.")

    def _problem(self):
        """The first invalid field as 'name=value: must be ...', or None."""
        choices = {"optimizer": _OPTIMIZERS, "lr_schedule": _SCHEDULES, "lr_scaling": _SCALINGS}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value is not None and value not in allowed:
                return f"{name}={value!r}: must be one of {', '.join(allowed)}"
        ranges = {  # name -> (test, what it must be)
            "learning_rate": (lambda v: v > 0, "> 0"),
            "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
            "weight_decay": (lambda v: v >= 0, ">= 0"),
            "lr_decay_rate": (lambda v: 0 < v <= 1, "in (0, 1]"),
            "warmup_epochs": (lambda v: v >= 0, ">= 0"),
            "clip_norm": (lambda v: v >= 0, ">= 0 (0 disables)"),
            "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
        }
        for name, (test, text) in ranges.items():
            value = getattr(self, name)
            if value is not None and not (_number(value) and test(value)):
                return f"{name}={value!r}: must be a number {text}"
        batch = self.lr_reference_batch
        if batch is not None and not (isinstance(batch, numbers.Integral) and not isinstance(batch, bool) and batch >= 1):
            return f"lr_reference_batch={batch!r}: must be an integer >= 1"
        if batch is not None and self.learning_rate is None:
            return f"lr_reference_batch={batch}: needs the learning_rate it is the batch of"
        at = self.lr_decay_at
        if at is not None and not (all(_number(v) and 0 < v < 1 for v in at) and list(at) == sorted(at)):
            return f"lr_decay_at={list(at)!r}: must be increasing fractions of training in (0, 1)"
        if self.partial_bn is not None and not isinstance(self.partial_bn, bool):
            return f"partial_bn={self.partial_bn!r}: must be True or False"
        return None

    def settings(self):
        """The flag values this recipe sets: {flag name: value} (learning_rate unscaled)."""
        skip = ("lr_reference_batch", "lr_scaling", "description")
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name not in skip and value is not None:
                out[field.name] = list(value) if field.name == "lr_decay_at" else value
        return out

    def learning_rate_for(self, batch_size):
        """The learning rate for a global batch of `batch_size` clips (None when the recipe sets none)."""
        if self.learning_rate is None or not self.lr_reference_batch:
            return self.learning_rate
        if self.lr_scaling == "sqrt":
            return round(self.learning_rate * (batch_size / self.lr_reference_batch) ** 0.5, 6)
        return self.learning_rate * batch_size / self.lr_reference_batch


# name -> Recipe. A registry: the only global state.
_RECIPES = Registry("training recipe")


@tf_export("tfvideo.models.register_recipe")
def register_recipe(name, recipe, *, overwrite=False):
    """Registers `recipe` (a `Recipe`) under `name`, for `get_recipe` and the trainer's --recipe.

    The trainer's --recipe choices are read when trainers/train.py is imported: register
    before importing it. A taken name is refused unless `overwrite=True`; "auto" is the
    trainer's own.
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"register_recipe({name!r}): {recipe!r} is not a tfvideo.models.Recipe.")
    if name in _RESERVED:
        raise ValueError(f"Training recipe {name!r} is reserved: the trainer resolves it per run.")
    _RECIPES.register(name, recipe, overwrite=overwrite)


@tf_export("tfvideo.models.list_recipes")
def list_recipes():
    """Sorted names of the registered recipes (the trainer also accepts "auto")."""
    return _RECIPES.names()


@tf_export("tfvideo.models.get_recipe")
def get_recipe(name):
    """The `Recipe` registered as `name`."""
    return _RECIPES.get(name)


register_recipe("none", Recipe(description="the flags' own defaults"))
register_recipe("tsn", Recipe(
    optimizer="sgd",
    momentum=0.9,
    weight_decay=5e-4,
    learning_rate=0.001,
    lr_reference_batch=256,
    lr_schedule="step",
    lr_decay_at=[0.375, 0.75],
    lr_decay_rate=0.1,
    clip_norm=20.0,
    partial_bn=True,
    dropout=0.8,
    description="TSN (Wang et al. 2016)",
))
register_recipe("tsm", Recipe(
    optimizer="sgd",
    momentum=0.9,
    weight_decay=1e-4,
    learning_rate=0.01,
    lr_reference_batch=64,
    lr_schedule="step",
    lr_decay_at=[0.4, 0.8],
    lr_decay_rate=0.1,
    clip_norm=20.0,
    partial_bn=False,
    dropout=0.5,
    description="TSM (Lin et al. 2019)",
))
# The pieces `auto` starts from (trainers/_recipes.py adds the warm-up, TRN's rate, TSN's partial BN).
register_recipe("scratch", Recipe(
    optimizer="adam",
    learning_rate=2e-3,
    lr_reference_batch=8,
    lr_scaling="sqrt",
    weight_decay=0.0,
    clip_norm=0.0,
    lr_schedule="cosine",
    lr_decay_at=[],
    partial_bn=False,
    description="from scratch: Adam, cosine decay",
))
register_recipe("finetune", Recipe(
    optimizer="sgd",
    momentum=0.9,
    learning_rate=0.01,
    lr_reference_batch=64,
    weight_decay=1e-4,
    clip_norm=20.0,
    lr_schedule="cosine",
    lr_decay_at=[],
    partial_bn=False,
    description="from pretrained weights: the TSM fine-tuning recipe with cosine decay",
))
