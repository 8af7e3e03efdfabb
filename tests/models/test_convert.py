"""Checkpoint conversion: torchvision and TSM-authors formats against independent torch
references (tests/models/torch_references.py), the framework's errors, the binary, and
fine-tuning init from a converted file."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfvideo import models

torch = pytest.importorskip("torch")
refs = pytest.importorskip("tests.models.torch_references")

RNG = np.random.default_rng(12)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _assert_logits_close(got, want, rel=1e-4):
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max())
    print(f"parity: max |diff| {err:.3g}, scale {scale:.3g}, relative {err / scale:.2g}")
    assert err <= rel * scale, f"max |diff| {err:.3g} > {rel} x logit scale {scale:.3g}"
    return err / scale


def _clip(b, t, size):
    return RNG.normal(0, 1, (b, t, size, size, 3)).astype("float32")


def _save_torchvision(tmp_path, depth=50, num_classes=1000, width=64, seed=0):
    torch.manual_seed(seed)
    net = refs.randomize_batchnorm(refs.ResNet(depth, num_classes, width), seed).eval()
    path = str(tmp_path / f"resnet{depth}.pth")
    torch.save(net.state_dict(), path)
    return net, path


def test_torchvision_resnet50_features_and_logits_match(tmp_path):
    """ImageNet init (issue 12 item 3): torchvision ResNet-50 -> TSN-R50 with 1 segment; pooled
    features within 1e-4 (relative to their scale) and the 1000-class logits too."""
    net, path = _save_torchvision(tmp_path)
    model, report = models.convert_checkpoint("torchvision", path, "tsn_r50", num_classes=1000, num_segments=1)
    assert not report.missing and not report.unused and len(report.loaded) == 265 + 2
    frame = _clip(2, 1, 64)
    with torch.no_grad():
        x = refs.to_torch_clip(frame)[:, 0]
        want_feat, want = net.features(x).numpy(), net(x).numpy()
    got_feat = _np(model.pool(model.backbone(frame[:, 0])))
    _assert_logits_close(got_feat, want_feat)
    _assert_logits_close(_np(model(frame)), want)


def test_torchvision_resnet101_into_i3d_inflates(tmp_path):
    """A boring video through the inflated I3D-R50... here ResNet-101 as TSN (depth coverage)
    and a boring clip through an I3D from the same 2D weights gives the 2D features."""
    net, path = _save_torchvision(tmp_path, depth=101, num_classes=10, width=16, seed=1)
    model, _ = models.convert_checkpoint("torchvision", path, "tsn_r101", num_classes=10, num_segments=1, width=16)
    frame = _clip(1, 1, 64)
    with torch.no_grad():
        want = net(refs.to_torch_clip(frame)[:, 0]).numpy()
    _assert_logits_close(_np(model(frame)), want)


def test_tsm_authors_r50_and_r101_every_other_block(tmp_path):
    """The TSM authors' checkpoints: R-50 shifts every block, R-101 every other block."""
    for depth, width in ((50, 16), (101, 8)):
        torch.manual_seed(depth)
        net = refs.randomize_batchnorm(refs.TSMAuthors(5, 4, depth, width), depth).eval()
        state = {f"module.{k}": v for k, v in net.state_dict().items()}
        path = str(tmp_path / f"TSM_r{depth}.pth")
        torch.save({"epoch": 50, "arch": f"resnet{depth}", "state_dict": state, "best_prec1": 70.0}, path)
        model, report = models.convert_checkpoint("tsm", path, f"tsm_r{depth}", num_classes=5, num_segments=4,
                                                  width=width)
        assert not report.missing and not report.unused
        clip = _clip(2, 4, 64)
        with torch.no_grad():
            want = net(refs.to_torch_clip(clip)).numpy()
        _assert_logits_close(_np(model(clip)), want)


def test_parameter_count_tsm_r50_is_the_references():
    """TSM-R50 for 400 classes: the reference's parameter count, exactly (24.3M published)."""
    ref = refs.TSMAuthors(400, 8, 50)
    want = refs.parameter_count(ref)
    assert want == 24_327_632
    model = models.get("tsm_r50", 400)
    model.build((None, 8, 224, 224, 3))
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == want


