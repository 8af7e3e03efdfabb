"""Online detectors: streaming step == batch pass, shapes, .keras round trip, the loss."""

import numpy as np
import pytest

from tfvideo import online

D, K = 6, 4
TINY = {
    "trn": {"embed_dim": 8, "hidden_dim": 8, "decoder_steps": 3, "dropout": 0.0},
    "idn": {"history": 4, "embed_dim": 8, "units": 8, "dropout": 0.0},
    "oadtr": {"history": 4, "embed_dim": 8, "encoder_layers": 1, "decoder_layers": 2, "encoder_heads": 2, "decoder_heads": 2,
                  "decoder_queries": 3, "mlp_dim": 16, "dropout": 0.0},
    "gru": {"embed_dim": 8, "units": 8, "dropout": 0.0},
    "chunk_mlp": {"hidden_dim": 8, "dropout": 0.0},
}


def _features(b=2, t=7, seed=0):
    return np.random.default_rng(seed).normal(size=(b, t, D)).astype("float32")


@pytest.fixture(scope="module", params=sorted(TINY))
def detector(request):
    import keras

    keras.utils.set_random_seed(1)
    return online.get_detector(request.param, D, K, **TINY[request.param])


def test_stepping_equals_batch_pass(detector):
    x = _features()  # T = 7 > history 4: the windowed models drop old chunks in both forms.
    batch = np.asarray(detector(x)["scores"])
    assert batch.shape == (2, 7, K)
    state = detector.init_state(2)
    stepped = []
    for t in range(x.shape[1]):
        logits, state = detector.step(x[:, t], state)
        stepped.append(np.asarray(logits))
    np.testing.assert_allclose(np.stack(stepped, 1), batch, atol=1e-5)


def test_state_shapes_and_anticipation(detector):
    state = detector.init_state(3)
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        k: (3,) + tuple(s) for k, s in detector.state_shapes().items()}
    out = detector(_features(t=5))
    if detector.anticipates:
        assert tuple(out["anticipation"].shape) == (2, 5, detector.decoder_steps, K)
    else:
        assert set(out) == {"scores"}


def test_history_is_kept(detector):
    """Changing the first chunk changes later scores exactly for the models with memory."""
    x = _features(b=1, t=3)
    y = x.copy()
    y[:, 0] += 5.0
    differs = not np.allclose(np.asarray(detector(x)["scores"])[:, 2], np.asarray(detector(y)["scores"])[:, 2])
    assert differs == (not isinstance(detector, online.ChunkClassifier))


def test_keras_round_trip(detector, tmp_path):
    import keras

    path = str(tmp_path / "m.keras")
    detector.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(detector)
    assert restored.get_config() == detector.get_config()
    x = _features(seed=3)
    np.testing.assert_allclose(np.asarray(restored(x)["scores"]), np.asarray(detector(x)["scores"]), atol=1e-6)


def test_oadtr_paper_defaults():
    model = online.OadTR(feature_dim=D, num_classes=K)
    cfg = model.get_config()
    assert (cfg["history"], cfg["encoder_layers"], cfg["decoder_layers"]) == (64, 3, 5)
    assert (cfg["encoder_heads"], cfg["decoder_heads"], cfg["decoder_queries"], cfg["embed_dim"]) == (8, 4, 8, 1024)


def test_bad_inputs_name_the_tensor():
    model = online.get_detector("gru_tiny", D, K)
    with pytest.raises(ValueError, match=r"features must be \[B, T, 6\]"):
        model(np.zeros((1, 3, 5), "float32"))
    with pytest.raises(ValueError, match="unknown_net"):
        online.get_detector("unknown_net", D, K)


def test_soft_target_cross_entropy_skips_ambiguous():
    loss = online.SoftTargetCrossEntropy(ignore_index=3, reduction=None)
    logits = np.array([[2.0, 0.0, 1.0, 50.0], [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]], "float32")
    targets = np.array([[0, 0, 1, 0], [0, 0, 0, 1], [0.5, 0.5, 0, 0]], "float32")
    got = np.asarray(loss(targets, logits))
    # Row 0: softmax over columns 0..2 only (the ambiguous logit 50 is ignored).
    row0 = -(1.0 - np.log(np.exp(2.0) + np.exp(0.0) + np.exp(1.0)))
    # Row 1: an ambiguous chunk has no target mass left: zero loss.
    row2 = -0.5 * (1.0 + 2.0 - 2 * np.log(np.exp(1.0) + np.exp(2.0) + np.exp(3.0)))
    np.testing.assert_allclose(got, [row0, 0.0, row2], rtol=1e-5)
    assert online.SoftTargetCrossEntropy.from_config(loss.get_config()).ignore_index == 3


def test_score_sequence_equals_stepping(detector):
    x = _features(b=1, t=10, seed=5)
    state, expected = detector.init_state(1), []
    for t in range(10):
        logits, state = detector.step(x[:, t], state)
        expected.append(np.asarray(logits)[0])
    expected = np.exp(expected) / np.exp(expected).sum(-1, keepdims=True)
    # Blocks of 3 chunks: every block needs the previous history - 1 chunks as context.
    np.testing.assert_allclose(online.score_sequence(detector, x[0], block_size=3), expected, atol=1e-5)


def test_fit_keeps_the_window_length():
    """keras.Model.fit sets `model.history`; the detectors' window length must survive it."""
    import keras

    model = online.get_detector("idn_tiny", D, K)
    model.compile(optimizer="sgd", loss={"scores": online.SoftTargetCrossEntropy()})
    model.fit(_features(t=8), {"scores": np.eye(K, dtype="float32")[np.zeros((2, 8), int)]}, epochs=1, verbose=0)
    assert model.get_config()["history"] == 8
    assert isinstance(model.history, keras.callbacks.History)
