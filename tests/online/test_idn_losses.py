"""IDN's early-embedding losses against NumPy references, their weighting, and a train run."""

import json
import types

import numpy as np
import pytest

from tfvideo import online

D, K = 5, 4
TINY = {"history": 3, "embed_dim": 6, "units": 6, "dropout": 0.0}


def _contrastive_reference(targets, embeddings, history, margin, ignore_index=None):
    """Loops over (current t, past s) pairs of each window: same label -> d^2, else hinge^2."""
    targets = np.array(targets, np.float64)
    if ignore_index is not None:
        targets[..., ignore_index] = 0.0
    total, count = 0.0, 0
    for b in range(targets.shape[0]):
        for t in range(targets.shape[1]):
            for s in range(max(0, t - history + 1), t):
                if targets[b, t].sum() == 0 or targets[b, s].sum() == 0:
                    continue
                d = np.linalg.norm(embeddings[b, t] - embeddings[b, s])
                same = targets[b, t].argmax() == targets[b, s].argmax()
                total += d**2 if same else max(0.0, margin - d) ** 2
                count += 1
    return total / max(count, 1)


def _cross_entropy_reference(targets, logits, ignore_index=None):
    """Mean over chunks of -sum_k y_k log softmax(z)_k, the ignored column out of both."""
    targets, logits = np.array(targets, np.float64), np.array(logits, np.float64)
    if ignore_index is not None:
        targets[..., ignore_index] = 0.0
        logits[..., ignore_index] = -1e9
    mass = targets.sum(-1, keepdims=True)
    targets = targets / np.maximum(mass, 1e-12)
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs = log_probs - np.log(np.exp(log_probs).sum(-1, keepdims=True))
    return float(np.mean(-(targets * log_probs).sum(-1)))


def _dense(layer, x, relu=False):
    kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    y = x @ kernel + bias
    return np.maximum(y, 0.0) if relu else y


def test_contrastive_loss_by_hand():
    # Two chunks 5 apart (3-4-5 triangle): the current chunk 1 paired with chunk 0.
    e = np.array([[[0.0, 0.0], [3.0, 4.0]]], "float32")
    same = np.array([[[0, 1], [0, 1]]], "float32")
    other = np.array([[[1, 0], [0, 1]]], "float32")
    loss = online.relevance_contrastive_loss
    assert float(loss(same, e, history=2)) == pytest.approx(25.0)  # pulled: d^2
    assert float(loss(other, e, history=2, margin=6.0)) == pytest.approx(1.0)  # (6 - 5)^2
    assert float(loss(other, e, history=2, margin=1.0)) == 0.0  # already past the margin
    assert float(loss(same, e, history=1)) == 0.0  # a window of one chunk has no past pair


def test_contrastive_loss_matches_reference():
    rng = np.random.default_rng(0)
    b, t, history = 2, 6, 3
    embeddings = rng.normal(scale=0.6, size=(b, t, 3)).astype("float32")
    labels = rng.integers(0, K, size=(b, t))
    targets = np.eye(K, dtype="float32")[labels]
    targets[0, 2] = 0.0  # zero padding row: no pair with it
    targets[1, 4] = np.eye(K)[3]  # an ambiguous chunk once column 3 is ignored
    got = float(online.relevance_contrastive_loss(targets, embeddings, history, margin=1.2, ignore_index=3))
    expected = _contrastive_reference(targets, embeddings, history, 1.2, ignore_index=3)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Both kinds of pair are present, so the test covers the pull and the hinge terms.
    flat = labels.ravel()
    assert len(set(flat)) > 1 and any((labels[:, 1:] == labels[:, :-1]).ravel())
    with pytest.raises(ValueError, match=r"targets \[B, T, K\] and embeddings \[B, T, E\]"):
        online.relevance_contrastive_loss(targets[0], embeddings, history)


