"""TDN is the authors' network: exact parameter count and logits parity with an independent
PyTorch forward pass (tests/models/reference_tdn.py) through the `tdn` checkpoint mapper."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfvideo import layers as tvl
from tfvideo import models
from tfvideo.models import _convert_tdn


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_tdn_r50_parameter_count_is_the_authors():
    # The authors' TDN-R50 for 400 classes (MCG-NJU/TDN ops/tdn_net.py + ops/models.py):
    # sum(p.numel() for p in model.parameters()) = 24,883,120, of which 9,472 are
    # `conv1_temp` (a stem copy registered but unused by the forward pass). Without it:
    model = models.TDN(400, num_segments=8, frames_per_segment=5)
    model.build((None, 40, 224, 224, 3))
    assert _trainable(model) == 24_883_120 - 9_472


def test_tdn_module_placement():
    model = models.TDN(4, num_segments=8)
    names = [layer.name for layer in model.backbone.layers]
    ltdm = [n for n in names if n.endswith("_ltdm")]
    shifts = [n for n in names if n.endswith("_shift")]
    # Every block of stages 3-5 (4 + 6 + 3), none in stage 2.
    assert len(ltdm) == len(shifts) == 13 and not any(n.startswith("conv2_") for n in ltdm)
    assert {n for n in names if "fusion" in n} == {"stdm_fusion_stem", "stdm_fusion_conv2"}
    assert all(layer.reduction == 16 for layer in model.backbone.layers if layer.name in ltdm)


def _reference_and_checkpoint(torch, reference_tdn, num_segments, revision, path):
    torch.manual_seed(0)
    ref = reference_tdn.randomize_batch_norm(reference_tdn.TDN(6, num_segments, 5, revision=revision)).eval()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, reference_tdn.Shift):  # learned shift kernels away from their one-hot init
                m.conv.weight.add_(0.2 * torch.randn_like(m.conv.weight))
            if isinstance(m, reference_tdn.LongTermTDM):  # gates and full-scale branches that matter
                m.conv3.weight.mul_(4.0)
                m.conv3_smallscale4.weight.mul_(4.0)
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, path)
    return ref


def _converted_logits(path, num_segments, clip, **revision):
    model = models.TDN(6, num_segments=num_segments, frames_per_segment=5, **revision)
    model.build(clip.shape)
    mapped = _convert_tdn.map_tdn(_convert_tdn.read_tdn(path), model)
    assert set(mapped) == {v.path for v in model.weights}
    for v in model.weights:
        v.assign(mapped[v.path])
    return model, keras.ops.convert_to_numpy(model(clip, training=False))


# The default follows the authors' current code (MCG-NJU/TDN bcf28d9 onwards); revision="2020"
# their December 2020 release (c5c5b10), whose parity is checked in the next test. See
# tests/models/reference_tdn.py.
@pytest.mark.parametrize("num_segments,size,revision", [(8, 80, None), (4, 64, None)])
def test_tdn_logits_match_the_reference(num_segments, size, revision, tmp_path):
    torch = pytest.importorskip("torch")
    import reference_tdn

    path = str(tmp_path / "tdn.pth.tar")
    ref = _reference_and_checkpoint(torch, reference_tdn, num_segments, revision or "2021", path)
    clip = np.random.default_rng(0).normal(size=(2, num_segments * 5, size, size, 3)).astype("float32")
    model, got = _converted_logits(path, num_segments, clip, **({"revision": revision} if revision else {}))
    assert model.tdn_revision == (revision or "2021")
    assert model.get_config()["tdn_revision"] == (revision or "2021")
    with torch.no_grad():
        want = ref(torch.from_numpy(clip.transpose(0, 1, 4, 2, 3).copy())).numpy()
    scale = np.abs(want).max()
    assert scale > 1e-2
    np.testing.assert_allclose(got, want, atol=1e-4 * scale)


def test_tdn_revisions_differ_and_the_2020_checkpoint_is_named(tmp_path, caplog):
    """The two revisions are different networks on the same weights (so the parity cases above
    can fail), and a checkpoint only the 2020 code writes (`conv1_temp1.*` keys) put into a
    2021 model draws a warning naming the option."""
    torch = pytest.importorskip("torch")
    import reference_tdn

    path = str(tmp_path / "tdn2020.pth.tar")
    ref = _reference_and_checkpoint(torch, reference_tdn, 4, "2020", path)
    assert "base_model.conv1_temp1.weight" in ref.state_dict()
    assert "base_model.conv1_temp1.weight" not in reference_tdn.TDN(6, 4, 5).state_dict()
    clip = np.random.default_rng(0).normal(size=(1, 20, 64, 64, 3)).astype("float32")
    with caplog.at_level("WARNING"):
        _, as_2021 = _converted_logits(path, 4, clip)
    assert "--tdn_revision=2020" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        _, as_2020 = _converted_logits(path, 4, clip, revision="c5c5b10")  # by the authors' commit
    assert "tdn_revision" not in caplog.text
    with torch.no_grad():
        want = ref(torch.from_numpy(clip.transpose(0, 1, 4, 2, 3).copy())).numpy()
    scale = np.abs(want).max()
    np.testing.assert_allclose(as_2020, want, atol=1e-4 * scale)
    assert np.abs(as_2021 - want).max() > 2e-3 * scale  # 20x the parity tolerance (measured 8e-3)


def test_tdn_revision_is_recorded_and_validated():
    model = models.get("tdn_tiny", 3, revision="2020")
    config = model.get_config()
    assert config["tdn_revision"] == "2020"
    assert models.TDN.from_config(config).tdn_revision == "2020"
    assert models.TDN.from_config(models.get("tdn_tiny", 3).get_config()).tdn_revision == "2021"
    # A config saved before the option existed was built as the 2020 code.
    legacy = {k: v for k, v in config.items() if k != "tdn_revision"}
    assert models.TDN.from_config(legacy).tdn_revision == "2020"
    assert models.TDN(3, revision="bcf28d9").tdn_revision == "2021"
    layer = tvl.TemporalDifference(4, revision="2020")
    assert layer.get_config()["revision"] == "2020"
    assert tvl.TemporalDifference.from_config({"num_segments": 4}).revision == "2020"
    with pytest.raises(ValueError, match="revision='2019'"):
        models.TDN(3, revision="2019")
    with pytest.raises(ValueError, match="applies to TDN"):
        models.TSM(3, tdn_revision="2020")


def test_tdn_imagenet_init_is_the_authors(tmp_path):
    """ImageNet init of TDN (torchvision ResNet-50 state_dict) does what the authors' `tdn_net`
    does: layer1's weights in both first-stage copies, conv1's RGB-averaged kernel in the
    difference stem. Parts the authors leave at their own random init (conv biases, L-TDM,
    shift, the stem's BN) are first copied from the reference, so the features must agree."""
    torch = pytest.importorskip("torch")
    import reference_tdn

    from tests.models import torch_references as refs

    def imagenet_file(width):
        torch.manual_seed(3)
        net = refs.randomize_batchnorm(refs.ResNet(50, 1000, width), 3).eval()
        path = str(tmp_path / f"resnet50-w{width}.pth")
        torch.save(net.state_dict(), path)
        return net, path

    # A fresh model (width 16 to be quick): the second copy equals the first, the difference
    # stem is conv1's RGB mean.
    imagenet, path = imagenet_file(16)
    fresh = models.TDN(6, num_segments=4, frames_per_segment=5, width=16)
    fresh.build((None, 20, 32, 32, 3))
    assert models.load_imagenet_weights(fresh, path) == 53 * 2 + 10 * 2 + 1
    copies = [layer for layer in fresh.backbone.layers if layer.name.startswith("stdm_conv2_") and layer.weights]
    assert len(copies) == 20
    for layer in copies:
        first = fresh.backbone.get_layer(layer.name[len("stdm_"):])
        for mine, theirs in zip(layer.weights, first.weights, strict=True):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs))
    block = imagenet.layer1[2].conv3.weight.detach().numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(fresh.backbone.get_layer("stdm_conv2_block3_3_conv").kernel), block)
    stem = keras.ops.convert_to_numpy(fresh.backbone.get_layer("stdm").conv.kernel)  # [7, 7, 12, 16]
    rgb_mean = imagenet.conv1.weight.detach().numpy().mean(axis=1).transpose(1, 2, 0)  # [7, 7, 16]
    assert stem.shape == (7, 7, 12, 16)
    np.testing.assert_allclose(stem, np.repeat(rgb_mean[:, :, None], 12, axis=2), rtol=1e-6, atol=1e-7)

    # Features against the reference (ResNet-50 at full width) started the authors' way.
    imagenet, path = imagenet_file(64)
    ref = reference_tdn.randomize_batch_norm(reference_tdn.TDN(6, 4, 5)).eval()
    own_init = {f"module.{k}": v.numpy().copy() for k, v in ref.state_dict().items()}
    reference_tdn.load_imagenet(ref, imagenet.state_dict())
    model = models.TDN(6, num_segments=4, frames_per_segment=5)
    clip = np.random.default_rng(1).normal(size=(1, 20, 64, 64, 3)).astype("float32")
    model.build(clip.shape)
    mapped = _convert_tdn.map_tdn(own_init, model)
    for v in model.weights:
        v.assign(mapped[v.path])

    def features(m):
        return keras.ops.convert_to_numpy(keras.ops.mean(m.backbone(m._segment_frames(clip), training=False), (1, 2)))

    with torch.no_grad():
        frames = torch.from_numpy(clip.transpose(0, 1, 4, 2, 3).reshape(4, 15, 64, 64).copy())
        want = ref.base_model(frames).numpy()  # [segments, 2048]: the head is not ImageNet's.
    scale = np.abs(want).max()
    assert scale > 1e-2
    assert np.abs(features(model) - want).max() > 1e-2 * scale  # Before the ImageNet init: the check can fail.
    models.load_imagenet_weights(model, path)
    np.testing.assert_allclose(features(model), want, atol=1e-4 * scale)


