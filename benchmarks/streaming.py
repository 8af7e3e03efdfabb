"""Streaming throughput of online detectors: chunks/s of `step` at batch 1 and 64 streams.

Runs each detector's compiled `step` (what the streaming SavedModel serves) on random
chunk features, pinned to --threads CPU threads (default 1: "one core"), and reports
chunks/s, the ratio to the GRU baseline measured in the same run, and how many live
streams at --chunks_per_second (THUMOS features: 4 chunks/s) one core serves in real time;
once per wall second and once per CPU second of the process (what one idle core would do;
the wall figures follow the load of other jobs on a shared machine).

  PYTHONPATH=$PWD python benchmarks/streaming.py [--models=trn,idn,oadtr,gru] [--feature_dim=4096]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def measure(model, batch, min_seconds):
    import numpy as np
    import tensorflow as tf

    spec = tf.TensorSpec([batch, model.feature_dim], tf.float32)
    state_spec = {n: tf.TensorSpec([batch, *s], tf.float32) for n, s in model.state_shapes().items()}
    step = tf.function(lambda c, s: model.step(c, s), input_signature=[spec, state_spec])
    chunk = tf.constant(np.random.default_rng(0).normal(size=(batch, model.feature_dim)).astype("float32"))
    state = model.init_state(batch)
    for _ in range(3):  # Trace and warm up.
        scores, state = step(chunk, state)
    steps, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while True:
        scores, state = step(chunk, state)
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and steps >= 3:
            break
    scores.numpy()
    cpu = time.process_time() - cpu_start
    # Chunks per CPU second too: on a shared machine the wall rate follows the other jobs' load.
    return steps * batch / elapsed, steps * batch / cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gru,trn,idn,oadtr", help="tfvideo.online.list_detectors() names")
    parser.add_argument("--feature_dim", type=int, default=4096, help="chunk feature width (TSN RGB+flow: 4096)")
    parser.add_argument("--num_columns", type=int, default=22, help="score columns (THUMOS'14: 20 + bg + ambiguous)")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads TensorFlow may use")
    parser.add_argument("--min_seconds", type=float, default=2.0, help="timing budget per measurement")
    parser.add_argument("--chunks_per_second", type=float, default=4.0, help="chunk rate of one live stream")
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    from tfvideo import online

    keras.utils.set_random_seed(0)
    batches = [int(b) for b in args.batches.split(",")]
    names = args.models.split(",")
    rates, cpu_rates = {}, {}
    for name in names:
        model = online.get_detector(name, args.feature_dim, args.num_columns)
        for batch in batches:
            rates[name, batch], cpu_rates[name, batch] = measure(model, batch, args.min_seconds)
    baseline = names[0]
    print(f"threads={args.threads} feature_dim={args.feature_dim} K={args.num_columns}; "
          f"ratios vs {baseline} at the same batch; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for title, table in (("wall", rates), ("per CPU second (process time)", cpu_rates)):
        print(f"chunks/s, {title}")
        print(f"{'model':8s} " + " ".join(f"{'b=' + str(b) + ' chunks/s':>16s} {'ratio':>6s}" for b in batches)
              + f" {'streams@' + str(args.chunks_per_second) + '/s':>14s}")
        for name in names:
            cells = " ".join(f"{table[name, b]:16.1f} {table[name, b] / table[baseline, b]:6.2f}" for b in batches)
            best = max(table[name, b] for b in batches)
            print(f"{name:8s} {cells} {int(best // args.chunks_per_second):14d}")


if __name__ == "__main__":
    main()