def test_contrastive_gradient_is_finite_for_identical_chunks():
    import tensorflow as tf

    e = tf.Variable(np.ones((1, 3, 2), "float32"))
    targets = np.eye(K, dtype="float32")[[[1, 2, 1]]]  # identical chunks, different labels: d = 0
    with tf.GradientTape() as tape:
        loss = online.relevance_contrastive_loss(targets, e, history=3, margin=1.0)
    # Pairs (1, 0) and (2, 1) differ at d = 0 (hinge 1 each), (2, 0) is the same label at d = 0: mean 2 / 3.
    assert float(loss) == pytest.approx(2.0 / 3.0, abs=1e-5)
    assert np.isfinite(tape.gradient(loss, e).numpy()).all()


def _idn(seed=1, **kwargs):
    import keras

    keras.utils.set_random_seed(seed)
    return online.get_detector("idn", D, K, **{**TINY, **kwargs})


def _batch(seed=0, b=2, t=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, t, D)).astype("float32")
    y = np.eye(K, dtype="float32")[rng.integers(0, K, size=(b, t))]
    y[1, -1] = 0.0  # a padded chunk past a video's end
    return x, y


def test_embedding_classification_loss_matches_reference():
    model = _idn(ambiguous_index=2)
    x, y = _batch()
    embedded = _dense(model.embed, x.astype(np.float64), relu=True)
    logits = _dense(model.embedding_classifier, embedded)
    got = model.auxiliary_losses(x, y)
    np.testing.assert_allclose(float(got["embedding"]), _cross_entropy_reference(y, logits, 2), rtol=1e-5)
    np.testing.assert_allclose(float(got["contrastive"]), _contrastive_reference(y, embedded, 3, 1.0, 2),
                               rtol=1e-5)


@pytest.mark.parametrize("weights", [(0.5, 2.0), (0.0, 0.0), (1.0, 0.0)])
def test_training_loss_is_main_plus_weighted_auxiliary_terms(weights):
    model = _idn(embedding_loss_weight=weights[0], contrastive_loss_weight=weights[1], contrastive_margin=0.8,
                 ambiguous_index=3)
    model.compile(optimizer="sgd", loss={"scores": online.SoftTargetCrossEntropy(ignore_index=3)})
    x, y = _batch(seed=4)
    scores = model(x)["scores"]
    got = float(model.compute_loss(x, {"scores": y}, {"scores": scores}, training=True))
    main = _cross_entropy_reference(y, np.asarray(scores), 3)
    embedded = _dense(model.embed, x.astype(np.float64), relu=True)
    embedding = 0.0
    if weights[0]:
        embedding = _cross_entropy_reference(y, _dense(model.embedding_classifier, embedded), 3)
    contrastive = _contrastive_reference(y, embedded, 3, 0.8, 3)
    np.testing.assert_allclose(got, main + weights[0] * embedding + weights[1] * contrastive, rtol=1e-5)
    if weights == (0.0, 0.0):
        np.testing.assert_allclose(got, main, rtol=1e-6)


def test_losses_leave_inference_unchanged(tmp_path):
    import keras

    with_aux, without = _idn(), _idn(embedding_loss_weight=0.0, contrastive_loss_weight=0.0)
    assert without.embedding_classifier is None
    for name in ("embed", "idu", "classifier"):
        getattr(without, name).set_weights(getattr(with_aux, name).get_weights())
    x, _ = _batch(seed=2)
    np.testing.assert_array_equal(np.asarray(with_aux(x)["scores"]), np.asarray(without(x)["scores"]))
    assert with_aux.state_shapes() == without.state_shapes() == {"window": (3, 6)}
    logits, _ = with_aux.step(x[:, 0], with_aux.init_state(2))
    np.testing.assert_array_equal(np.asarray(logits), np.asarray(without.step(x[:, 0], without.init_state(2))[0]))
    without.save(str(tmp_path / "m.keras"))
    restored = keras.saving.load_model(str(tmp_path / "m.keras"))
    assert restored.get_config() == without.get_config()
    np.testing.assert_allclose(np.asarray(restored(x)["scores"]), np.asarray(without(x)["scores"]), atol=1e-6)


