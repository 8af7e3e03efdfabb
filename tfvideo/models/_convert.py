"""Published checkpoints into tfvideo models: a format registry and the conversion.

A checkpoint format is a `reader` (path -> `{key: np.ndarray}`) and a `mapper`
(`mapper(state, model) -> {variable.path: np.ndarray}`, values already in the Keras
variable's layout and shape). The conversion reads, maps, checks every shape, assigns,
and reports which model variables were loaded or left missing and which checkpoint
keys went unused. It is strict: any missing variable or unused key is an error unless
it belongs to a part listed in `allow_missing` (only "head" today: the classifier,
when the class count differs or the checkpoint has none).

The mapper reads the state through a tracking mapping whose arrays remember their
checkpoint key, so a shape error names the checkpoint key as well as the variable.
"""

import collections.abc
import dataclasses
import os
import shutil
import tempfile
import zipfile

import keras
import numpy as np
from keras import ops

from tfvideo import _pickle
from tfvideo.api._export import tf_export
from tfvideo.api._registry import Registry
from tfvideo.models import _fast_build

_ALLOW_MISSING = ("head",)
# Checkpoint entries that are bookkeeping, not weights.
_IGNORED_SUFFIXES = ("num_batches_tracked",)


@tf_export("tfvideo.models.CheckpointError")
class CheckpointError(ValueError):
    """A checkpoint that cannot be converted; the message is one line naming the input."""


# name -> reader, meta: mapper, description, model_overrides. A registry: the only global state.
_FORMATS = Registry("checkpoint format", error=CheckpointError)


@tf_export("tfvideo.models.ConversionReport")
@dataclasses.dataclass
class ConversionReport:
    """What a conversion did: Keras variable paths loaded / left missing, checkpoint keys unused."""

    source: str
    checkpoint: str
    loaded: list
    missing: list
    unused: list

    def summary(self):
        """One line for logs and the binary's output."""
        parts = [f"{self.checkpoint} ({self.source}): loaded {len(self.loaded)} variables"]
        if self.missing:
            parts.append(f"missing {len(self.missing)} (re-initialised): {', '.join(self.missing)}")
        if self.unused:
            parts.append(f"unused {len(self.unused)} checkpoint keys: {', '.join(self.unused[:8])}"
                         + (" ..." if len(self.unused) > 8 else ""))
        return "; ".join(parts)


class _Keyed(np.ndarray):
    """An array that remembers the checkpoint key and shape it came from (kept through views)."""

    def __array_finalize__(self, obj):
        self.source_key = getattr(obj, "source_key", None)
        self.source_shape = getattr(obj, "source_shape", None)


class _TrackedState(collections.abc.Mapping):
    """A read-only view of a checkpoint recording which keys the mapper read."""

    def __init__(self, state):
        self._state = state
        self.used = set()

    def __getitem__(self, key):
        value = np.asarray(self._state[key])
        self.used.add(key)
        keyed = value.view(_Keyed)
        keyed.source_key, keyed.source_shape = key, tuple(value.shape)
        return keyed

    def __contains__(self, key):
        return key in self._state

    def __iter__(self):
        return iter(self._state)

    def __len__(self):
        return len(self._state)


@tf_export("tfvideo.models.register_checkpoint_format")
def register_checkpoint_format(name, reader, mapper, description="", model_overrides=None, *, overwrite=False):
    """Registers a checkpoint format for `convert_checkpoint` and `tfvideo-convert --source`.

    Args:
      name: the `--source` value.
      reader: `reader(path) -> dict[str, np.ndarray]`; raise `ValueError` with a one-line
        message naming the file for unreadable input.
      mapper: `mapper(state, model) -> dict[str, np.ndarray]` keyed by the Keras
        `variable.path` of `model`'s variables, values transposed/reshaped to the
        variable's shape. Keys of `state` it does not read are reported as unused.
      model_overrides: optional `f(preset_defaults) -> dict` of constructor arguments a
        preset needs to take this format (e.g. MMAction2's MobileNetV2 padding style).
      overwrite: replace a format already registered as `name` (refused otherwise).
    """
    if not callable(reader) or not callable(mapper):
        raise TypeError(f"register_checkpoint_format({name!r}): reader and mapper must be callables.")
    _FORMATS.register(name, reader, overwrite=overwrite, mapper=mapper, description=description,
                      model_overrides=model_overrides)


