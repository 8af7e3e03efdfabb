"""The preset registry: named, ready-to-train model configurations."""

from tfvideo.api._export import tf_export
from tfvideo.api._registry import Registry

# name -> builder, meta: default kwargs, description. A registry: the only global state.
_PRESETS = Registry("model preset")


@tf_export("tfvideo.models.register_preset")
def register_preset(name, builder, description="", *, overwrite=False, **defaults):
    """Registers `name` so that `get(name, num_classes=...)` builds `builder(**kwargs)`.

    `builder(num_classes=..., **defaults, **overrides)` returns a Keras model; a taken
    name is refused unless `overwrite=True`.
    """
    if not callable(builder):
        raise TypeError(f"register_preset({name!r}): builder {builder!r} is not callable.")
    _PRESETS.register(name, builder, overwrite=overwrite, defaults=dict(defaults), description=description)


@tf_export("tfvideo.models.list_presets")
def list_presets():
    """Sorted preset names."""
    return _PRESETS.names()


@tf_export("tfvideo.models.preset_config")
def preset_config(name):
    """The default keyword arguments of a preset."""
    return dict(_PRESETS.meta(name)["defaults"])


def preset_meta(name):
    """What preset `name` was registered with: its "description" and "defaults"."""
    return dict(_PRESETS.meta(name))


def preset_builder(name):
    """The class or function that builds preset `name` (KeyError naming it when unknown)."""
    return _PRESETS.get(name)


@tf_export("tfvideo.models.get")
def get(name, num_classes, **overrides):
    """Builds the preset model `name` with `num_classes` outputs; kwargs override defaults."""
    builder = preset_builder(name)
    return builder(num_classes=num_classes, **{**preset_config(name), **overrides})