def test_idn_saved_before_the_losses_still_loads(tmp_path):
    """An old .keras file has no loss keys in its config and no embedding-classifier weights."""
    import zipfile

    import keras

    old = _idn(embedding_loss_weight=0.0, contrastive_loss_weight=0.0)
    path, legacy = tmp_path / "new.keras", tmp_path / "old.keras"
    old.save(str(path))
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(legacy, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                for key in ("embedding_loss_weight", "contrastive_loss_weight", "contrastive_margin", "ambiguous_index"):
                    del config["config"][key]
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    restored = keras.saving.load_model(str(legacy))
    assert (restored.embedding_loss_weight, restored.contrastive_loss_weight) == (0.0, 0.0)
    x, _ = _batch(seed=5)
    np.testing.assert_allclose(np.asarray(restored(x)["scores"]), np.asarray(old(x)["scores"]), atol=1e-6)


def test_fit_trains_the_early_embedding_through_its_losses():
    """With the scores loss weighted 0, only the early-embedding losses can move `embed`."""
    x, y = _batch(seed=3)
    moved = {}
    for weight in (0.0, 1.0):
        model = _idn(embedding_loss_weight=weight, contrastive_loss_weight=weight)
        model.compile(optimizer="sgd", loss={"scores": online.SoftTargetCrossEntropy()}, loss_weights={"scores": 0.0})
        before = model.embed.get_weights()[0].copy()
        model.fit(x, {"scores": y}, epochs=2, verbose=0)
        moved[weight] = not np.allclose(model.embed.get_weights()[0], before)
    assert moved == {0.0: False, 1.0: True}


class _Flags(types.SimpleNamespace):
    def __getitem__(self, name):
        return types.SimpleNamespace(present=hasattr(self, name))


def test_online_trainer_trains_idn_with_its_losses(tmp_path, capsys):
    from trainers import _online

    streams = online.make_onset_streams(4, num_chunks=24, num_actions=2, feature_dim=6, seed=0)
    for k, (features, targets) in enumerate(streams):
        for folder, part in (("rgb", features), ("targets", targets)):
            (tmp_path / folder).mkdir(exist_ok=True)
            np.save(tmp_path / folder / f"v{k}.npy", part)
    (tmp_path / "list.txt").write_text("v0\nv1\nv2\nv3\n")
    flags = _Flags(model="idn_tiny", model_dir=str(tmp_path / "run"), train_data=str(tmp_path / "list.txt"),
                   eval_data=str(tmp_path / "list.txt"), features_dirs=[str(tmp_path / "rgb")],
                   targets_dir=str(tmp_path / "targets"), history=6, batch_size=4, epochs=2, seed=0, verbose=0,
                   ambiguous_index=2, contrastive_loss_weight=0.5, detector_kwargs="{}")
    assert _online.train_main(flags) == 0
    kwargs = json.loads((tmp_path / "run" / "config.json").read_text())["model_kwargs"]
    assert (kwargs["ambiguous_index"], kwargs["contrastive_loss_weight"], kwargs["history"]) == (2, 0.5, 6)
    assert "embedding_loss_weight" not in kwargs  # the model default (1.0) applies
    from tfvideo import _experiment

    model, _ = _experiment.load_trained_model(str(tmp_path / "run"))
    assert (model.embedding_loss_weight, model.contrastive_loss_weight, model.ambiguous_index) == (1.0, 0.5, 2)
    assert "per-frame mAP:" in capsys.readouterr().out
    # The exported streaming model (step signature) gives the scores of the batch pass.
    import tensorflow as tf

    from tfvideo.export import _streaming

    loaded = tf.saved_model.load(_streaming.export_from_model_dir(str(tmp_path / "run"), str(tmp_path / "exp"), "idn"))
    state, stepped = loaded.init_state(tf.constant(1)), []
    for chunk in streams[0][0]:
        scores, state = loaded.step(tf.constant(chunk[None]), state)
        stepped.append(scores.numpy()[0])
    np.testing.assert_allclose(np.stack(stepped), online.score_sequence(model, streams[0][0]), atol=1e-5)

    bad = _Flags(**{**vars(flags), "model": "gru_tiny", "model_dir": str(tmp_path / "bad")})
    assert _online.train_main(bad) == 2
    assert "--contrastive_loss_weight applies to detectors with that loss" in capsys.readouterr().err