@tf_export("tfvideo.models.list_checkpoint_formats")
def list_checkpoint_formats():
    """Sorted names of the registered checkpoint formats."""
    return _FORMATS.names()


def read_torch_checkpoint(path):
    """A PyTorch `.pth` file -> `{key: np.ndarray}` (tensors only; `state_dict` unwrapped).

    Both of torch's file formats (zip, and the legacy pickle stream of torch < 1.6) are read
    by tfvideo's restricted unpickler (`tfvideo._pickle`): no code in the file runs and
    torch need not be installed. Training metadata (mmengine's message hub, NumPy arrays,
    `argparse.Namespace`) loads as inert placeholders; any other global the file names is
    refused with a one-line `CheckpointError` naming it. The arrays are read-only views of the
    memory-mapped file.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file.")
    try:
        obj = _pickle.read_torch_file(path)
    except _pickle.UnsafeCheckpointError as e:
        raise CheckpointError(f"{path}: refused: it names the {e}, which is no tensor, container or training "
                              f"metadata a checkpoint holds (unpickling it would run code); nothing of it ran.") from None
    except (_pickle.UnreadableCheckpointError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e}).") from None
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model_state_dict", "model", "model_state"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state_dict of tensors.")
    state = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not state:
        raise CheckpointError(f"{path}: holds no tensors.")
    return state


def _head_layers(model):
    """The classifier's layers (what `allow_missing=("head",)` may leave out)."""
    layers = [getattr(model, attr, None) for attr in ("classifier", "consensus")]
    return [layer for layer in layers if isinstance(layer, keras.layers.Layer)]


def _head_variables(model):
    """Paths of the classifier's variables."""
    return {v.path for layer in _head_layers(model) for v in layer.weights}


def _model_variables(model):
    return {v.path: v for v in model.weights if "seed_generator" not in v.path}


def _preset_kwargs(preset, num_segments):
    from tfvideo.models import _presets

    kwargs = {}
    if num_segments is not None:
        if int(num_segments) < 1:
            raise ValueError(f"num_segments={num_segments} must be >= 1.")
        defaults = _presets.preset_config(preset)
        kwargs["num_frames" if "num_frames" in defaults else "num_segments"] = int(num_segments)
    return kwargs


def build_for_conversion(preset, num_classes, num_segments=None, **overrides):
    """The preset's model, built (variables created) for a conversion.

    Variables are created without drawing initial values (`_fast_build.unfilled_initializers`):
    the conversion assigns every one of them, or fails; the classifier, which
    `allow_missing=("head",)` may leave out, keeps its initializer.
    """
    from tfvideo.models import _presets

    if int(num_classes) < 1:
        raise ValueError(f"num_classes={num_classes} must be >= 1.")
    if preset not in _presets.list_presets():
        from tfvideo import online as detectors

        if preset in detectors.list_detectors():  # Online detectors read per-chunk features, not clips.
            feature_dim = overrides.pop("feature_dim", None)
            if not feature_dim or int(feature_dim) < 1:
                raise ValueError(f"model {preset!r} is an online detector: give its feature_dim (--feature_dim).")
            model = detectors.detector_class(preset)(feature_dim=int(feature_dim), num_classes=int(num_classes),
                                                     **{**detectors.detector_config(preset), **overrides})
            with _fast_build.unfilled_initializers(model, keep=_head_layers(model)):
                model.build((None, None, int(feature_dim)))
            return model
    model = _presets.get(preset, int(num_classes), **{**_preset_kwargs(preset, num_segments), **overrides})
    frames = getattr(model, "clip_length", None) or getattr(model, "num_frames", 8)
    channels = getattr(model, "input_channels", 3)
    with _fast_build.unfilled_initializers(model, keep=_head_layers(model)):
        model.build((None, frames, 224, 224, channels))
    return model


