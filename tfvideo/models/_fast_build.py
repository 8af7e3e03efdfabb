"""Building a model whose every weight is overwritten right after, without its initializers.

A conversion assigns every variable from the checkpoint and `keras.saving.load_model` every
variable from the file, so the random initial values a build draws are thrown away. For large
models they are most of the time: TRN at the authors' THUMOS size (hidden 4096) draws two
orthogonal [4096, 16384] LSTM kernels, each a QR decomposition that takes minutes on 2 cores.
Within `unfilled_initializers(model)` the layers' initializers give unfilled buffers
(TensorFlow's `Empty` op, `init=False`): nothing is computed or written, and a large buffer
takes no memory until the assignment fills it (or is dropped when the variable adopts the
assigned tensor), so a load holds the weights once, not a zeroed copy beside them. Other
backends get zeros. The initializers are restored after, so the model's config and any later
build keep the real ones.
"""

import contextlib
import inspect
import os
import sys
import zipfile

import keras


class _Unfilled(keras.initializers.Initializer):
    """Values nobody reads: every variable built with it is assigned before use."""

    def __call__(self, shape, dtype=None):
        dtype = keras.backend.standardize_dtype(dtype or keras.backend.floatx())
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return tf.raw_ops.Empty(shape=tuple(int(s) for s in shape), dtype=tf.as_dtype(dtype), init=False)
        return keras.ops.zeros(shape, dtype)


@contextlib.contextmanager
def unfilled_initializers(model, keep=()):
    """Within: every `*_initializer` attribute of `model`'s layers (not of the layers in
    `keep`, e.g. a classifier a conversion may leave re-initialised) gives unfilled buffers.

    Use only around builds whose variables are all assigned right after.
    """
    kept = {id(layer) for layer in keep}
    saved = []
    unfilled = _Unfilled()
    try:
        for layer in model._flatten_layers(include_self=True, recursive=True):
            if id(layer) in kept:
                continue
            for name, value in list(vars(layer).items()):
                if name.endswith("initializer") and isinstance(value, keras.initializers.Initializer):
                    saved.append((layer, name, value))
                    object.__setattr__(layer, name, unfilled)
        yield model
    finally:
        for layer, name, value in reversed(saved):
            object.__setattr__(layer, name, value)


# The public loader; its code object, not its name, is looked for on the stack.
_LOAD_MODEL_CODE = inspect.unwrap(keras.saving.load_model).__code__


def _is_keras_format(filepath):
    """Whether `keras.saving.load_model(filepath)` reads it as the `.keras` format (a `.keras`
    zip, a model folder with config.json, a file object, `hf://`), whose loader assigns every
    variable from the file after the build or fails."""
    if hasattr(filepath, "read"):
        return True
    path = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else None
    if path is None:
        return False
    if path.startswith("hf://"):
        return True
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, "config.json"))
    return path.endswith(".keras") and zipfile.is_zipfile(path)


def loading_saved_weights():
    """Whether the caller runs inside `keras.saving.load_model` (the public function, found by
    its code object) of a model in the `.keras` format, which assigns every variable from the
    file after building (or fails): the build's initial values are never seen. False
    elsewhere (`from_config`, `clone_model`: fresh weights; legacy `.h5`: Keras' older loader).
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is _LOAD_MODEL_CODE:
            return _is_keras_format(frame.f_locals.get("filepath"))
        frame = frame.f_back
    return False


def build_from_config_for_load(model, config, build_from_config):
    """`Layer.build_from_config`, without initializers when `keras.saving.load_model` loads
    the weights right after."""
    if not loading_saved_weights():
        return build_from_config(config)
    with unfilled_initializers(model):
        return build_from_config(config)
