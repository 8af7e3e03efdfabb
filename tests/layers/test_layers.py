"""Temporal layers: parity with independent NumPy references, config and .keras round trips."""

import itertools

import keras
import numpy as np
import pytest

from tfvideo import layers as tvl

RNG = np.random.default_rng(0)


def _np_shift(x, t, fold_div=8, mode="bidirectional"):
    """Loop-by-hand temporal shift of [B*T, H, W, C] frames."""
    n, c = x.shape[0], x.shape[-1]
    fold = c // fold_div
    clips = x.reshape((n // t, t) + x.shape[1:])
    out = np.zeros_like(clips)
    for b in range(clips.shape[0]):
        for i in range(t):
            for ch in range(c):
                if mode == "bidirectional" and ch < fold:
                    src = i + 1
                elif mode == "bidirectional" and ch < 2 * fold or mode == "left" and ch < fold:
                    src = i - 1
                else:
                    src = i
                if 0 <= src < t:
                    out[b, i, ..., ch] = clips[b, src, ..., ch]
    return out.reshape(x.shape)


@pytest.mark.parametrize("mode", ["bidirectional", "left"])
def test_temporal_shift_matches_numpy(mode):
    x = RNG.normal(size=(2 * 4, 3, 3, 16)).astype("float32")
    got = keras.ops.convert_to_numpy(tvl.TemporalShift(4, mode=mode)(x))
    np.testing.assert_array_equal(got, _np_shift(x, 4, mode=mode))


@pytest.mark.parametrize("mode", ["bidirectional", "left"])
def test_temporal_shift_gradient_is_the_reverse_shift(mode):
    # The shift is linear, so its input gradient is its adjoint applied to the upstream
    # gradient: the same shift on time-reversed clips, reversed back.
    import tensorflow as tf

    t = 4
    x = tf.constant(RNG.normal(size=(2 * t, 3, 3, 16)).astype("float32"))
    upstream = RNG.normal(size=x.shape).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tvl.TemporalShift(t, mode=mode)(x) * upstream)
    reverse = lambda a: a.reshape((2, t) + a.shape[1:])[:, ::-1].reshape(a.shape)  # noqa: E731
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), reverse(_np_shift(reverse(upstream), t, mode=mode)))


@pytest.mark.parametrize("mode", ["bidirectional", "left"])
def test_temporal_shift_with_channels_known_at_run_time(mode):
    import tensorflow as tf

    x = RNG.normal(size=(2 * 4, 3, 3, 16)).astype("float32")
    layer = tvl.TemporalShift(4, mode=mode)
    shift = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, None), tf.float32)])
    np.testing.assert_array_equal(shift(x).numpy(), _np_shift(x, 4, mode=mode))


def test_online_shift_streams_like_offline_left_shift():
    t = 5
    x = RNG.normal(size=(2 * t, 4, 4, 16)).astype("float32")
    offline = keras.ops.convert_to_numpy(tvl.TemporalShift(t, mode="left")(x)).reshape(2, t, 4, 4, 16)
    clips = x.reshape(2, t, 4, 4, 16)
    layer = tvl.OnlineTemporalShift()
    buffer = layer.initial_buffer(clips[:, 0])
    for i in range(t):
        out, buffer = layer(clips[:, i], buffer)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), offline[:, i])
    with pytest.raises(ValueError, match="buffer has 3 channels"):
        layer(clips[:, 0], np.zeros((2, 4, 4, 3), "float32"))


@pytest.mark.parametrize("mode", ["avg", "max", "weighted"])
def test_segment_consensus(mode):
    s = RNG.normal(size=(2, 4, 5)).astype("float32")
    layer = tvl.SegmentConsensus(mode)
    got = keras.ops.convert_to_numpy(layer(s))
    want = {"avg": s.mean(1), "max": s.max(1), "weighted": s.mean(1)}[mode]  # zero logits: uniform weights
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if mode == "weighted":
        logits = np.array([1.0, -1.0, 0.5, 2.0], "float32")
        layer.segment_logits.assign(logits)
        w = np.exp(logits) / np.exp(logits).sum()
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(s)), np.einsum("btk,t->bk", s, w), rtol=1e-5)


