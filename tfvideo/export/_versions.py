"""Version directories of a model base path and the `models.config` of an export root.

TF Serving watches `<base_path>/<version>/` where `<version>` is a decimal integer and
serves what it finds there; anything else in the base path is ignored. New versions are
written to a hidden temporary directory and renamed into place, so a server polling the
base path never loads a half-written SavedModel. An export holds an advisory lock on
its temporary directory while it writes; one that was killed (SIGTERM, SIGKILL) leaves
the directory unlocked, and the next export (or a server starting on the base path,
`remove_stale_staging`) removes it. What is published is readable by other
users (directories 0755, files 0644 whatever the umask): TF Serving often runs as another
user than the one who exported.
"""

import contextlib
import fcntl
import os
import shutil
import tempfile

from absl import logging
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfvideo.api._export import tf_export

MODELS_CONFIG_FILE = "models.config"
_TMP_PREFIX = ".tmp-"
DIR_MODE = 0o755
FILE_MODE = 0o644


@tf_export("tfvideo.export.list_versions")
def list_versions(base_path):
    """Sorted integer versions of the complete SavedModels under `base_path`."""
    if not os.path.isdir(base_path):
        return []
    versions = []
    for name in os.listdir(base_path):
        full = os.path.join(base_path, name)
        if name.isdigit() and os.path.isfile(os.path.join(full, "saved_model.pb")):
            versions.append(int(name))
    return sorted(versions)


def next_version(base_path):
    """One above the highest numeric directory under `base_path` (1 for a new one).

    Every numeric name counts, complete or not, so a version number is never reused.
    """
    numeric = [int(n) for n in os.listdir(base_path) if n.isdigit()] if os.path.isdir(base_path) else []
    return max(numeric, default=0) + 1


def _make_readable(tree):
    """Directories 0755 and files 0644 under (and including) `tree`."""
    os.chmod(tree, DIR_MODE)
    for root, dirs, files in os.walk(tree):
        for name in dirs:
            os.chmod(os.path.join(root, name), DIR_MODE)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, FILE_MODE)


def _makedirs_readable(path):
    """`os.makedirs(path)` with 0755 directories; returns the ones it created, deepest last."""
    missing = []
    head = os.path.abspath(path)
    while not os.path.isdir(head):
        missing.append(head)
        head = os.path.dirname(head)
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:
            continue
        os.chmod(directory, DIR_MODE)
    return list(reversed(missing))


def _is_staging_dir(base_path, name):
    return name.startswith(_TMP_PREFIX) and os.path.isdir(os.path.join(base_path, name))


def remove_stale_staging(base_path):
    """Removes the temporary directories that killed exports left in `base_path`; returns their paths.

    A running export holds a lock on its temporary directory (`staged_version_dir`), so a
    directory whose lock can be taken belongs to no live export: it is removed (under
    that lock, so an export starting meanwhile cannot adopt it). Directories of live
    exports, and ones this user cannot lock, are left. One warning line lists what was removed.
    """
    if not os.path.isdir(base_path):
        return []
    removed = []
    for name in sorted(os.listdir(base_path)):
        if not _is_staging_dir(base_path, name):
            continue
        path = os.path.join(base_path, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:  # Gone meanwhile, or not ours to open.
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # A live export is writing it.
            os.close(fd)
            continue
        try:
            shutil.rmtree(path)
            removed.append(path)
        except OSError as e:
            logging.warning("Could not remove %s left by an interrupted export: %s", path, e.strerror or e)
        finally:
            os.close(fd)
    if removed:
        logging.warning("Removed %d temporary director%s left by interrupted exports in %s: %s", len(removed),
                        "y" if len(removed) == 1 else "ies", base_path, ", ".join(os.path.basename(p) for p in removed))
    return removed


def _locked_staging_dir(base_path):
    """A new `.tmp-*` directory in `base_path` and the open descriptor holding its lock."""
    while True:
        tmp = tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=base_path)
        fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)  # Waits while a cleaner that took it first removes it.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                return tmp, fd
        except FileNotFoundError:
            pass
        os.close(fd)  # Removed as stale between its creation and the lock: make another.


@contextlib.contextmanager
def staged_version_dir(base_path, version=None):
    """Yields `(tmp_dir, publish)`: write the SavedModel to tmp_dir, then `publish()`.

    `publish()` makes the tree readable by other users (0755 / 0644), renames tmp_dir to
    `<base_path>/<version>` (`next_version` when `version` is None, retrying if a concurrent
    export took the number) and returns the final path. Without `publish()` (an error while
    writing) the temporary directory is removed, and so are the directories this call
    created for it when they are left empty: a failed export leaves nothing behind. A
    killed export cannot clean up: the temporary directories of dead exports are removed
    first (`remove_stale_staging`).
    """
    created = _makedirs_readable(base_path)
    remove_stale_staging(base_path)
    tmp, lock = _locked_staging_dir(base_path)
    final = {}

    def publish():
        _make_readable(tmp)
        for _ in range(100):
            v = int(version) if version is not None else next_version(base_path)
            target = os.path.join(base_path, str(v))
            if os.path.exists(target):
                if version is not None:
                    raise FileExistsError(f"export version {target} already exists")
                continue
            try:
                os.rename(tmp, target)
            except OSError:
                if version is not None or not os.path.exists(target):
                    raise
                continue  # Lost a race for this number: take the next one.
            final["path"] = target
            return target
        raise RuntimeError(f"could not allocate a version directory under {base_path}")

    try:
        yield tmp, publish
    finally:
        if "path" not in final:
            shutil.rmtree(tmp, ignore_errors=True)
        os.close(lock)  # Published or removed: nothing left to guard.
        if "path" not in final:
            for directory in reversed(created):  # Deepest first; only if still empty.
                try:
                    os.rmdir(directory)
                except OSError:
                    break


@tf_export("tfvideo.export.write_models_config")
def write_models_config(export_root, model_name, base_path=None):
    """Adds (or updates) `model_name` in `<export_root>/models.config`.

    The file is a TF Serving `ModelServerConfig` text proto (`model_config_list`), usable
    with `tensorflow_model_server --model_config_file=...` and `tfvideo-serve
    --model_config_file=...`. `base_path` defaults to the absolute `<export_root>/<model_name>`;
    pass e.g. `/models/<model_name>` when the server runs in a container that mounts
    `export_root` at `/models`. Returns the file's path.
    """
    path = os.path.join(export_root, MODELS_CONFIG_FILE)
    config = read_models_config(path) if os.path.exists(path) else model_server_config_pb2.ModelServerConfig()
    base_path = base_path or os.path.abspath(os.path.join(export_root, model_name))
    for entry in config.model_config_list.config:
        if entry.name == model_name:
            entry.base_path = base_path
            break
    else:
        entry = config.model_config_list.config.add()
        entry.name = model_name
        entry.base_path = base_path
        entry.model_platform = "tensorflow"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text_format.MessageToString(config))
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
    return path


@tf_export("tfvideo.export.read_models_config")
def read_models_config(path):
    """Parses a `models.config` text proto into a `ModelServerConfig`; errors name the file."""
    with open(path) as f:
        text = f.read()
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ValueError(f"{path}: not a ModelServerConfig text proto: {e}") from e
    return config
