"""MMAction2 1.x checkpoints -> tfvideo, logits parity against the real MMAction2 1.2.0.

Each reference model is built by MMAction2 itself from the config files its package ships
(`mmaction/.mim/configs/_base_/models/*.py`, the configs of the published checkpoints) with
random weights and non-trivial BatchNorm statistics, saved as MMAction2 saves checkpoints
(`{"meta", "state_dict"}` through mmengine), converted by `tfvideo.models.convert_checkpoint`,
and both run in eval mode on the same normalised clip: max |diff| <= 1e-4 x the logit scale.
Skipped where torch or mmaction2 are not installed (scripts/test installs them).
"""

import os

import numpy as np
import pytest

# Skip before TensorFlow loads where the references are not installed.
torch = pytest.importorskip("torch")
pytest.importorskip("mmengine")
pytest.importorskip("mmcv")

import keras  # noqa: E402

from tests.models.mmaction2_import import import_mmaction  # noqa: E402
from tfvideo import models  # noqa: E402

mmaction = pytest.importorskip("mmaction") and import_mmaction()
from mmaction.registry import MODELS  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu  # noqa: E402

_CONFIGS = os.path.join(os.path.dirname(mmaction.__file__), ".mim", "configs")
RNG = np.random.default_rng(7)


def _config(relative, **changes):
    cfg = Config.fromfile(os.path.join(_CONFIGS, relative)).model
    cfg.backbone.pretrained = None
    if "pretrained2d" in cfg.backbone or cfg.backbone.type in ("ResNetTSM", "ResNet3d", "MobileNetV2TSM"):
        cfg.backbone.pretrained2d = False
    for path, value in changes.items():
        node = cfg
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


def _build(cfg, seed):
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(n, generator=g) * 0.4 + 0.8)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
            elif isinstance(m, torch.nn.Linear):  # A visible head (MMAction2 inits fc with std 0.001-0.01).
                m.weight.normal_(0, 0.05, generator=g)
                if m.bias is not None:
                    m.bias.normal_(0, 0.05, generator=g)
    return model.eval()


def _save(model, path):
    meta = {"epoch": 50, "iter": 1000, "mmengine_version": "0.10.7", "experiment_name": "parity",
            "dataset_meta": {"classes": None}}
    save_checkpoint({"meta": meta, "state_dict": weights_to_cpu(model.state_dict())}, path)


def _reference_2d(model, clip):
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 1, 4, 2, 3)))  # [B, T, C, H, W]
        feats, kwargs = model.extract_feat(x, stage="backbone", test_mode=True)
        return model.cls_head(feats, num_segs=kwargs["num_segs"]).numpy()


def _reference_3d(model, clip):
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 4, 1, 2, 3)))  # [B, C, T, H, W]
        return model.cls_head(model.backbone(x)).numpy()


def _parity(tmp_path, name, reference, clip, preset, num_classes, num_segments, run):
    path = str(tmp_path / f"{name}.pth")
    _save(reference, path)
    model, report = models.convert_checkpoint("mmaction2", path, preset, num_classes, num_segments)
    assert not report.missing and not report.unused, report.summary()
    want = run(reference, clip)
    got = keras.ops.convert_to_numpy(model(clip))
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max())
    print(f"{name}: max |diff| {err:.3g}, logit scale {scale:.3g}, relative {err / scale:.2g}")
    assert err <= 1e-4 * scale, f"{name}: max |diff| {err:.3g} > 1e-4 x logit scale {scale:.3g}"
    return model


def _clip(b, t, size=64):
    return RNG.normal(0, 1, (b, t, size, size, 3)).astype("float32")