def test_temporal_relation_matches_loop_by_hand():
    t, d, units = 4, 6, 3
    layer = tvl.TemporalRelation(t, units, bottleneck=5, subsets_per_scale=2)
    x = RNG.normal(size=(2, t, d)).astype("float32")
    got = keras.ops.convert_to_numpy(layer(x))
    assert layer.subsets[4] == [(0, 1, 2, 3)]
    assert layer.subsets[3] == [(0, 1, 2), (1, 2, 3)]  # first and last of the 4 ordered triples
    assert layer.subsets[2] == [(0, 1), (2, 3)]
    def relu(v):
        return np.maximum(v, 0)

    want = np.zeros((2, units), "float32")
    for i, k in enumerate(layer._scale_list):
        w1, b1 = [keras.ops.convert_to_numpy(v) for v in layer.hidden[i].weights]
        w2, b2 = [keras.ops.convert_to_numpy(v) for v in layer.out[i].weights]
        for subset in layer.subsets[k]:
            assert list(subset) == sorted(subset) and subset in list(itertools.combinations(range(t), k))
            rel = np.concatenate([x[:, j] for j in subset], axis=-1)
            want += relu(relu(rel) @ w1 + b1) @ w2 + b2
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # Frame order matters.
    assert not np.allclose(keras.ops.convert_to_numpy(layer(x[:, ::-1])), got, atol=1e-4)


def _relation_contribution(layer, x, subset, scale_index):
    w1, b1 = [keras.ops.convert_to_numpy(v) for v in layer.hidden[scale_index].weights]
    w2, b2 = [keras.ops.convert_to_numpy(v) for v in layer.out[scale_index].weights]
    rel = np.maximum(np.concatenate([x[:, j] for j in subset], axis=-1), 0)
    return np.maximum(rel @ w1 + b1, 0) @ w2 + b2


@pytest.mark.parametrize("per_scale", [1, 2])
def test_temporal_relation_draws_random_subsets_in_training(per_scale):
    # As the authors' RelationModuleMultiScale: in training each call reads `per_scale`
    # distinct ordered pairs drawn at random; over many calls every pair is read.
    t = 4
    layer = tvl.TemporalRelation(t, 3, bottleneck=5, scales=(2,), subsets_per_scale=per_scale, seed=1)
    x = RNG.normal(size=(2, t, 6)).astype("float32")
    layer(x)
    pairs = list(itertools.combinations(range(t), 2))
    single = {p: _relation_contribution(layer, x, p, 0) for p in pairs}
    choices = list(itertools.combinations(pairs, per_scale))
    seen = set()
    for _ in range(60):
        got = keras.ops.convert_to_numpy(layer(x, training=True))
        matches = [c for c in choices if np.allclose(got, sum(single[p] for p in c), rtol=1e-4, atol=1e-5)]
        assert len(matches) == 1, "a training call must read exactly per_scale distinct pairs"
        seen.update(matches[0])
    assert seen == set(pairs)
    # Inference reads the fixed subsets.
    fixed = sum(single[p] for p in layer.subsets[2])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), fixed, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x, training=False)), fixed, rtol=1e-4, atol=1e-5)


def test_temporal_relation_starts_as_pytorch_linear():
    layer = tvl.TemporalRelation(8, 10, bottleneck=256)
    layer.build((None, 8, 64))
    assert len(layer.weights) == 2 * 2 * 7  # kernel and bias of two Dense per scale: no extra weights
    for dense, fan_in in [(layer.hidden[0], 8 * 64), (layer.hidden[-1], 2 * 64), (layer.out[0], 256)]:
        kernel = keras.ops.convert_to_numpy(dense.kernel)
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.95 * bound


