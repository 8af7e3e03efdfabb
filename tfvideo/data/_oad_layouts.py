"""The online-detection community's feature layouts (THUMOS'14, TVSeries, HDD), read as they are.

The reference repositories read per-session chunk features and one-hot targets [T, K+1]
(column 0 background) in three layouts:

- "tfvideo": one folder per modality of `<session>.npy` (TRN.pytorch's `data_root/<feature>/`,
  LSTR's `rgb_kinetics_resnet50/`, ...) and targets `<session>.npy` (their `target/`,
  `target_perframe/`): tfvideo's own layout.
- "suffixed": `<session>_rgb.npy` / `<session>_flow.npy` in one folder (OadTR's
  `Feature/<feature>/`).
- "pickle": OadTR's preprocessed pickles, features `thumos_all_feature_{val,test}_V3.pickle`
  {session: {"rgb": [T, 2048], "flow": [T, 1024]}} and targets `thumos_{val,test}_anno.pickle`
  {session: {"anno": [T, K+1]}}.

Their `data_info.json` holds, per dataset name, the class names (`class_index`; LSTR:
`class_names`, with `ignore_index`) and the `train_session_set` / `test_session_set`.
Pickles are read by a restricted unpickler that builds NumPy arrays and nothing else.
"""

import dataclasses
import json
import os
import pickle

import numpy as np

from tfvideo import _pickle
from tfvideo.api._export import export_constant, tf_export
from tfvideo.data._features import match_chunk_counts

OAD_LAYOUTS = export_constant("tfvideo.data.OAD_LAYOUTS", ("auto", "tfvideo", "suffixed", "pickle"))
_PICKLE_SUFFIXES = (".pickle", ".pkl")