def test_bad_checkpoints_one_line_errors(tmp_path):
    net, path = _save_torchvision(tmp_path, depth=18, num_classes=4, width=8)
    # Another depth: missing variables named.
    with pytest.raises(models.CheckpointError) as e:
        models.convert_checkpoint("torchvision", path, "tsn_r50", num_classes=4, width=8)
    assert path in str(e.value) and "\n" not in str(e.value)
    # Another width: the first mismatched key and both shapes.
    _, path50 = _save_torchvision(tmp_path, depth=50, num_classes=4, width=8)
    with pytest.raises(ValueError, match=r"key 'conv1.weight' \[8, 3, 7, 7\] does not fit conv1_conv/kernel "
                                         r"\[7, 7, 3, 16\]"):
        models.convert_checkpoint("torchvision", path50, "tsn_r50", num_classes=4, width=16)
    # Another class count: strict by default, allowed for the head.
    with pytest.raises(ValueError, match="fc.weight.*allow_missing=head"):
        models.convert_checkpoint("torchvision", path50, "tsn_r50", num_classes=7, width=8)
    model, report = models.convert_checkpoint("torchvision", path50, "tsn_r50", num_classes=7, width=8,
                                              allow_missing=["head"])
    assert report.unused == ["fc.bias", "fc.weight"] and len(report.missing) == 2
    # Truncated and non-checkpoint files: one line naming the file.
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(open(path50, "rb").read()[:5000])
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    for bad in (truncated, text, tmp_path / "absent.pth"):
        with pytest.raises(ValueError) as e:
            models.convert_checkpoint("torchvision", str(bad), "tsn_r50", num_classes=4, width=8)
        assert str(bad) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="Unknown checkpoint format 'caffe'"):
        models.convert_checkpoint("caffe", path50, "tsn_r50", num_classes=4)


def test_register_checkpoint_format_contract(tmp_path):
    """A user format: reader + mapper keyed by variable path; unused keys reported."""
    def reader(path):
        return dict(np.load(path))

    def mapper(state, model):
        return {v.path: state[v.path.replace("/", ".")] for v in model.weights if "seed" not in v.path}

    model = models.get("tsn_tiny", 3, num_segments=2)
    model.build((None, 2, 32, 32, 3))
    arrays = {v.path.replace("/", "."): RNG.normal(size=v.shape).astype("float32") for v in model.weights
              if "seed" not in v.path}
    arrays["extra.thing"] = np.zeros(3, "float32")
    path = str(tmp_path / "mine.npz")
    np.savez(path, **arrays)
    name = f"npz_test_{os.getpid()}"
    models.register_checkpoint_format(name, reader, mapper)
    assert name in models.list_checkpoint_formats()
    with pytest.raises(ValueError, match="1 checkpoint keys unused \\(first: 'extra.thing'\\)"):
        models.convert_checkpoint(name, path, model)
    del arrays["extra.thing"]
    np.savez(path, **arrays)
    _, report = models.convert_checkpoint(name, path, model)
    np.testing.assert_array_equal(_np(model.classifier.kernel), arrays[model.classifier.kernel.path.replace("/", ".")])
    assert not report.unused and not report.missing


