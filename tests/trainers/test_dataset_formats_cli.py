"""Every published layout trains and evaluates through the binaries (tests/data/dataset_layouts.py
builds each miniature copy): classes come from the dataset's own class file, the test split's
labels reach predictions.csv, and prepare stores frame folders / lists missing clips."""

import csv
import json
import os
import sys

import pytest
import trainers_testlib as lib

sys.path.insert(0, os.path.join(lib.REPO, "tests", "data"))
import dataset_layouts as layouts  # noqa: E402

pytestmark = pytest.mark.slow

# Two steps of a 2-segment 32 px TSM-tiny: the point is the data path, not learning.
STEPS = ["--model=tsm_tiny", "--num_segments=2", "--crop_size=32", "--resize_short=32", "--batch_size=2",
         "--dropout=0", "--verbose=0", "--recipe=none", "--train_steps=2", "--checkpoint_every_steps=0",
         "--eval_batches=1"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    return {name: build(str(root / name)) for name, build in layouts.BUILDERS.items()}


def _root_flags(spec):
    return [f"--video_root={spec['video_root']}"] if spec["video_root"] else []


def _predictions(path):
    with open(path) as f:
        return {row["media_id"]: int(row["label"]) for row in csv.DictReader(f)}


# tfvideo-evaluate runs on four of them (each run starts TensorFlow: ~20-40 s); every run
# evaluates --eval_data after its epoch through the same input path.
EVALUATED = {"ucf101": "given", "kinetics": "given", "hmdb51": "the run's", "jester": "the run's"}


@pytest.mark.parametrize("name", sorted(layouts.BUILDERS))
def test_layout_trains_and_evaluates(built, name, tmp_path):
    spec = built[name]
    model_dir = str(tmp_path / "run")
    fmt = ["--format=mmaction"] if name == "mmaction" else []  # The others are detected.
    classes = [] if spec["classes"] else ["--num_classes=2"]
    proc = lib.run("train", STEPS + fmt + classes + _root_flags(spec) + [
        f"--train_data={spec['train']}", f"--eval_data={spec['test']}", f"--model_dir={model_dir}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "val_accuracy=" in proc.stdout
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    assert config["train"]["train_data"].startswith(f"{name}:")
    assert config["train"]["eval_data"].startswith(f"{name}:")
    if spec["classes"]:
        assert config["labels"] == spec["classes"]
    if name not in EVALUATED:
        return
    # --eval_data given to evaluate is detected again and keeps the run's --video_root.
    given = [f"--eval_data={spec['test']}"] if EVALUATED[name] == "given" else []
    proc = lib.run("evaluate", [f"--model_dir={model_dir}", "--batch_size=2"] + given)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _predictions(os.path.join(model_dir, "eval", "predictions.csv")) == spec["expected_test"]


def test_prepare_stores_frame_folders_and_lists_missing_clips(built, tmp_path):
    spec = built["jester"]
    out = str(tmp_path / "records")
    proc = lib.run("prepare_data", [f"--annotations={spec['train']}", f"--video_root={spec['video_root']}",
                                    f"--output_dir={out}", "--name=train", "--resize_short=0", "--workers=1",
                                    "--noprogress"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train: 4 videos in 1 shards" in proc.stdout
    model_dir = str(tmp_path / "run")
    proc = lib.run("train", STEPS + ["--num_classes=2", f"--train_data={out}/train-*.tfrecord",
                                     f"--model_dir={model_dir}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    kinetics = built["kinetics"]
    proc = lib.run("prepare_data", [f"--annotations={kinetics['train']}", f"--video_root={kinetics['video_root']}",
                                    f"--output_dir={out}", "--name=k", "--resize_short=0", "--workers=1",
                                    "--noprogress"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 listed clips missing" in proc.stdout and "gone_video1_000005_000015.mp4" in proc.stdout
    with open(os.path.join(out, "k-report.json")) as f:
        report = json.load(f)
    assert report["written"] == 4 and report["missing"][0]["line"].endswith("train.csv:6")


def test_a_line_of_another_layout_is_a_one_line_error(built, tmp_path):
    spec = built["rawframes"]
    proc = lib.run("train", STEPS + ["--num_classes=2", "--format=list", f"--train_data={spec['train']}",
                                     f"--model_dir={tmp_path / 'b'}"])
    assert proc.returncode == 2
    assert "mini_train_list_rawframes.txt:1:" in proc.stderr and "--format=rawframes" in proc.stderr
    assert "Traceback" not in proc.stderr