@tf_export("tfvideo.models.convert_checkpoint")
def convert_checkpoint(source, checkpoint, model, num_classes=None, num_segments=None, allow_missing=(), **overrides):
    """Loads a published checkpoint into a tfvideo model.

    Args:
      source: a registered format (`list_checkpoint_formats()`): "torchvision",
        "mmaction2", "tsm", ...
      checkpoint: the checkpoint path.
      model: a preset name (built with `num_classes`, `num_segments` and `overrides`)
        or an already built tfvideo model.
      num_segments: segments (2D recognizers) or frames (I3D) of the clip; None: the
        preset's default.
      allow_missing: parts that may be absent or of another shape: ("head",) leaves the
        classifier freshly initialised when the checkpoint's class count differs.

    Returns:
      `(model, ConversionReport)`. Called on a clip normalised as tfvideo's pipelines do
      (RGB in [0, 1], ImageNet mean/std), the model returns the reference's logits.

    Raises:
      CheckpointError (a ValueError) with a one-line message naming the file, the first
      mismatched checkpoint key and both shapes, or the missing/unused entries.
    """
    reader = _FORMATS.get(source)
    allow = tuple(allow_missing or ())
    bad = [a for a in allow if a not in _ALLOW_MISSING]
    if bad:
        raise ValueError(f"allow_missing={list(allow)}: {bad[0]!r} is not one of {_ALLOW_MISSING}.")
    mapper, model_overrides = _FORMATS.meta(source)["mapper"], _FORMATS.meta(source)["model_overrides"]
    if isinstance(model, str):
        if num_classes is None:
            raise ValueError("convert_checkpoint: num_classes is required with a preset name.")
        from tfvideo.models import _presets

        known = model in _presets.list_presets()
        needed = model_overrides(_presets.preset_config(model)) if model_overrides and known else {}
        model = build_for_conversion(model, num_classes, num_segments, **{**needed, **overrides})
    try:
        state = reader(checkpoint)
    except CheckpointError:
        raise
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{checkpoint}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    tracked = _TrackedState(state)
    mapping = mapper(tracked, model)
    values, report = _check_mapping(model, mapping, tracked, source, checkpoint, allow)
    mapping = tracked = state = None  # `values` holds what is assigned; the rest can go.
    variables = _model_variables(model)
    for path in list(values):  # One variable at a time: a transposed copy lives only while assigned.
        variable = variables[path]
        value = values.pop(path)
        variable.assign(_as_tensor(value, keras.backend.standardize_dtype(variable.dtype)))
        _pickle.release(value)  # The checkpoint's pages under it leave this process's memory.
        del value
    return model, report


def _as_tensor(value, dtype):
    """An array (often a transposed view of the memory-mapped checkpoint) -> a backend tensor.

    A view whose axes are a permutation of a contiguous array is transposed by the backend
    (blocked, multi-threaded; NumPy's copy of a transposed view is several times slower).
    """
    value = np.asarray(value)
    if value.ndim >= 2 and not value.flags.c_contiguous:
        order = np.argsort([-s for s in value.strides], kind="stable")
        base = value.transpose(order)
        if base.flags.c_contiguous:
            return ops.transpose(ops.convert_to_tensor(base, dtype), tuple(int(i) for i in np.argsort(order)))
    return ops.convert_to_tensor(np.ascontiguousarray(value), dtype)


def _where(value):
    key = getattr(value, "source_key", None)
    return f"key {key!r} {list(value.source_shape)}" if key else "a converted value"


