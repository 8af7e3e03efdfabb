"""The online-detection community's layouts (TRN.pytorch / LSTR folders and data_info.json,
OadTR's `<session>_rgb.npy` files and pickles) read as tfvideo's own layout reads the same
data, through the library and through tfvideo-train / tfvideo-evaluate.

File names and keys as the authors' loaders read them: TRN.pytorch (xumingze0308/TRN.pytorch
d432c1e, lib/datasets/thumos_data_layer.py, configs/build.py, data/data_info.json), OadTR
(wangxiang1230/OadTR b4721b0, dataset.py, main.py, data/data_info_new.json), LSTR
(amazon-science/long-short-term-transformer dde2f5a, datasets/perframe_data_layers.py,
utils/parser.py, data/data_info.json).
"""

import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

from tfvideo import data, online
from tfvideo.data._oad_layouts import load_array_pickle

CLASSES = ["Background", "Jump", "Wave", "Clap", "Run", "Ambiguous"]  # 6 target columns, as make_onset_streams


def _splits():
    return {"val": online.make_onset_streams(12, seed=0), "test": online.make_onset_streams(4, seed=1)}


def _write_layouts(root):
    """The same sessions in tfvideo's layout and the three community layouts; returns their roots."""
    splits = _splits()
    names = {split: [f"video_{split}_{k:04d}" for k in range(len(streams))] for split, streams in splits.items()}
    info = {"THUMOS": {"class_index": CLASSES, "train_session_set": names["val"], "test_session_set": names["test"]},
            "TVSeries": {"class_index": ["Background", "Pick something up"], "train_session_set": [],
                         "test_session_set": []}}
    own, trn, suffixed, pickles = (root / d for d in ("own", "trn/THUMOS", "oadtr_npy", "oadtr_pickle"))
    for d in (own / "rgb", own / "flow", own / "targets", trn / "rgb", trn / "flow", trn / "target",
              suffixed / "V3", suffixed / "target", pickles):
        os.makedirs(d, exist_ok=True)
    for split, streams in splits.items():
        features_pickle, anno_pickle = {}, {}
        for name, (x, y) in zip(names[split], streams):
            rgb, flow = x[:, :10], x[:, 10:]
            for folder in (own, trn):
                np.save(folder / "rgb" / f"{name}.npy", rgb)
                np.save(folder / "flow" / f"{name}.npy", flow)
            np.save(own / "targets" / f"{name}.npy", y)
            np.save(trn / "target" / f"{name}.npy", y)
            np.save(suffixed / "V3" / f"{name}_rgb.npy", rgb)
            np.save(suffixed / "V3" / f"{name}_flow.npy", flow)
            np.save(suffixed / "target" / f"{name}.npy", y)
            features_pickle[name] = {"rgb": rgb, "flow": flow}
            anno_pickle[name] = {"anno": y.astype(np.float64)}  # their anno pickles hold float64
        with open(pickles / f"thumos_all_feature_{split}_V3.pickle", "wb") as f:
            pickle.dump(features_pickle, f)
        with open(pickles / f"thumos_{split}_anno.pickle", "wb") as f:
            pickle.dump(anno_pickle, f)
        (own / f"{split}.txt").write_text("\n".join(names[split]) + "\n")
    (root / "trn" / "data_info.json").write_text(json.dumps(info))
    return names, own, trn, suffixed, pickles


def test_every_layout_reads_as_the_own_layout(tmp_path):
    names, own, trn, suffixed, pickles = _write_layouts(tmp_path)
    want = [(s, *data.load_chunk_features(s, [str(own / "rgb"), str(own / "flow")], str(own / "targets")))
            for s in names["val"]]
    info = data.read_data_info(str(tmp_path / "trn" / "data_info.json"), "THUMOS")
    assert info.class_names == tuple(CLASSES) and info.train_sessions == tuple(names["val"])
    sources = {
        "trn": ([str(trn / "rgb"), str(trn / "flow")], str(trn / "target"), "tfvideo"),
        "suffixed": ([str(suffixed / "V3")], str(suffixed / "target"), "suffixed"),
        "pickle": ([str(pickles / "thumos_all_feature_val_V3.pickle")], str(pickles / "thumos_val_anno.pickle"),
                   "pickle"),
    }
    for features, targets, layout in sources.values():
        for given in ("auto", layout):
            got = data.load_online_sessions(info.train_sessions, features, targets, layout=given,
                                            class_names=info.class_names)
            assert [s for s, _, _ in got] == names["val"]
            for (_, x, y), (_, wx, wy) in zip(got, want, strict=True):
                assert x.dtype == y.dtype == np.float32
                np.testing.assert_array_equal(x, wx)
                np.testing.assert_array_equal(y, wy)
    # The modality order is the concatenation order.
    flipped = data.load_online_sessions(names["val"][:1], str(suffixed / "V3"), str(suffixed / "target"),
                                        modalities=("flow", "rgb"))
    np.testing.assert_array_equal(flipped[0][1], np.concatenate([want[0][1][:, 10:], want[0][1][:, :10]], 1))


