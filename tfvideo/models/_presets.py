"""The preset registry: named, ready-to-train model configurations."""

from tfvideo.api._export import tf_export

# name -> (builder, default kwargs, description). A registry: the only global state.
_PRESETS = {}


@tf_export("tfvideo.models.register_preset")
def register_preset(name, builder, description="", **defaults):
    """Registers `name` so that `get(name, num_classes=...)` builds `builder(**kwargs)`."""
    if name in _PRESETS:
        raise ValueError(f"Model preset {name!r} is already registered.")
    _PRESETS[name] = (builder, defaults, description)


@tf_export("tfvideo.models.list_presets")
def list_presets():
    """Sorted preset names."""
    return sorted(_PRESETS)


@tf_export("tfvideo.models.preset_config")
def preset_config(name):
    """The default keyword arguments of a preset."""
    _check(name)
    return dict(_PRESETS[name][1])


def _check(name):
    if name not in _PRESETS:
        raise ValueError(f"Unknown model preset {name!r}; available: {', '.join(list_presets())}.")


@tf_export("tfvideo.models.get")
def get(name, num_classes, **overrides):
    """Builds the preset model `name` with `num_classes` outputs; kwargs override defaults."""
    _check(name)
    builder, defaults, _ = _PRESETS[name]
    return builder(num_classes=num_classes, **{**defaults, **overrides})