def _check_mapping(model, mapping, tracked, source, checkpoint, allow):
    variables = _model_variables(model)
    head = _head_variables(model)
    unknown = [p for p in mapping if p not in variables]
    if unknown:
        raise CheckpointError(f"{checkpoint}: the {source!r} mapper produced {unknown[0]!r}, which is no variable of "
                              f"{model.name!r}.")
    values, dropped = {}, []
    for path, value in mapping.items():
        want = tuple(variables[path].shape)
        if tuple(np.shape(value)) != want:
            if path in head and "head" in allow:
                dropped.append(getattr(value, "source_key", None))
                continue
            why = ("another class count: pass allow_missing=head (--allow_missing=head) to re-initialise the "
                   "classifier" if path in head else "another architecture, depth or width?")
            raise CheckpointError(f"{checkpoint}: {_where(value)} does not fit {_short(path, model)} {list(want)} of "
                                  f"{model.name!r} (converted shape {list(np.shape(value))}): {why}")
        values[path] = value
    missing = [p for p in variables if p not in values]
    unused = sorted(k for k in tracked if k not in tracked.used and not k.endswith(_IGNORED_SUFFIXES))
    unused = sorted(set(unused) | {k for k in dropped if k})
    head_keys = {k for k in dropped if k}
    if "head" in allow:
        bad_missing = [p for p in missing if p not in head]
        bad_unused = [k for k in unused if k not in head_keys and not _looks_like_head(k)]
    else:
        bad_missing, bad_unused = missing, unused
    if bad_missing or bad_unused:
        parts = []
        if bad_missing:
            parts.append(f"{len(bad_missing)} model variables not in the checkpoint (first: {bad_missing[0]})")
        if bad_unused:
            parts.append(f"{len(bad_unused)} checkpoint keys unused (first: {bad_unused[0]!r})")
        head_only = all(p in head for p in bad_missing) and all(_looks_like_head(k) for k in bad_unused)
        if head_only and "head" not in allow:
            hint = "; pass allow_missing=head (--allow_missing=head) for a head-only difference"
        else:
            hint = f"; another architecture, or not a {source!r} checkpoint?" if not head_only else ""
        end = "" if hint.endswith("?") else "."
        raise CheckpointError(f"{checkpoint}: does not match {model.name!r} ({source}): {'; '.join(parts)}{hint}{end}")
    return values, ConversionReport(source, str(checkpoint), sorted(values), missing, unused)


def _looks_like_head(key):
    """Checkpoint keys of classifiers (left unread when the model's head differs)."""
    return any(part in key.split(".") for part in ("fc", "fc_cls", "new_fc", "cls_head", "classifier"))


@tf_export("tfvideo.models.save_converted")
def save_converted(model, path):
    """Saves a converted model as a `.keras` file, atomically (no partial file at `path`).

    Keras writes the weights straight to an HDF5 file in a staging folder (`zipped=False`),
    which is then stored, uncompressed as Keras does, into the `.keras` zip: the weights are
    not held in memory a second and third time (Keras' in-memory archive), which for a
    1.4 GB model is both the time and the peak memory of the save.
    """
    if not str(path).endswith(".keras"):
        raise ValueError(f"{path}: the output must be a .keras file.")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}.keras")
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-{os.getpid()}-", dir=directory)
    try:
        model.save(os.path.join(staging, "model"), zipped=False)
        _zip_saved_model(os.path.join(staging, "model"), tmp)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if os.path.exists(tmp):
            os.remove(tmp)


def _zip_saved_model(folder, archive):
    """A `model.save(zipped=False)` folder -> the `.keras` zip Keras writes (members stored)."""
    first = ("metadata.json", "config.json", "model.weights.h5")
    names = [os.path.relpath(os.path.join(root, f), folder) for root, _, files in os.walk(folder) for f in files]
    names = [n for n in first if n in names] + sorted(n for n in names if n not in first)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in names:
            source = os.path.join(folder, name)
            info = zipfile.ZipInfo.from_file(source, name.replace(os.sep, "/"))
            with open(source, "rb") as src, zf.open(info, "w", force_zip64=info.file_size > 2**31) as dst:
                shutil.copyfileobj(src, dst, 16 << 20)  # ZipFile.write copies in 8 KiB pieces.