def test_data_info_of_each_repository(tmp_path):
    path = tmp_path / "data_info.json"
    path.write_text(json.dumps({"THUMOS": {"data_root": "data/THUMOS", "class_names": CLASSES, "num_classes": 6,
                                           "ignore_index": 5, "train_session_set": ["a"], "test_session_set": ["b"]},
                                "TVSeries": {"class_names": ["Background", "Point"], "num_classes": 2,
                                             "ignore_index": -100, "train_session_set": ["c"],
                                             "test_session_set": []}}))
    lstr = data.read_data_info(str(path), "THUMOS")
    assert lstr.class_names == tuple(CLASSES) and lstr.ignore_index == 5 and lstr.test_sessions == ("b",)
    assert data.read_data_info(str(path), "TVSeries").ignore_index is None  # LSTR's -100: nothing ignored
    with pytest.raises(ValueError, match=r"holds datasets \['THUMOS', 'TVSeries'\]: name one"):
        data.read_data_info(str(path))
    with pytest.raises(ValueError, match="has no dataset 'HDD'"):
        data.read_data_info(str(path), "HDD")
    single = tmp_path / "one.json"
    single.write_text(json.dumps({"THUMOS": {"class_index": CLASSES, "train_session_set": ["a"],
                                             "test_session_set": ["b"]}}))
    assert data.read_data_info(str(single)).name == "THUMOS"


def test_layout_errors_are_one_line_naming_file_and_session(tmp_path):
    names, own, trn, suffixed, pickles = _write_layouts(tmp_path)
    val = pickles / "thumos_val_anno.pickle"
    feats = str(pickles / "thumos_all_feature_val_V3.pickle")

    def error(*args, **kwargs):
        with pytest.raises((ValueError, FileNotFoundError)) as e:
            data.load_online_sessions(*args, **kwargs)
        assert "\n" not in str(e.value)
        return str(e.value)

    # A missing session, in each layout.
    assert "session 'absent' is not in " + feats in error(names["val"][:1] + ["absent"], feats, str(val))
    msg = error(["absent"], str(suffixed / "V3"), str(suffixed / "target"))
    assert "session 'absent' has no features in" in msg and "absent_rgb.npy" in msg
    msg = error([names["val"][0], "absent"], [str(trn / "rgb")], str(trn / "target"), where="--train_data=x.txt")
    assert msg.startswith("--train_data=x.txt: ") and "absent" in msg and "rgb" in msg
    # Features and targets of different lengths (by more than the one chunk that is cut off).
    anno = pickle.load(open(val, "rb"))
    session = names["val"][1]
    anno[session]["anno"] = anno[session]["anno"][:-3]
    short = tmp_path / "short_anno.pickle"
    pickle.dump(anno, open(short, "wb"))
    msg = error(names["val"], feats, str(short))
    assert f"targets {short}['{session}'] has" in msg and "chunks but the features of" in msg
    anno[session]["anno"] = np.concatenate([anno[session]["anno"], np.zeros((2, 6))])  # one short: cut off
    pickle.dump(anno, open(short, "wb"))
    assert len(data.load_online_sessions([session], feats, str(short))[0][1]) == len(anno[session]["anno"])
    # A class list that disagrees with the targets.
    msg = error(names["val"], feats, str(val), class_names=CLASSES[:-1])
    assert "have 6 columns but the class list names 5 classes" in msg