def test_temporal_adaptive_starts_as_the_authors_pytorch_module():
    # The authors' TAM (nn.Linear / nn.Conv1d, default init): kernels uniform in +-1/sqrt(fan_in).
    t, c = 8, 32
    layer = tvl.TemporalAdaptive(t)
    layer.build((None, 4, 4, c))
    fans = {"local_conv": 3 * c, "local_out": c // 4, "global_hidden": t, "global_out": 2 * t}
    for name, fan_in in fans.items():
        kernel = keras.ops.convert_to_numpy(getattr(layer, name).kernel)
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.8 * bound, name


def test_temporal_adaptive_matches_numpy():
    t, c = 4, 8
    layer = tvl.TemporalAdaptive(t, kernel_size=3)
    x = RNG.normal(size=(2 * t, 3, 3, c)).astype("float32")
    got = keras.ops.convert_to_numpy(layer(x))
    clips = x.reshape(2, t, 3, 3, c)
    series = keras.ops.convert_to_numpy(keras.ops.mean(clips, axis=(2, 3)))
    local = keras.ops.relu(layer.local_bn(layer.local_conv(series)))
    imp = keras.ops.convert_to_numpy(keras.ops.sigmoid(layer.local_out(local)))
    per_channel = series.transpose(0, 2, 1).reshape(-1, t)
    g = keras.ops.relu(layer.global_bn(layer.global_hidden(per_channel)))
    kern = keras.ops.convert_to_numpy(keras.ops.softmax(layer.global_out(g), axis=-1)).reshape(2, c, 3)
    assert np.allclose(kern.sum(-1), 1, atol=1e-5)
    rescaled = clips * imp[:, :, None, None, :]
    want = np.zeros_like(clips)
    for b in range(2):
        for i in range(t):
            for j in range(3):
                src = i + j - 1
                if 0 <= src < t:
                    want[b, i] += rescaled[b, src] * kern[b, :, j]
    np.testing.assert_allclose(got, want.reshape(x.shape), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_dilated_temporal_conv_matches_numpy(causal):
    layer = tvl.DilatedTemporalConv(3, kernel_size=3, dilation_rate=2, causal=causal)
    x = RNG.normal(size=(2, 7, 4)).astype("float32")
    got = keras.ops.convert_to_numpy(layer(x))
    w, b = [keras.ops.convert_to_numpy(v) for v in layer.weights]
    offsets = [-4, -2, 0] if causal else [-2, 0, 2]
    want = np.tile(b, (2, 7, 1))
    for i in range(7):
        for k, off in enumerate(offsets):
            if 0 <= i + off < 7:
                want[:, i] += x[:, i + off] @ w[k]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    if causal:  # a change in the future leaves the past unchanged
        x2 = x.copy()
        x2[:, 5:] += 1.0
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x2))[:, :5], got[:, :5], atol=1e-6)
    video = RNG.normal(size=(1, 5, 2, 2, 4)).astype("float32")
    assert tuple(layer(video).shape) == (1, 5, 2, 2, 3)


def test_spatial_pyramid_pooling():
    x = RNG.normal(size=(2, 5, 7, 3)).astype("float32")
    layer = tvl.SpatialPyramidPooling(bins=(1, 2))
    got = keras.ops.convert_to_numpy(layer(x))
    assert got.shape == (2, 5 * 3)
    np.testing.assert_allclose(got[:, :3], x.max((1, 2)))
    np.testing.assert_allclose(got[:, 3:6], x[:, 0:3, 0:4].max((1, 2)))  # cell (0, 0): rows [0, 3), cols [0, 4)
    np.testing.assert_allclose(got[:, 12:15], x[:, 2:5, 3:7].max((1, 2)))  # cell (1, 1)
    video = RNG.normal(size=(2, 4, 4, 4, 3)).astype("float32")
    tpp = tvl.SpatialPyramidPooling(bins=(1,), temporal_bins=(1, 2), pooling="avg")
    out = keras.ops.convert_to_numpy(tpp(video))
    assert out.shape == (2, 3 * 3)
    np.testing.assert_allclose(out[:, 3:6], video[:, :2].mean((1, 2, 3)), rtol=1e-5, atol=1e-6)


def test_non_local_block_identity_at_init_and_modes():
    x = RNG.normal(size=(2, 2, 4, 4, 8)).astype("float32")
    for mode in ("embedded_gaussian", "dot_product"):
        layer = tvl.NonLocalBlock(mode)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), x, atol=1e-6)  # zero-init BN scale
    layer = tvl.NonLocalBlock("dot_product", sub_sample=False)
    layer.build(x.shape)
    layer.bn.gamma.assign(np.ones(8, "float32"))
    got = keras.ops.convert_to_numpy(layer(x))
    flat = x.reshape(2, -1, 8)
    th, ph, g = (keras.ops.convert_to_numpy(m(flat)) for m in (layer.theta, layer.phi, layer.g))
    y = np.einsum("bnm,bmc->bnc", np.einsum("bnc,bmc->bnm", th, ph) / flat.shape[1], g)
    z = keras.ops.convert_to_numpy(layer.bn(layer.project(y.reshape(x.shape[:-1] + (4,))))) + x
    np.testing.assert_allclose(got, z, rtol=1e-4, atol=1e-4)


