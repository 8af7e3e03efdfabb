"""Learning check: on onset-only streams, memory helps and a memoryless classifier fails."""

import pytest

from tfvideo import data, metrics, online


def _train_map(name, train, test, epochs=10):
    import keras

    keras.utils.set_random_seed(0)
    model = online.get_detector(name, train[0][0].shape[1], train[0][1].shape[1])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss={"scores": online.SoftTargetCrossEntropy()})
    model.fit(data.feature_window_dataset(train, history=16, stride=8, batch_size=16), epochs=epochs, verbose=0, shuffle=False)
    scores = [online.score_sequence(model, f) for f, _ in test]
    return metrics.per_frame_map(scores, [y for _, y in test])[0]


@pytest.mark.slow
def test_history_beats_memoryless_on_onset_streams():
    train = online.make_onset_streams(32, seed=0)
    test = online.make_onset_streams(8, seed=1)
    assert _train_map("gru_tiny", train, test) >= 0.8
    assert _train_map("chunk_mlp_tiny", train, test) < 0.4


def test_onset_streams_hide_the_class_after_the_onset():
    (features, targets), = online.make_onset_streams(1, num_chunks=40, noise=0.0, seed=3)
    labels = targets.argmax(1)
    inside = [t for t in range(1, 40) if labels[t] > 0 and labels[t - 1] == labels[t]]
    assert inside, "the stream should hold at least one action longer than a chunk"
    # All non-onset action chunks are identical whatever their class.
    for t in inside:
        assert (features[t] == features[inside[0]]).all()
