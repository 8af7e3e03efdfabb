"""Throughput and FLOPs of the standard recognizers: TSN-R50, TSM-R50 (8x224), I3D-R50 (32x224).

For each model: forward and train-step clips/s with XLA (jit_compile) off and on, and
FLOPs per clip counted from the TensorFlow graph (tf.profiler float-operation count of
a concrete function of the forward pass; a multiply-add counts 2), printed next to the
published multiply-add counts ("FLOPs" in the papers are multiply-adds). Timings are
not asserted anywhere; ratios are taken against XLA-off measured in the same run.

    PYTHONPATH=$PWD python benchmarks/models.py --size=112 --batch=1 --steps=3   # CPU, minutes
    KERAS_BACKEND=jax python benchmarks/models.py --size=224 --batch=8 --flops=false  # on a GPU
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from absl import app, flags

from tfvideo import models

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["tsn_r50", "tsm_r50", "i3d_r50"], "Presets to benchmark.")
flags.DEFINE_integer("size", 224, "Input height and width of the timed runs.")
flags.DEFINE_integer("batch", 2, "Clips per batch.")
flags.DEFINE_integer("steps", 5, "Timed steps (after one warm-up step).")
flags.DEFINE_integer("num_classes", 400, "Classifier outputs.")
flags.DEFINE_bool("flops", True, "Count FLOPs from the TF graph at 224x224 (TensorFlow backend only).")
flags.DEFINE_list("xla", ["off", "on"], "jit_compile settings to time.")
flags.DEFINE_list("flops_only", ["i3d_inception_v1"], "Presets whose FLOPs are counted but not timed.")

# Published multiply-adds per clip (G) at 224x224, their source, and preset overrides to match it.
PUBLISHED_GMACS = {
    "tsn_r50": (33.0, "TSM paper (Lin et al. ICCV 2019): TSN ResNet-50, 8 frames, 33G", {}),
    "tsm_r50": (33.0, "TSM paper (Lin et al. ICCV 2019): TSM ResNet-50, 8 frames, 33G; mmaction2 32.88G", {}),
    "i3d_r50": (None, "not compared (no verified published figure for this exact 3x1x1 configuration)", {}),
    "i3d_inception_v1": (278.981 / 2, "OpenVINO OMZ i3d-rgb-tf (DeepMind I3D RGB): 278.981 GFLOPs at 79x224x224",
                         {"num_frames": 79}),
}


def clip_frames(model):
    return model.num_frames if isinstance(model, models.I3D) else model.clip_length


def graph_flops(name, size=224, **overrides):
    """FLOPs of one clip's forward pass counted by tf.profiler on the traced graph."""
    import tensorflow as tf

    model = models.get(name, num_classes=FLAGS.num_classes, **overrides)
    spec = tf.TensorSpec((1, clip_frames(model), size, size, 3), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def time_model(name, jit):
    keras.utils.set_random_seed(0)
    model = models.get(name, num_classes=FLAGS.num_classes)
    x = np.random.default_rng(0).normal(size=(FLAGS.batch, clip_frames(model), FLAGS.size, FLAGS.size, 3))
    x = x.astype("float32")
    y = np.arange(FLAGS.batch) % FLAGS.num_classes
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
    rates = {}
    for kind, step in (("forward", lambda: model.predict_on_batch(x)), ("train", lambda: model.train_on_batch(x, y))):
        step()  # warm-up: tracing and (with XLA) compilation
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            out = step()
        keras.ops.convert_to_numpy(out if kind == "forward" else np.asarray(out))
        rates[kind] = FLAGS.steps * FLAGS.batch / (time.perf_counter() - start)
    return rates


def main(argv):
    del argv
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # retracing notes: each timed model traces its own functions
    print(f"backend={keras.backend.backend()} batch={FLAGS.batch} size={FLAGS.size} steps={FLAGS.steps}")
    print(f"{'model':<10}{'xla':>5}{'fwd clips/s':>13}{'train clips/s':>15}{'fwd vs off':>12}{'train vs off':>14}")
    for name in FLAGS.models:
        base = None
        for setting in FLAGS.xla:
            rates = time_model(name, setting == "on")
            base = base or rates
            print(f"{name:<10}{setting:>5}{rates['forward']:>13.2f}{rates['train']:>15.2f}"
                  f"{rates['forward'] / base['forward']:>11.2f}x{rates['train'] / base['train']:>13.2f}x", flush=True)
        if FLAGS.flops:
            print_flops(name)
    for name in FLAGS.flops_only:
        print_flops(name)


def print_flops(name):
    if keras.backend.backend() != "tensorflow":
        return
    published, source, overrides = PUBLISHED_GMACS.get(name, (None, "", {}))
    flops = graph_flops(name, **overrides)
    gmacs = flops / 2e9
    ratio = f" ({gmacs / published:.3f}x published {published:.1f}G)" if published else ""
    shape = f"{overrides['num_frames']} frames, " if "num_frames" in overrides else ""
    print(f"{name:<10} graph: {flops / 1e9:.1f} GFLOPs = {gmacs:.1f} GMACs per clip ({shape}224x224){ratio}; {source}",
          flush=True)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