def load_array_pickle(path):
    """The dicts/lists of NumPy arrays in pickle `path`, read without running code (the
    restricted unpickler of `tfvideo._pickle`, shared with the checkpoint reader).

    Raises ValueError naming the file for a pickle that names anything else (a class, a
    function) or cannot be read; FileNotFoundError for a missing file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pickle {path} does not exist.")
    try:
        return _pickle.read_array_pickle(path)
    except (_pickle.UnsafeCheckpointError, _pickle.UnreadableCheckpointError, pickle.UnpicklingError, EOFError,
            AttributeError, ImportError, IndexError, TypeError, ValueError) as e:
        raise ValueError(f"pickle {path}: not a plain pickle of NumPy arrays ({e}).") from None


@tf_export("tfvideo.data.OnlineDataInfo")
@dataclasses.dataclass(frozen=True)
class OnlineDataInfo:
    """One dataset of a `data_info.json`: `class_names` (K+1, background first),
    `train_sessions` / `test_sessions`, `ignore_index` (LSTR's; None where absent or < 0)."""

    name: str
    class_names: tuple
    train_sessions: tuple
    test_sessions: tuple
    ignore_index: int = None
    path: str = ""


@tf_export("tfvideo.data.read_data_info")
def read_data_info(path, dataset=None):
    """The `dataset` entry ("THUMOS", "TVSeries", ...) of a `data_info.json` as `OnlineDataInfo`.

    `dataset` None: the file's only entry (or the file itself when it is one entry).
    Class names come from `class_index` (TRN.pytorch, OadTR) or `class_names` (LSTR).
    """
    try:
        with open(path) as f:
            info = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"data_info {path} does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"data_info {path}: not JSON ({e}).") from None
    if not isinstance(info, dict):
        raise ValueError(f"data_info {path}: expected an object of datasets, got {type(info).__name__}.")
    if "train_session_set" in info or "test_session_set" in info:
        entry, name = info, dataset or os.path.splitext(os.path.basename(path))[0]
    elif dataset is None:
        if len(info) != 1:
            raise ValueError(f"data_info {path} holds datasets {sorted(info)}: name one (--data_info_dataset).")
        name, entry = next(iter(info.items()))
    else:
        if dataset not in info:
            raise ValueError(f"data_info {path} has no dataset {dataset!r}; it holds {sorted(info)}.")
        name, entry = dataset, info[dataset]
    where = f"data_info {path} ({name})"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object, got {type(entry).__name__}.")
    names = entry.get("class_index", entry.get("class_names"))
    if not isinstance(names, list) or not names:
        raise ValueError(f"{where}: needs a non-empty list `class_index` (or `class_names`).")
    if "num_classes" in entry and entry["num_classes"] != len(names):
        raise ValueError(f"{where}: num_classes={entry['num_classes']} but the class list names {len(names)}.")
    sets = {}
    for key in ("train_session_set", "test_session_set"):
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise ValueError(f"{where}: `{key}` must be a list of session names.")
        sets[key] = tuple(value)
    ignore = entry.get("ignore_index")
    if ignore is not None and not (isinstance(ignore, int) and 0 <= ignore < len(names)):
        ignore = None  # LSTR's -100: nothing ignored.
    return OnlineDataInfo(name=name, class_names=tuple(str(n) for n in names), train_sessions=sets["train_session_set"],
                          test_sessions=sets["test_session_set"], ignore_index=ignore, path=path)


def _source_layout(source, session, modalities, layout):
    """The layout of one features source for the first session (layout "auto": detected)."""
    if layout != "auto":
        return layout
    if source.endswith(_PICKLE_SUFFIXES):
        return "pickle"
    if not os.path.isdir(source):
        raise FileNotFoundError(f"features {source}: no such folder or pickle.")
    if os.path.exists(os.path.join(source, f"{session}.npy")):
        return "tfvideo"
    if os.path.exists(os.path.join(source, f"{session}_{modalities[0]}.npy")):
        return "suffixed"
    raise FileNotFoundError(f"session {session!r} has no features in {source}: neither {session}.npy nor "
                            f"{session}_{modalities[0]}.npy.")


def _load_npy(path, what, session):
    if not os.path.exists(path):
        raise FileNotFoundError(f"session {session!r} has no {what}: {path} does not exist.")
    return _as_matrix(np.load(path), f"{what} {path}")


def _as_matrix(array, where):
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{where} must hold a [T, D] array, got shape {array.shape}.")
    return array.astype(np.float32)


class _Pickles:
    """Each pickle read once; entries looked up with errors naming file and session."""

    def __init__(self):
        self._loaded = {}

    def entry(self, path, session, key):
        if path not in self._loaded:
            content = load_array_pickle(path)
            if not isinstance(content, dict):
                raise ValueError(f"pickle {path}: expected {{session: {{...}}}}, got {type(content).__name__}.")
            self._loaded[path] = content
        content = self._loaded[path]
        if session not in content:
            raise FileNotFoundError(f"session {session!r} is not in {path} ({len(content)} sessions).")
        value = content[session]
        if not isinstance(value, dict) or key not in value:
            keys = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise ValueError(f"{path}: session {session!r} has no {key!r} (it holds {keys}).")
        return _as_matrix(value[key], f"{path}[{session!r}][{key!r}]")


def _features(session, sources, layouts, modalities, pickles):
    parts, names = [], []
    for source, layout in zip(sources, layouts):
        if layout == "tfvideo":
            path = os.path.join(source, f"{session}.npy")
            parts.append(_load_npy(path, "features", session))
            names.append(path)
        elif layout == "suffixed":
            for m in modalities:
                path = os.path.join(source, f"{session}_{m}.npy")
                parts.append(_load_npy(path, "features", session))
                names.append(path)
        else:
            for m in modalities:
                parts.append(pickles.entry(source, session, m))
                names.append(f"{source}[{session!r}][{m!r}]")
    if len({p.shape[0] for p in parts}) != 1:
        shapes = ", ".join(f"{n} {p.shape}" for n, p in zip(names, parts))
        raise ValueError(f"Feature sources disagree on the number of chunks of {session!r}: {shapes}.")
    return np.concatenate(parts, axis=1)


@tf_export("tfvideo.data.load_online_sessions")
def load_online_sessions(sessions, features, targets, layout="auto", modalities=("rgb", "flow"), class_names=None,
                         where=""):
    """[(session, features [T, D], targets [T, K])] of `sessions` from any of the OAD layouts.

    Args:
      sessions: session names (a session list, or `OnlineDataInfo.train_sessions`).
      features: feature sources, concatenated along D in this order: folders of
        `<session>.npy` ("tfvideo"), folders of `<session>_<modality>.npy` ("suffixed"), or
        `.pickle` files of {session: {modality: [T, D_m]}} ("pickle").
      targets: a folder of `<session>.npy` one-hot targets, or a `.pickle` of
        {session: {"anno": [T, K]}}.
      layout: one of `OAD_LAYOUTS`; "auto" tells each source's layout from its name and files.
      modalities: the modality keys of "suffixed" and "pickle" sources, in concatenation order.
      class_names: the K names the target columns must match (a data_info's class list).
      where: a prefix for errors (e.g. the flag the sessions came from).

    Raises FileNotFoundError / ValueError with one line naming the file and session for a
    missing session, features and targets of different lengths (a difference of one chunk is
    cut off, as `load_chunk_features` does), or a class count other than `class_names`'.
    """
    if layout not in OAD_LAYOUTS:
        raise ValueError(f"layout={layout!r} must be one of {OAD_LAYOUTS}.")
    sources = [features] if isinstance(features, str) else list(features)
    modalities = [modalities] if isinstance(modalities, str) else list(modalities)
    sessions = list(sessions)
    prefix = f"{where}: " if where else ""
    if not sessions:
        raise ValueError(f"{prefix}no sessions to read.")
    if not sources or not targets or not modalities:
        raise ValueError(f"{prefix}features, targets and modalities are required.")
    try:
        layouts = [_source_layout(s, sessions[0], modalities, layout) for s in sources]
        pickles = _Pickles()
        target_pickle = targets.endswith(_PICKLE_SUFFIXES) if layout == "auto" else layout == "pickle"
        videos = []
        for session in sessions:
            x = _features(session, sources, layouts, modalities, pickles)
            if target_pickle:
                y, path = pickles.entry(targets, session, "anno"), f"{targets}[{session!r}]"
            else:
                path = os.path.join(targets, f"{session}.npy")
                y = _load_npy(path, "targets", session)
            if class_names is not None and y.shape[1] != len(class_names):
                raise ValueError(f"targets {path} have {y.shape[1]} columns but the class list names "
                                 f"{len(class_names)} classes (background included).")
            x, y = match_chunk_counts(x, y, path, session)
            videos.append((session, x, y))
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(f"{prefix}{e}") from None
    widths = {(v[1].shape[1], v[2].shape[1]) for v in videos}
    if len(widths) != 1:
        raise ValueError(f"{prefix}sessions disagree on (feature, target) widths: {sorted(widths)}.")
    return videos
