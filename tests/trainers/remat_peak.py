"""Peak TensorFlow CPU-allocator bytes of one training step, without and with remat; prints JSON.

Run by test_trainers_units.py in its own process: the BFC CPU allocator, which alone keeps the
statistics read here, must be switched on before TensorFlow loads (TF_CPU_ALLOCATOR_USE_BFC).
"""

import json
import os

os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvideo import _experiment  # noqa: E402
from trainers import _task  # noqa: E402


def _config(remat):
    return _experiment.ExperimentConfig(
        model="tsm_tiny", num_classes=4,
        model_kwargs={"num_segments": 4, "dropout": 0.0, "backbone": "resnet18"},  # Two blocks a stage: 10 segments.
        sampler={"type": "segment", "num_segments": 4}, preprocess={"crop_size": 64, "resize_short": 64},
        train={"remat": True} if remat else {})


def step_peak_bytes(model, video, label):
    """The allocator's peak during one compiled training step, minus what was live before (min of 3)."""
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(_task.per_example_loss(label, model(video, training=True)))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    step()  # Trace and run once: graph building is not the step's memory.
    peaks = []
    for _ in range(3):  # The peak depends a little on the order parallel ops happen to run in.
        tf.config.experimental.reset_memory_stats("CPU:0")
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        step().numpy()
        peaks.append(tf.config.experimental.get_memory_info("CPU:0")["peak"] - before)
    return min(peaks)


def main():
    keras.utils.set_random_seed(0)
    video = tf.random.stateless_normal([4, 1, 4, 64, 64, 3], seed=[1, 2])
    label = tf.constant([0, 1, 2, 3])
    plain = step_peak_bytes(_task.build_model(_config(False)), video, label)
    remat = step_peak_bytes(_task.build_model(_config(True)), video, label)
    print(json.dumps({"plain": plain, "remat": remat}))


if __name__ == "__main__":
    main()