@tf_export("tfvideo.models.init_from_converted")
def init_from_converted(model, path):
    """Initialises a built `model` from a `.keras` file (e.g. written by `tfvideo-convert`).

    Variables are matched by path (the model's own name prefix aside) and shape. The
    classifier is left as initialised when its shape differs (another class count);
    any other difference is an error naming the variable. Returns a one-line summary of
    what was loaded, for the training log.
    """
    if not os.path.isfile(path):
        raise ValueError(f"--init_checkpoint={path}: no such file.")
    try:
        source = keras.saving.load_model(path, compile=False)
    except Exception as e:
        raise ValueError(f"--init_checkpoint={path}: not a readable .keras model ({type(e).__name__}).") from None
    src = {_short(v.path, source): v for v in _model_variables(source).values()}
    head = _head_variables(model)
    loaded_layers, skipped = [], []
    for path_, variable in _model_variables(model).items():
        short = _short(path_, model)
        if short not in src:
            raise ValueError(f"--init_checkpoint={path}: has no variable {short} {list(variable.shape)} of "
                             f"{model.name!r}: another architecture?")
        value = ops.convert_to_numpy(src[short])
        if tuple(value.shape) != tuple(variable.shape):
            if path_ in head:
                skipped.append(short)
                continue
            raise ValueError(f"--init_checkpoint={path}: variable {short} is {list(value.shape)} there and "
                             f"{list(variable.shape)} in {model.name!r}: another architecture, depth or width?")
        variable.assign(value)
        layer = short.rsplit("/", 1)[0]
        if not loaded_layers or loaded_layers[-1] != layer:
            loaded_layers.append(layer)
    text = f"--init_checkpoint={path}: loaded {len(loaded_layers)} layers ({loaded_layers[0]} ... {loaded_layers[-1]})"
    if skipped:
        text += f"; re-initialised {', '.join(sorted({s.rsplit('/', 1)[0] for s in skipped}))} (other class count)"
    return text


def _short(path, model):
    prefix = f"{model.name}/"
    return path[len(prefix):] if path.startswith(prefix) else path


def conv_kernel(weight):
    """PyTorch conv weight `[out, in, (t,) h, w]` -> Keras kernel `[(t,) h, w, in, out]`."""
    if weight.ndim == 4:
        return weight.transpose(2, 3, 1, 0)
    if weight.ndim == 5:
        return weight.transpose(2, 3, 4, 1, 0)
    raise CheckpointError(f"{_where(weight)} is not a 2D or 3D convolution weight.")


def dense_kernel(weight):
    """PyTorch linear weight `[out, in]` (or a 1x1(x1) conv weight) -> Keras Dense kernel `[in, out]`."""
    return weight.reshape(weight.shape[0], -1).T


# ---------------------------------------------------------------- mapper helpers
# Shared by the mappers that walk checkpoint keys (tdn, kinetics_i3d, trn_pytorch, oadtr).


def strip_prefixes(state, prefixes=("module.",)):
    """(state with keys without the DataParallel `module.` and other given prefixes,
    {stripped key: original key})."""
    out, original = {}, {}
    for key, value in state.items():
        short = key
        for prefix in prefixes:
            if short.startswith(prefix):
                short = short[len(prefix):]
        out[short], original[short] = value, key
    return out, original


def check_unused(state, used, fmt, ignore=None, original=None):
    """Raises naming the first checkpoint key no variable took (another architecture)."""
    unused = [k for k in state if k not in used and not k.endswith(_IGNORED_SUFFIXES)
              and not (ignore and ignore.search(k))]
    if unused:
        first = (original or {}).get(unused[0], unused[0])
        raise ValueError(f"{fmt} checkpoint: key {first!r} {tuple(np.shape(state[unused[0]]))} has no "
                         f"counterpart in the model ({len(unused)} unused keys: {', '.join(unused[:5])}"
                         f"{', ...' if len(unused) > 5 else ''}).")


def variable_index(model):
    """{path: variable} of `model`, also under each path without its leading model scopes
    (backbone layers are `conv1_conv/kernel`, the head `tdn/classifier/kernel`)."""
    index = {v.path: v for v in model.weights}
    for v in model.weights:
        parts = v.path.split("/")
        for i in range(1, len(parts)):
            index.setdefault("/".join(parts[i:]), v)
    return index


def assign_checked(out, variables, path, value, key, source_shape=None):
    """`out[path] = value` after checking it against the model variable's shape."""
    want = tuple(variables[path].shape)
    if tuple(value.shape) != want:
        source = tuple(value.shape) if source_shape is None else tuple(source_shape)
        raise ValueError(f"checkpoint key {key!r} {source} does not fit model variable {variables[path].path!r} "
                         f"{want} (as {tuple(value.shape)} in Keras layout).")
    # A view (of the memory-mapped checkpoint) stays a view: converted one variable at a time on assign.
    out[variables[path].path] = value if value.dtype == np.float32 else value.astype(np.float32)
