"""TDN is the authors' network: exact parameter count and logits parity with an independent
PyTorch forward pass (tests/models/reference_tdn.py) through the `tdn` checkpoint mapper."""

import keras
import numpy as np
import pytest

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


@pytest.mark.parametrize("num_segments,size", [(8, 80), (4, 64)])
def test_tdn_logits_match_the_reference(num_segments, size, tmp_path):
    torch = pytest.importorskip("torch")
    import reference_tdn

    torch.manual_seed(0)
    ref = reference_tdn.randomize_batch_norm(reference_tdn.TDN(6, num_segments, 5)).eval()
    with torch.no_grad():  # learned shift kernels away from their one-hot init
        for m in ref.modules():
            if isinstance(m, reference_tdn.Shift):
                m.conv.weight.add_(0.2 * torch.randn_like(m.conv.weight))
    path = str(tmp_path / "tdn.pth.tar")
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, path)

    model = models.TDN(6, num_segments=num_segments, frames_per_segment=5)
    clip = np.random.default_rng(0).normal(size=(2, num_segments * 5, size, size, 3)).astype("float32")
    model.build(clip.shape)
    mapped = _convert_tdn.map_tdn(_convert_tdn.read_tdn(path), model)
    assert set(mapped) == {v.path for v in model.weights}
    for v in model.weights:
        v.assign(mapped[v.path])
    got = keras.ops.convert_to_numpy(model(clip, training=False))
    with torch.no_grad():
        want = ref(torch.from_numpy(clip.transpose(0, 1, 4, 2, 3).copy())).numpy()
    scale = np.abs(want).max()
    assert scale > 1e-2
    np.testing.assert_allclose(got, want, atol=1e-4 * scale)


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
