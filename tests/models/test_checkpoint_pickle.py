"""Checkpoint files are read without running any of their code (tfvideo._pickle):
a payload in each place a pickle can sit is refused before it runs, naming the file and the
global; real checkpoints (both torch formats, every dtype, views, training metadata) read
exactly as torch reads them, with torch not even importable."""

import argparse
import collections
import os
import pickle
import subprocess
import sys
import types
import zipfile

import numpy as np
import pytest

from tfvideo import _pickle, models

_LEGACY_MAGIC, _LEGACY_PROTOCOL = 0x1950A86A20F9469CFC6C, 1001
_OPEN = f"{open.__module__}.open"  # how pickle names the built-in open ("io.open")


class _Payload:
    """Creates `marker` when unpickled by an unrestricted loader."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _SystemPayload(_Payload):
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _legacy_stream(path, *pickles):
    with open(path, "wb") as f:
        for obj in pickles:
            pickle.dump(obj, f, protocol=2)


def _assert_refused(path, marker, global_name):
    with pytest.raises(models.CheckpointError) as e:
        models._convert.read_torch_checkpoint(str(path))
    message = str(e.value)
    assert not marker.exists(), "the payload ran"
    assert "\n" not in message and str(path) in message and f"'{global_name}'" in message, message
    assert "refused" in message


# Places without torch: a bare pickle (the reported case) and each pickle of the legacy stream.
@pytest.mark.parametrize("place", ["bare_pickle", "legacy_magic", "legacy_sys_info", "legacy_object",
                                   "legacy_storage_keys", "legacy_nested_list"])
def test_payload_in_a_legacy_stream_never_runs(tmp_path, place):
    marker, path = tmp_path / "ran", tmp_path / f"{place}.pth"
    payload = _Payload(marker)
    header = [_LEGACY_MAGIC, _LEGACY_PROTOCOL, {"protocol_version": 1001, "little_endian": True}]
    streams = {
        "bare_pickle": [payload],
        "legacy_magic": [payload, _LEGACY_PROTOCOL],
        "legacy_sys_info": header[:2] + [{"little_endian": payload}],
        "legacy_object": header + [{"state_dict": {"w": payload}}, []],
        "legacy_storage_keys": header + [{"state_dict": {}}, [payload]],
        "legacy_nested_list": header + [{"state_dict": {}, "history": [1, {"deep": (2, [payload])}]}, []],
    }
    _legacy_stream(path, *streams[place])
    _assert_refused(path, marker, _OPEN)
    assert not marker.exists()


def _fake_mmengine(monkeypatch):
    """A class that pickles as mmengine's HistoryBuffer (mmengine need not be installed)."""
    names = ["mmengine", "mmengine.logging", "mmengine.logging.history_buffer"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))

    class HistoryBuffer:
        def __init__(self):
            self._log_history = np.arange(4.0)

    HistoryBuffer.__module__, HistoryBuffer.__qualname__ = names[-1], "HistoryBuffer"
    sys.modules[names[-1]].HistoryBuffer = HistoryBuffer
    return HistoryBuffer


@pytest.mark.parametrize("place", ["zip_top", "zip_state_dict", "mmengine_meta", "nested_list", "legacy_format",
                                   "os_system"])
def test_payload_in_a_torch_save_file_never_runs(tmp_path, monkeypatch, place):
    torch = pytest.importorskip("torch")
    marker, path = tmp_path / "ran", tmp_path / f"{place}.pth"
    state = collections.OrderedDict(weight=torch.ones(2, 3), bias=torch.zeros(2))
    payload, name = _Payload(marker), _OPEN
    kwargs = {}
    if place == "zip_top":
        obj = {"state_dict": state, "extra": payload}
    elif place == "zip_state_dict":
        obj = {"state_dict": collections.OrderedDict(state, hook=payload)}
    elif place == "mmengine_meta":
        history = _fake_mmengine(monkeypatch)
        obj = {"meta": {"epoch": 3, "seed": np.int64(5), "hook_msgs": {"best": payload}},
               "message_hub": {"log_scalars": {"train/loss": history()}}, "state_dict": state}
    elif place == "nested_list":
        obj = {"state_dict": state, "param_schedulers": [{"milestones": (1, {"x": [payload]})}]}
    elif place == "legacy_format":
        obj, kwargs = {"state_dict": state, "meta": {"x": payload}}, {"_use_new_zipfile_serialization": False}
    else:
        obj, name = {"state_dict": state, "meta": _SystemPayload(marker)}, f"{os.system.__module__}.system"
    torch.save(obj, str(path), **kwargs)
    _assert_refused(path, marker, name)


def test_convert_binary_refuses_a_bare_pickle_payload(tmp_path):
    """The reported case: `tfvideo-convert` on a bare pickle: exit 2, one line, nothing ran or was written."""
    marker, path, out = tmp_path / "ran", tmp_path / "evil.pth", tmp_path / "out.keras"
    _legacy_stream(path, _Payload(marker))
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-m", "trainers.convert", "--source=torchvision", f"--checkpoint={path}",
                          "--model=tsn_r18", "--num_classes=4", f"--output={out}"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2 and not marker.exists() and not out.exists()
    lines = [line for line in run.stderr.splitlines() if "tfvideo-convert" in line]
    assert len(lines) == 1 and str(path) in lines[0] and f"'{_OPEN}'" in lines[0], run.stderr[-2000:]
    assert "Traceback" not in run.stderr