def _run_convert(*args):
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "trainers.convert", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.slow
def test_convert_binary_writes_a_loadable_keras_file_and_train_inits_from_it(tmp_path):
    torch.manual_seed(3)
    net = refs.randomize_batchnorm(refs.TSMAuthors(4, 2, 50, 8), 3).eval()
    path = str(tmp_path / "tsm.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    out = str(tmp_path / "tsm.keras")
    # A mismatch: exit 2, one line, nothing written.
    bad = _run_convert("--source=tsm", f"--checkpoint={path}", "--model=tsm_r50", "--num_classes=4",
                       "--num_segments=2", f"--output={out}")
    assert bad.returncode == 2 and "conv1.weight" in bad.stderr and not os.path.exists(out)
    result = _run_convert("--source=tsm", f"--checkpoint={path}", "--model=tsm_r50", "--num_classes=4",
                          "--num_segments=2", "--width=8", f"--output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = keras.saving.load_model(out)
    clip = _clip(1, 2, 64)
    with torch.no_grad():
        want = net(refs.to_torch_clip(clip)).numpy()
    _assert_logits_close(_np(loaded(clip)), want)
    # Fine-tuning init: another class count re-initialises the classifier only.
    target = models.get("tsm_r50", 3, num_segments=2, width=8)
    target.build((None, 2, 64, 64, 3))
    line = models.init_from_converted(target, out)
    assert "re-initialised classifier" in line and "conv1_conv" in line
    np.testing.assert_array_equal(_np(target.backbone.get_layer("conv4_block2_2_conv").kernel),
                                  _np(loaded.backbone.get_layer("conv4_block2_2_conv").kernel))


def test_load_imagenet_weights_takes_torchvision_weights(tmp_path):
    """The ImageNet entry point: a torchvision state_dict into TSM's backbone (torchvision's
    features on each frame once the shift is taken out: TSN shares the backbone weights) and
    into I3D-R50 by inflation."""
    net, path = _save_torchvision(tmp_path, depth=50, num_classes=1000, width=16, seed=5)
    tsn = models.TSN(4, num_segments=1, backbone="resnet50", width=16)
    tsn.build((None, 1, 64, 64, 3))
    assert models.load_imagenet_weights(tsn, path) == 53 * 2
    frame = _clip(1, 1, 64)
    with torch.no_grad():
        want = net.features(refs.to_torch_clip(frame)[:, 0]).numpy()
    _assert_logits_close(_np(tsn.pool(tsn.backbone(frame[:, 0]))), want)
    i3d = models.I3D(4, num_frames=8, backbone="resnet50", width=16)
    i3d.build((None, 8, 64, 64, 3))
    models.load_imagenet_weights(i3d, path)
    stem = net.conv1.weight.detach().numpy().transpose(2, 3, 1, 0)
    np.testing.assert_allclose(_np(i3d.backbone.get_layer("conv1_conv").kernel), np.stack([stem / 5] * 5), rtol=1e-6)
    with pytest.raises(ValueError, match="torchvision ImageNet state_dict"):
        models.load_imagenet_weights(tsn, "imagenet")


@pytest.mark.slow
def test_train_init_checkpoint_from_a_converted_file(moving_shapes, tmp_path):
    """tfvideo-train --init_checkpoint=converted.keras: backbone loaded, 1000-class head re-initialised
    for the 4 classes, and the log says so; a missing file is a flag error."""
    net, path = _save_torchvision(tmp_path, depth=10, num_classes=1000, width=16, seed=9)
    model, _ = models.convert_checkpoint("torchvision", path, "tsm_tiny", num_classes=1000, num_segments=4)
    converted = str(tmp_path / "tiny.keras")
    models.save_converted(model, converted)
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "CUDA_VISIBLE_DEVICES": ""}
    common = [sys.executable, "-m", "trainers.train", "--model=tsm_tiny", "--num_segments=4", "--crop_size=32",
              "--resize_short=32", "--batch_size=4", "--train_steps=1", "--verbose=0",
              f"--train_data={moving_shapes['train']}", f"--label_map={moving_shapes['label_map']}"]
    run = subprocess.run(common + [f"--model_dir={tmp_path / 'run'}", f"--init_checkpoint={converted}"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert re.search(r"init_checkpoint=.*tiny.keras: loaded \d+ layers \(conv1_conv .*re-initialised classifier",
                     run.stderr), run.stderr[-2000:]
    bad = subprocess.run(common + [f"--model_dir={tmp_path / 'bad'}", f"--init_checkpoint={tmp_path / 'absent.keras'}"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 2 and "--init_checkpoint=" in bad.stderr and "no such file" in bad.stderr


def test_checkpoint_metadata_objects_load_inert(tmp_path):
    """Training metadata beside the weights (NumPy scalars and arrays, argparse args) loads as
    inert placeholders and the conversion goes on; payloads are refused
    (tests/models/test_checkpoint_pickle.py)."""
    import argparse

    net, _ = _save_torchvision(tmp_path, depth=18, num_classes=4, width=8)
    path = str(tmp_path / "with_meta.pth")
    torch.save({"meta": {"seed": np.int64(3), "history": np.arange(3.0), "args": argparse.Namespace(lr=0.1)},
                "state_dict": net.state_dict()}, path)
    model, report = models.convert_checkpoint("torchvision", path, "tsn_r18", num_classes=4, num_segments=1,
                                              width=8)
    assert not report.unused
    frame = _clip(1, 1, 32)
    with torch.no_grad():
        want = net(refs.to_torch_clip(frame)[:, 0]).numpy()
    _assert_logits_close(_np(model(frame)), want)
