"""Online TRN and OadTR are the authors' networks: logits parity with independent PyTorch
forward passes (tests/online/reference_online.py) through the `trn_pytorch` and `oadtr`
checkpoint mappers."""

import numpy as np
import pytest

from tfvideo import online
from tfvideo.online import _convert

D, K = 6, 4


def _load(model, mapped):
    assert set(mapped) == {v.path for v in model.weights}
    for v in model.weights:
        v.assign(mapped[v.path])


def test_trn_matches_trn_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    import reference_online

    torch.manual_seed(0)
    ref = reference_online.TRN(D, K, fusion_size=5, hidden_size=7, dec_steps=3).eval()
    path = str(tmp_path / "trn.pth")
    torch.save({"epoch": 3, "model_state_dict": ref.state_dict()}, path)
    model = online.get_detector("trn", D, K, embed_dim=5, hidden_dim=7, decoder_steps=3, dropout=0.0)
    _load(model, _convert.map_trn_pytorch(_convert.read_trn_pytorch(path), model))
    x = np.random.default_rng(0).normal(size=(2, 9, D)).astype("float32")
    out = model(x)
    with torch.no_grad():
        scores, anticipation = (t.numpy() for t in ref(torch.from_numpy(x)))
    scale = np.abs(scores).max()
    np.testing.assert_allclose(np.asarray(out["scores"]), scores, atol=1e-4 * scale)
    np.testing.assert_allclose(np.asarray(out["anticipation"]), anticipation, atol=1e-4 * scale)
    # Streaming gives the batch scores.
    state, stepped = model.init_state(2), []
    for t in range(9):
        logits, state = model.step(x[:, t], state)
        stepped.append(np.asarray(logits))
    np.testing.assert_allclose(np.stack(stepped, 1), scores, atol=1e-4 * scale)


def test_trn_defaults_are_the_authors():
    model = online.TemporalRecurrentNetwork(feature_dim=3072, num_classes=22)
    cfg = model.get_config()
    assert (cfg["embed_dim"], cfg["hidden_dim"], cfg["decoder_steps"], cfg["dropout"]) == (3072, 4096, 8, 0.1)


def test_oadtr_matches_the_authors_forward(tmp_path):
    torch = pytest.importorskip("torch")
    import reference_online

    torch.manual_seed(0)
    h, q = 5, 3
    ref = reference_online.OadTR(D, K, history=h, dim=8, heads=2, layers=2, mlp_dim=16, dec_heads=2, dec_layers=2,
                                 queries=q, d_ff=16).eval()
    with torch.no_grad():  # LayerNorms away from their identity init
        for m in ref.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.add_(0.3 * torch.randn_like(m.weight))
                m.bias.add_(0.3 * torch.randn_like(m.bias))
    path = str(tmp_path / "oadtr.pth")
    torch.save({"model": ref.state_dict(), "epoch": 1}, path)
    model = online.get_detector("oadtr", D, K, history=h, embed_dim=8, encoder_layers=2, decoder_layers=2,
                                encoder_heads=2, decoder_heads=2, decoder_queries=q, mlp_dim=16, dropout=0.0)
    _load(model, _convert.map_oadtr(_convert.read_oadtr(path), model))
    x = np.random.default_rng(1).normal(size=(2, 8, D)).astype("float32")
    out = model(x)
    with torch.no_grad():
        for t in range(h - 1, 8):  # windows of real history
            logits, anticipation = (a.numpy() for a in ref(torch.from_numpy(x[:, t - h + 1 : t + 1])))
            scale = np.abs(logits).max()
            np.testing.assert_allclose(np.asarray(out["scores"])[:, t], logits, atol=1e-4 * scale)
            np.testing.assert_allclose(np.asarray(out["anticipation"])[:, t], anticipation, atol=1e-4 * scale)


def test_oadtr_starts_from_zero_queries_and_task_token():
    model = online.get_detector("oadtr_tiny", D, K)
    assert np.abs(np.asarray(model.queries)).max() == 0.0 and np.abs(np.asarray(model.task_token)).max() == 0.0
    assert model.anticipation_weight == 0.5 and model.training_context == model.history_length - 1


def test_online_mappers_name_foreign_keys():
    model = online.get_detector("trn_tiny", D, K)
    with pytest.raises(ValueError, match="'module.enc_cell.weight_ih' \\(128, 10\\) does not fit"):
        _convert.map_trn_pytorch({"module.enc_cell.weight_ih": np.zeros((128, 10), "float32")}, model)
    with pytest.raises(ValueError, match="'rpn.conv.weight'"):
        _convert.map_oadtr({"rpn.conv.weight": np.zeros(3)}, online.get_detector("oadtr_tiny", D, K))


def test_registered_formats_convert_through_convert_checkpoint(tmp_path):
    """`trn_pytorch` goes through tfvideo.models.convert_checkpoint's registry: loaded keys
    reported, the saved .keras file reloads with the reference's scores."""
    torch = pytest.importorskip("torch")
    import keras
    import reference_online

    from tfvideo import models

    assert {"tdn", "kinetics_i3d", "trn_pytorch", "oadtr"} <= set(models.list_checkpoint_formats())
    torch.manual_seed(1)
    ref = reference_online.TRN(D, K, fusion_size=5, hidden_size=7, dec_steps=3).eval()
    path = str(tmp_path / "trn.pth")
    torch.save({"epoch": 3, "model_state_dict": ref.state_dict()}, path)
    model = online.get_detector("trn", D, K, embed_dim=5, hidden_dim=7, decoder_steps=3, dropout=0.0)
    model, report = models.convert_checkpoint("trn_pytorch", path, model)
    assert not report.missing and not report.unused and len(report.loaded) == len(model.weights)
    out_path = str(tmp_path / "trn.keras")
    models.save_converted(model, out_path)
    x = np.random.default_rng(1).normal(size=(2, 5, D)).astype("float32")
    with torch.no_grad():
        scores = ref(torch.from_numpy(x))[0].numpy()
    reloaded = keras.saving.load_model(out_path)
    np.testing.assert_allclose(np.asarray(reloaded(x)["scores"]), scores, atol=1e-4 * np.abs(scores).max())
    with pytest.raises(ValueError, match="feature_dim"):
        models.convert_checkpoint("trn_pytorch", path, "trn", num_classes=K)