def test_temporal_difference_modules():
    t = 4
    x = RNG.normal(size=(2 * t, 6, 6, 16)).astype("float32")
    layer = tvl.TemporalDifference(t, reduction=4)
    y = keras.ops.convert_to_numpy(layer(x))
    assert y.shape == x.shape
    # Gate in [0.5, 1.5] times the input.
    ratio = y / np.where(np.abs(x) > 1e-3, x, np.nan)
    assert np.nanmin(ratio) >= 0.5 - 1e-4 and np.nanmax(ratio) <= 1.5 + 1e-4
    # The two directions share their weights (the authors' current code): reversing the segments
    # reverses the output. Not a per-frame map: shuffling them does not just shuffle it.
    def reordered(a, order):
        return a.reshape(2, t, 6, 6, 16)[:, order].reshape(x.shape)

    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(reordered(x, [3, 2, 1, 0]))),
                               reordered(y, [3, 2, 1, 0]), atol=1e-5)
    assert not np.allclose(keras.ops.convert_to_numpy(layer(reordered(x, [1, 0, 3, 2]))), reordered(y, [1, 0, 3, 2]),
                           atol=1e-4)
    # The 2020 revision's backward branch re-reads the forward one: no longer symmetric in time.
    old = tvl.TemporalDifference(t, reduction=4, revision="2020")
    old.build(x.shape)
    old.set_weights(layer.get_weights())
    y_old = keras.ops.convert_to_numpy(old(x))
    assert not np.allclose(y_old, y, atol=1e-4)
    assert not np.allclose(keras.ops.convert_to_numpy(old(reordered(x, [3, 2, 1, 0]))), reordered(y_old, [3, 2, 1, 0]),
                           atol=1e-4)
    short = tvl.ShortTermDifference(frames_per_segment=3, filters=5)
    frames = np.tile(RNG.normal(size=(4, 16, 16, 3)).astype("float32"), (1, 1, 1, 3))  # 3 identical frames
    # Zero differences -> conv(0) = 0 -> BN(0) = beta = 0 -> ReLU -> max pool: zeros, at 1/8 resolution.
    still = keras.ops.convert_to_numpy(short(frames))
    assert still.shape == (4, 2, 2, 5) and np.abs(still).max() == 0.0
    moving = RNG.normal(size=(4, 16, 16, 9)).astype("float32")
    assert np.abs(keras.ops.convert_to_numpy(short(moving))).max() > 0.0


def test_learnable_shift_starts_as_tsm_shift():
    from tfvideo.layers._temporal_difference import LearnableTemporalShift

    t = 3
    x = RNG.normal(size=(2 * t, 2, 2, 16)).astype("float32")
    y = keras.ops.convert_to_numpy(LearnableTemporalShift(t)(x)).reshape(2, t, 2, 2, 16)
    clips = x.reshape(2, t, 2, 2, 16)
    np.testing.assert_allclose(y[:, :-1, ..., :2], clips[:, 1:, ..., :2])  # fold 1 reads t + 1
    np.testing.assert_allclose(y[:, -1, ..., :2], 0.0)
    np.testing.assert_allclose(y[:, 1:, ..., 2:4], clips[:, :-1, ..., 2:4])  # fold 2 reads t - 1
    np.testing.assert_allclose(y[..., 4:], clips[..., 4:])


LAYERS = [
    (lambda: tvl.TemporalShift(2), (4, 3, 3, 8)),
    (lambda: tvl.SegmentConsensus("weighted"), (2, 3, 4)),
    (lambda: tvl.TemporalRelation(3, 4, bottleneck=5), (2, 3, 6)),
    (lambda: tvl.TemporalAdaptive(2), (4, 3, 3, 8)),
    (lambda: tvl.TemporalDifference(2, reduction=2), (4, 4, 4, 8)),
    (lambda: tvl.TemporalDifference(2, reduction=2), (4, 5, 5, 8)),  # odd size: pooled branch resized 2 -> 5
    (lambda: tvl.ShortTermDifference(3, filters=4), (2, 16, 16, 9)),
    (lambda: tvl.NonLocalBlock("dot_product"), (2, 2, 4, 4, 8)),
    (lambda: tvl.DilatedTemporalConv(3, dilation_rate=2, causal=True, activation="relu"), (2, 5, 4)),
    (lambda: tvl.SpatialPyramidPooling((1, 2), temporal_bins=(1, 2)), (2, 4, 4, 4, 3)),
]


@pytest.mark.parametrize("index", range(len(LAYERS)))
def test_config_and_keras_file_round_trip(index, tmp_path):
    make, shape = LAYERS[index]
    layer = make()
    x = RNG.normal(size=shape).astype("float32")
    inputs = keras.Input(shape[1:], batch_size=shape[0])
    model = keras.Model(inputs, layer(inputs))
    want = keras.ops.convert_to_numpy(model(x))
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), want, rtol=1e-5, atol=1e-5)
