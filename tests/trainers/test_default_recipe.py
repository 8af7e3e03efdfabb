"""The short command with default flags: --recipe=auto, the derived flip label map, the reports."""

import json
import os
import re

import pytest
import trainers_testlib as lib

pytestmark = pytest.mark.slow


def test_short_command_resolves_auto_recipe_flip_map_and_writes_reports(moving_shapes, tmp_path):
    model_dir = str(tmp_path / "run")
    proc = lib.run("train", ["--model=tsm_tiny", f"--train_data={moving_shapes['train']}",
                             f"--label_map={moving_shapes['label_map']}", f"--model_dir={model_dir}", "--epochs=1",
                             "--verbose=0"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ("flip label map (derived from the label names): move_left <-> move_right; 2 classes map to themselves"
            in proc.stdout)
    # One readable block of resolved settings in the log, and the same values in config.json.
    block = proc.stderr[proc.stderr.index("Resolved training settings"):]
    rows = dict(re.findall(r"^  (\w+) +(\S+) ", block, re.M))
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    train, pre = config["train"], config["clip"]["preprocess"]
    assert (train["recipe"], train["optimizer"]["name"], train["schedule"]["name"]) == ("auto", "adam", "cosine")
    assert train["recipe_basis"].startswith("tsm_tiny, from scratch, frames' shorter side 32 px")
    assert rows["optimizer"] == "adam" and float(rows["learning_rate"]) == train["optimizer"]["learning_rate"] == 0.002
    # 32x32 videos are not upscaled: crop 32 of 32 (the preset's 56 of 64 needs bigger frames).
    assert (pre["crop_size"], pre["resize_short"]) == (32, 32) == (int(rows["crop_size"]), int(rows["resize_short"]))
    assert pre["train_crop"] == rows["train_crop"] == "center"  # From scratch: no corner crops.
    assert pre["flip_label_map"] == [1, 0, 2, 3] and rows["flip_label_map"] == "1,0,2,3"
    assert train["flip_label_map_source"] == "derived from the label names"
    # The training report links pictures that exist; metrics.json holds the epoch's figures.
    assert f"report: {model_dir}/report.md" in proc.stdout.splitlines()
    text = open(os.path.join(model_dir, "report.md")).read()
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert links == ["report/loss.png", "report/accuracy.png", "report/learning_rate.png"]
    assert all(os.path.getsize(os.path.join(model_dir, link)) > 5000 for link in links)
    with open(os.path.join(model_dir, "metrics.json")) as f:
        epochs = json.load(f)["epochs"]
    assert [e["epoch"] for e in epochs] == [1] and epochs[0]["steps"] == 2  # 16 videos / batch 8.
    # tfvideo-evaluate adds the evaluation to the report.
    proc = lib.run("evaluate", [f"--model_dir={model_dir}", f"--eval_data={moving_shapes['val']}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "per-class accuracy (worst first):" in proc.stdout
    text = open(os.path.join(model_dir, "report.md")).read()
    assert "![Confusion matrix](eval/confusion_matrix.png)" in text
    assert os.path.exists(os.path.join(model_dir, "eval", "confusion_matrix.png"))


def test_direction_word_without_partner_is_refused_before_any_work(moving_shapes, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("move_left\njump\nmove_up\nmove_down\n")
    model_dir = tmp_path / "run"
    args = ["--model=tsm_tiny", f"--train_data={moving_shapes['train']}", f"--label_map={labels}",
            f"--model_dir={model_dir}", "--epochs=1"]
    proc = lib.run("train", args)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"tfvideo-train: error: --label_map={labels}: class 0 'move_left' has the horizontal direction word "
                    "'left' but no class reads 'move right' (its mirror image); horizontal flips would mislabel it: "
                    "give --flip_label_map (class id of each class's mirror image) or --noflip")
    assert not model_dir.exists()
    # An explicit map wins over the derivation; --noflip asks nothing (build_config only, one process).
    script = ("import json, sys\nfrom absl import flags\nfrom trainers import train\nout = []\n"
              "for extra in json.loads(sys.argv[1]):\n"
              "    flags.FLAGS.unparse_flags()\n    flags.FLAGS(['t'] + sys.argv[2:] + extra)\n"
              "    c = train.build_config()\n"
              "    out.append([c.clip_spec.preprocess.flip_label_map, c.train.flip_label_map_source])\n"
              "print('MAPS' + json.dumps(out))")
    proc = lib.subprocess_python(script, [json.dumps([["--flip_label_map=0,1,2,3"], ["--noflip"]]), *args])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.split("MAPS", 1)[1]) == [[[0, 1, 2, 3], "flag"], [None, "none"]]
    assert not model_dir.exists()