def test_tdn_mapper_names_a_foreign_key():
    model = models.TDN(3, num_segments=8)
    model.build((None, 40, 64, 64, 3))
    with pytest.raises(ValueError, match="layer9_bak"):
        _convert_tdn.map_tdn({"module.base_model.layer9_bak.0.conv1.weight": np.zeros((1, 1, 1, 1))}, model)
    w = np.zeros((8, 3, 7, 7), "float32")
    with pytest.raises(ValueError, match=r"'module.base_model.conv1.weight' \(8, 3, 7, 7\) does not fit .*conv1_conv/kernel' \(7, 7, 3, 64\)"):
        _convert_tdn.map_tdn({"module.base_model.conv1.weight": w}, model)


def test_torch_readers_name_a_file_that_is_not_a_checkpoint(tmp_path):
    pytest.importorskip("torch")
    bogus = tmp_path / "truncated.pth.tar"
    bogus.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="truncated.pth.tar: not a readable PyTorch checkpoint"):
        _convert_tdn.read_tdn(str(bogus))


def _run_convert(*args):
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "trainers.convert", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.slow
def test_convert_binary_takes_the_tdn_revision(tmp_path):
    """`tfvideo-convert --tdn_revision=2020` builds the 2020 network, records it in the saved
    config and gives the 2020 reference's logits; the flag is refused for another model."""
    torch = pytest.importorskip("torch")
    import reference_tdn

    path = str(tmp_path / "tdn2020.pth.tar")
    ref = _reference_and_checkpoint(torch, reference_tdn, 4, "2020", path)
    out = str(tmp_path / "tdn.keras")
    common = ["--source=tdn", f"--checkpoint={path}", "--num_classes=6", "--num_segments=4", f"--output={out}"]
    bad = _run_convert(*common, "--model=tsm_r50", "--tdn_revision=2020")
    assert bad.returncode == 2 and "--tdn_revision applies to TDN presets" in bad.stderr and not os.path.exists(out)
    bad = _run_convert(*common, "--model=tdn_r50", "--tdn_revision=2019")
    assert bad.returncode == 2 and "revision='2019'" in bad.stderr and not os.path.exists(out)
    result = _run_convert(*common, "--model=tdn_r50", "--tdn_revision=2020")
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = keras.saving.load_model(out)
    assert loaded.get_config()["tdn_revision"] == "2020"
    clip = np.random.default_rng(2).normal(size=(1, 20, 64, 64, 3)).astype("float32")
    with torch.no_grad():
        want = ref(torch.from_numpy(clip.transpose(0, 1, 4, 2, 3).copy())).numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(clip)), want, atol=1e-4 * np.abs(want).max())
