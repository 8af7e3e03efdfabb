"""Peak memory and step time of an I3D-R50 training step with and without remat, in one run.

  python benchmarks/remat.py                            # i3d_r50, batch 8, 8x112x112
  python benchmarks/remat.py --batch=2                  # weights and gradients weigh more
  python benchmarks/remat.py --model=tsm_r50 --size=160

Both variants are built in this process from the same weights and their training steps
(forward, backward, SGD update, in a tf.function) alternate, so a noisy spell on a shared
machine hits both alike; the fastest step of each is kept. Memory is read from the TensorFlow
allocator (`tf.config.experimental.get_memory_info` of GPU:0, or CPU:0 without a GPU): for each
variant, the peak during its step minus what was live before it ("step"), plus the bytes of one
model's state (weights, optimizer slots, input clip) gives that variant's training peak.
Variants:
  none    no rematerialization;
  remat   `tfvideo-train --remat` (trainers/_remat.py): only residual-block outputs are kept,
          each segment between two is recomputed in the backward pass.
Target: remat cuts peak training memory by >= 40% at <= 35% more step time.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# CPU allocator statistics exist only with the BFC CPU allocator, chosen before TensorFlow loads.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvideo import models  # noqa: E402
from trainers import _remat  # noqa: E402


def _variant(args, remat, video, label):
    keras.utils.set_random_seed(0)
    size_kwarg = "num_frames" if args.model.startswith("i3d") else "num_segments"
    model = models.get(args.model, num_classes=args.num_classes, **{size_kwarg: args.frames})
    model.build(video.shape)
    segments = _remat.apply_remat(model) if remat else 0
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=args.jit)
    def step():
        with tf.GradientTape() as tape:
            logits = model(video, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(label, logits, from_logits=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    state = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.variables + optimizer.variables)
    return {"step": step, "segments": segments, "state_bytes": state + video.dtype.size * int(np.prod(video.shape)),
            "times": [], "step_bytes": 0}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="i3d_r50", help="a tfvideo.models preset name")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--num_classes", type=int, default=400)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant")
    parser.add_argument("--jit", action="store_true", help="XLA-compile the step")
    args = parser.parse_args()

    device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    shape = (args.batch, 1, args.frames, args.size, args.size, 3)
    video = tf.random.stateless_normal(shape, seed=[0, 1])
    label = tf.zeros([args.batch], tf.int32)
    variants = {"none": _variant(args, False, video, label), "remat": _variant(args, True, video, label)}
    losses = {name: float(v["step"]()) for name, v in variants.items()}  # Trace + first step.
    for _ in range(args.steps):
        for v in variants.values():
            tf.config.experimental.reset_memory_stats(device)
            before = tf.config.experimental.get_memory_info(device)["current"]
            tic = time.perf_counter()
            v["step"]().numpy()
            v["times"].append(time.perf_counter() - tic)
            v["step_bytes"] = max(v["step_bytes"], tf.config.experimental.get_memory_info(device)["peak"] - before)

    print(f"model={args.model} batch={args.batch} frames={args.frames} size={args.size} steps={args.steps} "
          f"device={device} jit={args.jit} remat segments={variants['remat']['segments']}")
    print(f"first-step loss: none {losses['none']:.6f}, remat {losses['remat']:.6f} (same weights, same clip)")
    cols = ("step s", "state MiB", "step MiB", "peak MiB", "peak ratio", "time ratio")
    print(f"{'variant':8s} " + " ".join(f"{c:>11s}" for c in cols))
    base = variants["none"]
    for name, v in variants.items():
        peak, base_peak = v["state_bytes"] + v["step_bytes"], base["state_bytes"] + base["step_bytes"]
        values = (f"{min(v['times']):.3f}", f"{v['state_bytes'] / 2**20:.0f}", f"{v['step_bytes'] / 2**20:.0f}",
                  f"{peak / 2**20:.0f}", f"{peak / base_peak:.2f}", f"{min(v['times']) / min(base['times']):.2f}")
        print(f"{name:8s} " + " ".join(f"{x:>11s}" for x in values))


if __name__ == "__main__":
    main()
