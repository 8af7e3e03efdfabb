"""Learning check for online detectors on onset-only synthetic streams.

An action's class is visible only at its onset chunk; later chunks are shared by all
classes. Detectors with history should reach per-frame mAP >= 0.8; the memoryless
per-chunk classifier should stay below 0.4.

  PYTHONPATH=$PWD python benchmarks/online_learning_check.py [--models=gru_tiny,trn_tiny,...] [--epochs=N]
"""

import argparse
import time

import numpy as np


def train_and_score(name, train, test, epochs, history, seed=0):
    import keras

    from tfvideo import data, metrics, online

    keras.utils.set_random_seed(seed)
    d, k = train[0][0].shape[1], train[0][1].shape[1]
    model = online.get_detector(name, d, k)
    steps = getattr(model, "decoder_steps", 0) if model.anticipates else 0
    ds = data.feature_window_dataset(train, history=history, stride=history // 2, batch_size=16,
                                     anticipation_steps=steps, seed=seed,
                                     context=getattr(model, "training_context", 0))
    losses = {"scores": online.SoftTargetCrossEntropy()}
    if steps:
        losses["anticipation"] = online.SoftTargetCrossEntropy()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=losses,
                  loss_weights={"scores": 1.0, "anticipation": model.anticipation_weight} if steps else None)
    start = time.time()
    model.fit(ds, epochs=epochs, verbose=0, shuffle=False)
    seconds = time.time() - start
    scores = [online.score_sequence(model, f) for f, _ in test]
    mean_ap, _ = metrics.per_frame_map(scores, [y for _, y in test])
    mean_cap, _ = metrics.calibrated_map(scores, [y for _, y in test])
    return mean_ap, mean_cap, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="chunk_mlp_tiny,gru_tiny,trn_tiny,idn_tiny,oadtr_tiny")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--history", type=int, default=16, help="training window length (chunks)")
    parser.add_argument("--train_streams", type=int, default=48)
    parser.add_argument("--test_streams", type=int, default=16)
    args = parser.parse_args()

    from tfvideo import online

    train = online.make_onset_streams(args.train_streams, seed=0)
    test = online.make_onset_streams(args.test_streams, seed=1)
    print(f"{'model':16s} {'per-frame mAP':>14s} {'mcAP':>8s} {'train s':>8s}")
    results = {}
    for name in args.models.split(","):
        mean_ap, mean_cap, seconds = train_and_score(name, train, test, args.epochs, args.history)
        results[name] = mean_ap
        print(f"{name:16s} {mean_ap:14.3f} {mean_cap:8.3f} {seconds:8.1f}")
    memoryless = [v for k, v in results.items() if k.startswith("chunk_mlp")]
    with_history = [v for k, v in results.items() if not k.startswith("chunk_mlp")]
    if memoryless and with_history:
        print(f"history models min mAP {min(with_history):.3f} (target >= 0.8); "
              f"memoryless mAP {max(memoryless):.3f} (target < 0.4)")
    return results


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
