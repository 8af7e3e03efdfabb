"""Streaming online TSM with LiteRT on one CPU core: frames/s, float32 and int8, against two baselines.

Converts, at --size (default 224) and 1 interpreter thread, with the process pinned to one core:
  * the streaming step of tsm_mobilenetv2_online (one frame in, shift buffers in and out),
    float32 and int8 (calibrated on a few random frames: the speed does not depend on it);
  * a single 2D MobileNetV2 frame (tsn_mobilenetv2's backbone + classifier on one frame: no shift);
  * the offline TSM-MobileNetV2 on an 8-frame window, what recomputing the window at every
    new frame costs per frame.
and prints ms/frame and frames/s per wall second and per CPU second of the process (the
wall figures follow the load of other jobs on a shared machine), with the ratios the
issue's targets name (streaming / 2D frame <= 1.15; window / streaming >= 6).

  PYTHONPATH=$PWD python benchmarks/online_tsm_litert.py [--size=224] [--seconds=3]
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def _convert(function, specs, int8_data=None):
    """LiteRT flatbuffer of a tf.function over `specs` (variables frozen first, as the export does)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(tf.function(function, input_signature=specs).get_concrete_function())
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(tf.Module(), tmp, signatures={"f": tf.function(lambda *a: frozen(*a), input_signature=specs)})
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["f"])
        if int8_data is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = int8_data
        return converter.convert()


def _time(flatbuffer, inputs, seconds, feedback=None):
    """(wall ms, CPU ms) per call of the model's only signature, at one thread."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
    runner = interpreter.get_signature_runner()
    for _ in range(3):
        out = runner(**inputs)
    calls, start, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        out = runner(**inputs)
        if feedback:
            inputs = {**inputs, **feedback(out)}
        calls += 1
        if time.perf_counter() - start >= seconds and calls >= 3:
            break
    return (time.perf_counter() - start) / calls * 1e3, (time.process_time() - cpu) / calls * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seconds", type=float, default=3.0, help="Timed seconds per model.")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    import numpy as np
    import tensorflow as tf

    from tfvideo import data, models
    from tfvideo.export import _stream_recognizer

    size, rng = args.size, np.random.default_rng(0)
    frame = rng.uniform(0, 255, (1, size, size, 3)).astype("float32")
    online = models.get("tsm_mobilenetv2_online", num_classes=400)
    online.build((None, 8, size, size, 3))
    stream = models.StreamingRecognizer(online, (size, size), average_last=8)
    module = _stream_recognizer._Module(stream, data.PreprocessConfig().mean, data.PreprocessConfig().std, 1)
    state = {k: v.numpy() for k, v in module._init(1).items()}
    inputs = {"frame": frame, **state}

    def calibration():
        for _ in range(4):
            yield {"frame": rng.uniform(0, 255, (1, size, size, 3)).astype("float32"), **state}

    def feedback(out):
        return {k: v for k, v in out.items() if k.startswith("state_")}

    results = {}
    for name, int8 in (("streaming float32", None), ("streaming int8", calibration)):
        flat = _convert(module._step, module._specs, int8)
        results[name] = _time(flat, inputs, args.seconds, feedback)

    tsn = models.get("tsn_mobilenetv2", num_classes=400)
    tsn.build((None, 8, size, size, 3))

    def one_frame(x):
        return tsn.classifier(tsn.pool(tsn.backbone(x, training=False)))

    flat = _convert(one_frame, [tf.TensorSpec([1, size, size, 3], tf.float32, name="frame")])
    results["2D MobileNetV2 frame float32"] = _time(flat, {"frame": frame}, args.seconds)

    offline = models.get("tsm_mobilenetv2", num_classes=400)
    offline.build((None, 8, size, size, 3))
    flat = _convert(lambda x: offline(x, training=False), [tf.TensorSpec([1, 8, size, size, 3], tf.float32, name="clip")])
    results["8-frame window float32"] = _time(flat, {"clip": np.repeat(frame[:, None], 8, 1)}, args.seconds)

    print(f"TSM-MobileNetV2 {size}x{size}, 400 classes, LiteRT (ai-edge-litert), 1 thread, 1 core")
    print(f"{'model':32s} {'ms/frame':>9s} {'frames/s':>9s} {'CPU ms':>8s} {'frames/CPU s':>13s}")
    for name, (wall, cpu) in results.items():
        print(f"{name:32s} {wall:9.2f} {1e3 / wall:9.1f} {cpu:8.2f} {1e3 / cpu:13.1f}")
    s_wall, s_cpu = results["streaming float32"]
    f_wall, f_cpu = results["2D MobileNetV2 frame float32"]
    w_wall, w_cpu = results["8-frame window float32"]
    q_wall, q_cpu = results["streaming int8"]
    print(f"streaming / 2D frame: {s_wall / f_wall:.2f}x wall, {s_cpu / f_cpu:.2f}x CPU (target <= 1.15)")
    print(f"8-frame window / streaming: {w_wall / s_wall:.1f}x wall, {w_cpu / s_cpu:.1f}x CPU (target >= 6)")
    print(f"int8 / float32 streaming: {q_wall / s_wall:.2f}x wall, {q_cpu / s_cpu:.2f}x CPU")


if __name__ == "__main__":
    main()
