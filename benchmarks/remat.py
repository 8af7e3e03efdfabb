"""Peak memory and step time of an I3D-R50-like training step with and without remat.

  python benchmarks/remat.py                       # CPU: process peak RSS per variant
  python benchmarks/remat.py --model=tsm_r50 --frames=8 --size=112

Each variant runs in its own subprocess (peak RSS is per process); on a GPU the device's
peak memory (tf.config.experimental.get_memory_info) is reported instead. Variants are the
trainer's `--remat_mode`s (trainers/_remat.py):
  none    no rematerialization;
  blocks  segments between residual-block outputs recomputed in the backward pass
          (`tfvideo-train --remat`);
  layers  every layer recomputed on its own (`--remat --remat_mode=layers`).
Target: remat cuts peak training memory by >= 40% at <= 35% more step time.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _i3d_r50(num_classes, width):
    """A flat Functional 3D ResNet-50 (I3D-style inflation: 3x1x1 kernels in alternate blocks)."""
    import keras
    from keras import layers

    def conv_bn(x, filters, kernel, stride, relu=True):
        x = layers.Conv3D(filters, kernel, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x) if relu else x

    inputs = keras.Input((None, None, None, 3))
    x = conv_bn(inputs, width, (5, 7, 7), (1, 2, 2))
    x = layers.MaxPooling3D((1, 3, 3), strides=(1, 2, 2), padding="same")(x)
    for stage, count in enumerate((3, 4, 6, 3)):
        filters = width * 2**stage
        for b in range(count):
            stride = (1, 2, 2) if (b == 0 and stage > 0) else 1
            shortcut = conv_bn(x, filters * 4, 1, stride, relu=False) if b == 0 else x
            y = conv_bn(x, filters, (3 if b % 2 == 0 else 1, 1, 1), 1)
            y = conv_bn(y, filters, (1, 3, 3), stride)
            y = conv_bn(y, filters * 4, 1, 1, relu=False)
            x = layers.ReLU()(layers.Add()([shortcut, y]))
    x = layers.GlobalAveragePooling3D()(x)
    return keras.Model(inputs, layers.Dense(num_classes)(x))


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_variant(args):
    """One variant in this process: prints a JSON line with step time and memory."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    gpus = tf.config.list_physical_devices("GPU")
    if args.model == "i3d_r50":
        model = _i3d_r50(args.num_classes, args.width)
        shape = (args.batch, args.frames, args.size, args.size, 3)
    else:
        from tfvideo import models

        model = models.get(args.model, num_classes=args.num_classes, num_segments=args.frames)
        shape = (args.batch, 1, args.frames, args.size, args.size, 3)
    model.build(shape)
    if args.variant != "none":
        from trainers import _remat

        _remat.apply_remat(model, args.variant)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    video = tf.random.stateless_normal(shape, seed=[0, 1])
    label = tf.zeros([args.batch], tf.int32)

    @tf.function(jit_compile=args.jit)
    def step():
        with tf.GradientTape() as tape:
            logits = model(video, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(label, logits, from_logits=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    model(video[:1], training=False)
    optimizer.build(model.trainable_variables)
    base = _rss_bytes()
    if gpus:
        tf.config.experimental.reset_memory_stats("GPU:0")
    step().numpy()  # Trace + first step.
    times = []
    for _ in range(args.steps):
        tic = time.perf_counter()
        step().numpy()
        times.append(time.perf_counter() - tic)
    out = {"variant": args.variant, "step_s": sorted(times)[len(times) // 2], "device": "GPU" if gpus else "CPU"}
    if gpus:
        out["peak_bytes"] = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        out["train_bytes"] = out["peak_bytes"]
    else:
        out["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out["train_bytes"] = out["peak_bytes"] - base
    print("RESULT " + json.dumps(out), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="i3d_r50", help="i3d_r50 (built here) or a tfvideo preset name")
    parser.add_argument("--variants", default="none,blocks,layers")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--num_classes", type=int, default=400)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return run_variant(args)
    results = {}
    for variant in args.variants.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--variant", variant] + [
            a for a in sys.argv[1:] if not a.startswith("--variants")]
        env = {**os.environ, "PYTHONPATH": _REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(f"{variant}: failed\n{proc.stderr[-2000:]}")
            continue
        results[variant] = json.loads(lines[0][len("RESULT "):])
    print(f"model={args.model} batch={args.batch} frames={args.frames} size={args.size} width={args.width}")
    print(f"{'variant':8s} {'step s':>8s} {'peak MiB':>9s} {'train MiB':>10s} {'peak ratio':>10s} "
          f"{'train ratio':>11s} {'time ratio':>10s}")
    base = results.get("none")
    for variant, r in results.items():
        ratios = ("", "", "")
        if base:
            ratios = (f"{r['peak_bytes'] / base['peak_bytes']:.2f}", f"{r['train_bytes'] / base['train_bytes']:.2f}",
                      f"{r['step_s'] / base['step_s']:.2f}")
        print(f"{variant:8s} {r['step_s']:8.3f} {r['peak_bytes'] / 2**20:9.0f} {r['train_bytes'] / 2**20:10.0f} "
              f"{ratios[0]:>10s} {ratios[1]:>11s} {ratios[2]:>10s}  ({r['device']})")


if __name__ == "__main__":
    main()
