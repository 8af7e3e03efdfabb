"""tfvideo-models (`python -m trainers.models`) and `tfvideo.models.describe_preset` (issue 25)."""

import json
import os
import subprocess
import sys

import pytest

from tfvideo import models

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args):
    env = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "trainers.models", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_listing_names_every_preset_with_its_clip_and_formats():
    run = _run()
    assert run.returncode == 0, run.stderr
    rows = {line.split()[0]: line for line in run.stdout.splitlines()[1:] if line.strip()}
    for name in models.list_presets():
        assert name in rows, name
    assert "dense 32 frames, every 2, 224x224 crop" in rows["i3d_r50"]
    assert "8 segments x 5 frames" in rows["tdn_r50"] and "tdn,torchvision" in rows["tdn_r50"]
    assert rows["tsn_r50_flow"].split()[-2] == "flow"
    assert "kinetics_i3d" in rows["i3d_inception_v1"]
    assert "params" not in run.stdout.split("\n", 1)[1].split("One preset")[0]  # Counts are opt-in.


def test_one_preset_in_detail_counts_parameters_and_flops():
    run = _run("--model=tsm_tiny", "--json")
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    model = models.get("tsm_tiny", num_classes=400)
    model.build((None, 8, 224, 224, 3))
    assert record["params"] == model.count_params()
    assert record["clip"] == {"sampling": "8 segments", "frames": 8, "crop_size": 224, "resize_short": 256,
                              "modality": "rgb"}
    assert record["checkpoint_formats"] == []
    # Each shift moves channels only; its FLOPs are the TSN's: the same backbone's count.
    tsn = models.describe_preset("tsn_tiny", flops=True)
    assert record["gflops"] == pytest.approx(tsn["gflops"], rel=0.02) and record["gflops"] > 0.1


def test_flops_are_the_published_multiply_adds_times_two():
    record = models.describe_preset("tsn_r18", flops=True, num_classes=1000)
    # ResNet-18 at 224x224: 1.82 GMACs per frame (He et al. 2016: 1.8e9 FLOPs, i.e. multiply-adds).
    assert record["gflops"] / 2 / 8 == pytest.approx(1.82, rel=0.03)


def test_bad_model_is_one_line_exit_2():
    run = _run("--model=tsm_nope")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("tfvideo-models: error: --model='tsm_nope' is not a model")