_SEGMENTS_4 = {"backbone.num_segments": 4, "cls_head.num_segments": 4}
# name: (MMAction2 config, config changes, seed, clip [B, T], tfvideo preset, reference forward).
# TRN: TRNHead draws relation subsets at random when a scale has more than 3; with 3 segments
# every scale has at most 3, so MMAction2's output is deterministic.
_CASES = {
    "tsn_r50": ("_base_/models/tsn_r50.py", {}, 1, (2, 3), "tsn_r50", _reference_2d),
    "tsm_r50": ("_base_/models/tsm_r50.py", _SEGMENTS_4, 2, (2, 4), "tsm_r50", _reference_2d),
    "i3d_r50": ("_base_/models/i3d_r50.py", {}, 3, (1, 8), "i3d_r50", _reference_3d),
    "tanet_r50": ("_base_/models/tanet_r50.py", _SEGMENTS_4, 5, (2, 4), "tam_r50", _reference_2d),
    "trn_r50": ("_base_/models/trn_r50.py", {"cls_head.num_segments": 3}, 6, (2, 3), "trn_r50", _reference_2d),
    "tsm_mobilenetv2": ("_base_/models/tsm_mobilenet_v2.py", _SEGMENTS_4, 8, (2, 4), "tsm_mobilenetv2",
                        _reference_2d),
}


@pytest.mark.parametrize("name", list(_CASES))
def test_parity(tmp_path, name):
    relative, changes, seed, (b, t), preset, run = _CASES[name]
    cfg = _config(relative, **{"cls_head.num_classes": 5, **changes})
    model = _parity(tmp_path, name, _build(cfg, seed), _clip(b, t), preset, 5, t, run)
    if preset == "tsm_mobilenetv2":  # The format builds PyTorch's MobileNetV2 itself.
        assert model.backbone_style == "torch"


@pytest.mark.parametrize("mode", ["embedded-gaussian", "dot-product"])
def test_i3d_r50_non_local(tmp_path, mode):
    """Non-local blocks after blocks 2, 4 of res3 and 2, 4, 6 of res4 (MMAction2's placement)."""
    cfg = _config(f"recognition/i3d/i3d_imagenet-pretrained-r50-nl-{mode}_8xb8-32x2x1-100e_kinetics400-rgb.py",
                  **{"cls_head.num_classes": 5})
    ours_mode = mode.replace("-", "_")
    path = str(tmp_path / "i3d_nl.pth")
    reference = _build(cfg, 4)
    with torch.no_grad():  # Keep theta . phi moderate: random backbones give activations ~1e2 (inf in dot-product).
        for name, param in reference.named_parameters():
            if ".non_local_block.theta." in name or ".non_local_block.phi." in name:
                param.mul_(0.02)
    _save(reference, path)
    model = models.get("i3d_r50_nl", 5, num_frames=8, non_local_mode=ours_mode)
    model.build((None, 8, 224, 224, 3))
    model, report = models.convert_checkpoint("mmaction2", path, model)
    assert not report.missing and not report.unused, report.summary()
    assert sum("non_local" in p for p in report.loaded) == 5 * 12  # theta, phi, g, project (kernel, bias), bn (4)
    clip = _clip(1, 8)
    want = _reference_3d(reference, clip)
    got = keras.ops.convert_to_numpy(model(clip))
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max())
    print(f"i3d_r50_nl {mode}: max |diff| {err:.3g}, relative {err / scale:.2g}")
    assert err <= 1e-4 * scale


def test_parameter_counts_are_the_references():
    """Trainable parameters equal the MMAction2 model's for 400 classes, exactly."""
    counts = {}
    for relative, preset, kwargs in (("_base_/models/tsm_r50.py", "tsm_r50", {}),
                                     ("_base_/models/tanet_r50.py", "tam_r50", {}),
                                     ("_base_/models/i3d_r50.py", "i3d_r50", {})):
        cfg = _config(relative)
        reference = MODELS.build(cfg)
        want = sum(p.numel() for p in reference.parameters())
        model = models.get(preset, 400, **kwargs)
        frames = 8
        model.build((None, frames, 224, 224, 3))
        got = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        assert got == want, f"{preset}: {got} vs MMAction2's {want}"
        counts[preset] = want
    # The published figures: TSM-R50 24.3M, TANet-R50 25.6M (the papers' tables).
    assert counts["tsm_r50"] == 24_327_632
    assert counts["tam_r50"] == 25_590_320
