"""Building a model whose every weight is overwritten right after, without its initializers.

A conversion assigns every variable from the checkpoint and `keras.saving.load_model` every
variable from the file, so the random initial values a build draws are thrown away. For large
models they are most of the time: TRN at the authors' THUMOS size (hidden 4096) draws two
orthogonal [4096, 16384] LSTM kernels, each a QR decomposition that takes minutes on 2 cores.
Within `zero_initializers(model)` the layers' initializers are zeros (a memset); they are
restored after, so the model's config and any later build keep the real ones.
"""

import contextlib
import sys

import keras


@contextlib.contextmanager
def zero_initializers(model, keep=()):
    """Within: every `*_initializer` attribute of `model`'s layers (not of the layers in
    `keep`, e.g. a classifier a conversion may leave re-initialised) is `Zeros()`.

    Use only around builds whose variables are all assigned right after.
    """
    kept = {id(layer) for layer in keep}
    saved = []
    zeros = keras.initializers.Zeros()
    try:
        for layer in model._flatten_layers(include_self=True, recursive=True):
            if id(layer) in kept:
                continue
            for name, value in list(vars(layer).items()):
                if name.endswith("initializer") and isinstance(value, keras.initializers.Initializer):
                    saved.append((layer, name, value))
                    object.__setattr__(layer, name, zeros)
        yield model
    finally:
        for layer, name, value in reversed(saved):
            object.__setattr__(layer, name, value)


_KERAS_LOADERS = ("_load_model_from_fileobj", "_load_model_from_dir")


def loading_saved_weights():
    """Whether the caller runs inside `keras.saving.load_model` of a `.keras` file, which
    assigns every variable from the file after building (or fails): the build's initial
    values are never seen. False elsewhere (`from_config`, `clone_model`: fresh weights)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name in _KERAS_LOADERS and frame.f_globals.get("__name__", "").startswith("keras"):
            return True
        frame = frame.f_back
    return False


def build_from_config_for_load(model, config, build_from_config):
    """`Layer.build_from_config`, without initializers when `keras.saving.load_model` loads
    the weights right after."""
    if not loading_saved_weights():
        return build_from_config(config)
    with zero_initializers(model):
        return build_from_config(config)