def test_both_formats_read_as_torch_reads_them_without_torch(tmp_path, monkeypatch):
    """Zip and legacy files: every dtype, strided views, shared storages and Parameters equal
    `torch.load(weights_only=True)`'s tensors, with `import torch` made impossible."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    base = torch.randn(4, 6)
    state = collections.OrderedDict(
        conv=torch.randn(3, 2, 3, 3), transposed=base.t(), row=base[2], sliced=base[:, 1:4],
        half=torch.randn(5).half(), bf16=torch.randn(7).bfloat16(), long=torch.arange(9), int8=torch.arange(-3, 3).to(torch.int8),
        flags=torch.tensor([True, False]), empty=torch.zeros(0, 3), scalar=torch.tensor(2.5),
        param=torch.nn.Parameter(torch.randn(2, 2)))
    files = {}
    for fmt, kwargs in (("zip", {}), ("legacy", {"_use_new_zipfile_serialization": False})):
        files[fmt] = str(tmp_path / f"{fmt}.pth")
        torch.save({"state_dict": state, "epoch": 4, "args": argparse.Namespace(lr=0.1)}, files[fmt], **kwargs)
    want = {k: (v.float() if v.dtype == torch.bfloat16 else v).detach().numpy() for k, v in state.items()}
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError.
    for fmt, path in files.items():
        got = models._convert.read_torch_checkpoint(path)
        assert set(got) == set(want), fmt
        for key, value in want.items():
            assert got[key].dtype == value.dtype and got[key].shape == value.shape, (fmt, key)
            np.testing.assert_array_equal(got[key], value, err_msg=f"{fmt} {key}")


def test_training_metadata_loads_inert(tmp_path, monkeypatch):
    """An mmengine-style checkpoint (message hub of history buffers, NumPy arrays and scalars,
    argparse args): the tensors load, the metadata becomes placeholders."""
    torch = pytest.importorskip("torch")
    history = _fake_mmengine(monkeypatch)
    path = str(tmp_path / "mmengine.pth")
    torch.save({"meta": {"epoch": 2, "seed": np.int64(3), "dataset_meta": {"classes": ("a", "b")}},
                "message_hub": {"log_scalars": {"loss": history()}, "runtime_info": {"x": np.arange(3)}},
                "args": argparse.Namespace(lr=0.1), "state_dict": {"fc.weight": torch.ones(2, 3)}}, path)
    obj = _pickle.read_torch_file(path)
    assert isinstance(obj["message_hub"]["log_scalars"]["loss"], _pickle.Inert)
    assert isinstance(obj["meta"]["seed"], _pickle.Inert) and obj["meta"]["dataset_meta"]["classes"] == ("a", "b")
    state = models._convert.read_torch_checkpoint(path)
    assert list(state) == ["fc.weight"] and np.array_equal(state["fc.weight"], np.ones((2, 3), "float32"))


def test_damaged_files_are_one_line_errors(tmp_path):
    """A tensor reaching past its storage, a truncated legacy file, a missing storage record,
    an empty file: `not a readable PyTorch checkpoint (...)` naming the file, no crash."""
    torch = pytest.importorskip("torch")
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(100, 100)}, str(legacy), _use_new_zipfile_serialization=False)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(legacy.read_bytes()[:-100])
    zipped = tmp_path / "zipped.pth"
    torch.save({"w": torch.ones(10)}, str(zipped))
    oversized = tmp_path / "oversized.pth"  # size [10**6] over a storage of 10 floats.
    with zipfile.ZipFile(zipped) as src, zipfile.ZipFile(oversized, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"K\n\x85", b"J@B\x0f\x00\x85")  # size (10,) -> (1000000,)
                assert b"J@B\x0f\x00" in data
            dst.writestr(info, data)
    missing = tmp_path / "missing.pth"
    with zipfile.ZipFile(zipped) as src, zipfile.ZipFile(missing, "w") as dst:
        for info in src.infolist():
            if "/data/" not in info.filename:
                dst.writestr(info, src.read(info))
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for bad in (truncated, oversized, missing, empty):
        with pytest.raises(models.CheckpointError) as e:
            models._convert.read_torch_checkpoint(str(bad))
        message = str(e.value)
        assert str(bad) in message and "not a readable PyTorch checkpoint" in message and "\n" not in message, message


@pytest.mark.parametrize("protocol", [2, 4])
def test_array_pickles_read_with_real_arrays_and_refuse_payloads(tmp_path, protocol):
    """`read_array_pickle` (for feature files such as the OAD community's): NumPy arrays and
    scalars round-trip exactly; a payload nested among them is refused, naming the global."""
    data = {"video_1": {"rgb": np.arange(12, dtype=np.float32).reshape(3, 4), "anno": np.eye(3, dtype=np.int64),
                        "fps": np.float64(24.0), "names": ["a", "b"], "raw": b"\x00\xff"}}
    path = tmp_path / "features.pickle"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    got = _pickle.read_array_pickle(str(path))
    for key in ("rgb", "anno"):
        np.testing.assert_array_equal(got["video_1"][key], data["video_1"][key])
        assert got["video_1"][key].dtype == data["video_1"][key].dtype
    assert got["video_1"]["fps"] == 24.0 and got["video_1"]["names"] == ["a", "b"]
    assert got["video_1"]["raw"] == b"\x00\xff"
    marker = tmp_path / "ran"
    path.write_bytes(pickle.dumps({"video_1": {"rgb": data["video_1"]["rgb"], "x": [_Payload(marker)]}},
                                  protocol=protocol))
    with pytest.raises(_pickle.UnsafeCheckpointError, match=f"'{_OPEN}'"):
        _pickle.read_array_pickle(str(path))
    assert not marker.exists()