def test_pickles_are_read_without_running_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    path = tmp_path / "thumos_all_feature_val_V3.pickle"
    with open(path, "wb") as f:
        pickle.dump({"video_0001": {"rgb": Payload()}}, f)
    with pytest.raises(ValueError, match=r"not a plain pickle of NumPy arrays \(global '(posix|os|nt)\.system'"):
        load_array_pickle(str(path))
    assert not os.path.exists(tmp_path / "ran")
    # Arrays and scalars of every protocol and NumPy's two module names load.
    value = {"a": {"rgb": np.arange(6, dtype=np.float32).reshape(3, 2), "n": np.float64(2.5), "s": [1, "x"]}}
    for protocol in (2, 4, 5):
        with open(path, "wb") as f:
            pickle.dump(value, f, protocol=protocol)
        got = load_array_pickle(str(path))
        np.testing.assert_array_equal(got["a"]["rgb"], value["a"]["rgb"])
        assert got["a"]["n"] == 2.5 and got["a"]["s"] == [1, "x"]
    legacy = pickle.dumps(value["a"]["rgb"], protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(legacy)  # As NumPy 1 wrote them (the authors' pickles).
    np.testing.assert_array_equal(load_array_pickle(str(path)), value["a"]["rgb"])


def _binary(program, *args):
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-m", f"trainers.{program}", "--task=online_detection", *args],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return float(re.search(r"per-frame mAP: ([0-9.]+)", result.stdout).group(1))


@pytest.mark.slow
def test_binaries_train_and_evaluate_every_layout_as_the_own(tmp_path):
    """tfvideo-train (with evaluation) then tfvideo-evaluate in each layout: the same seed and
    the same data give the same per-frame mAP as tfvideo's own layout."""
    names, own, trn, suffixed, pickles = _write_layouts(tmp_path)
    info = str(tmp_path / "trn" / "data_info.json")
    common = ["--model=gru_tiny", "--history=16", "--window_stride=8", "--batch_size=16", "--epochs=3",
              "--learning_rate=3e-3", "--seed=0", "--ambiguous_index=5"]
    layouts = {
        "own": [f"--train_data={own / 'val.txt'}", f"--eval_data={own / 'test.txt'}",
                f"--features_dirs={own / 'rgb'},{own / 'flow'}", f"--targets_dir={own / 'targets'}"],
        "trn": [f"--data_info={info}", "--data_info_dataset=THUMOS", f"--features_dirs={trn / 'rgb'},{trn / 'flow'}",
                f"--targets_dir={trn / 'target'}"],
        "suffixed": [f"--data_info={info}", "--data_info_dataset=THUMOS", "--oad_format=suffixed",
                     f"--features_dirs={suffixed / 'V3'}", f"--targets_dir={suffixed / 'target'}"],
        "pickle": [f"--data_info={info}", "--data_info_dataset=THUMOS",
                   f"--features_dirs={pickles / 'thumos_all_feature_val_V3.pickle'}",
                   f"--targets_dir={pickles / 'thumos_val_anno.pickle'}",
                   f"--eval_features_dirs={pickles / 'thumos_all_feature_test_V3.pickle'}",
                   f"--eval_targets_dir={pickles / 'thumos_test_anno.pickle'}"],
    }
    trained, evaluated = {}, {}
    for name, args in layouts.items():
        model_dir = str(tmp_path / f"run_{name}")
        trained[name] = _binary("train", *common, f"--model_dir={model_dir}", *args)
        evaluated[name] = _binary("evaluate", f"--model_dir={model_dir}")
    print(f"per-frame mAP, train+eval: {trained}; tfvideo-evaluate: {evaluated}")
    assert trained["own"] > 0.3  # it learned something: the comparison is not between constants
    for name in layouts:
        assert trained[name] == pytest.approx(trained["own"], abs=1e-6), (name, trained)
        assert evaluated[name] == pytest.approx(trained["own"], abs=1e-6), (name, evaluated)
    with open(tmp_path / "run_pickle" / "config.json") as f:
        saved = json.load(f)
    assert saved["labels"] == CLASSES and saved["train"]["online"]["data_info_dataset"] == "THUMOS"


def test_trainer_errors_name_file_and_session(tmp_path, capsys):
    """tfvideo-train's online task (in process): exit 2 and one line, nothing trained."""
    import types

    from trainers import _online

    class Flags(types.SimpleNamespace):
        def __getitem__(self, name):
            return types.SimpleNamespace(present=hasattr(self, name))

    names, own, trn, suffixed, pickles = _write_layouts(tmp_path)
    info = json.loads((tmp_path / "trn" / "data_info.json").read_text())
    info["THUMOS"]["train_session_set"].append("video_val_9999")
    (tmp_path / "bad.json").write_text(json.dumps(info))
    base = dict(model="gru_tiny", detector_kwargs="{}", oad_format="auto", oad_modalities=["rgb", "flow"],
                data_info_dataset="THUMOS", features_dirs=[str(pickles / "thumos_all_feature_val_V3.pickle")],
                targets_dir=str(pickles / "thumos_val_anno.pickle"))
    cases = [
        (dict(data_info=str(tmp_path / "bad.json")),
         "session 'video_val_9999' is not in " + str(pickles / "thumos_all_feature_val_V3.pickle")),
        (dict(data_info=str(tmp_path / "trn" / "data_info.json"), data_info_dataset="TVSeries"),
         "(TVSeries train_session_set) names no sessions"),
        (dict(data_info=str(tmp_path / "trn" / "data_info.json"), features_dirs=[str(suffixed / "V3")],
              targets_dir=str(suffixed / "target"), oad_modalities=["rgb", "audio"]),
         f"has no features: {suffixed / 'V3' / names['val'][0]}_audio.npy does not exist"),
    ]
    for overrides, expected in cases:
        model_dir = tmp_path / f"run{len(expected)}"
        assert _online.train_main(Flags(**{**base, **overrides, "model_dir": str(model_dir)})) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("tfvideo-train: error: --data_info=") and expected in err, err
        assert not os.path.exists(model_dir / "model.keras")
