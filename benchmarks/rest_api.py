"""REST API vs gRPC latency of the same tfvideo-serve (one subprocess, both APIs on loopback).

Exports a randomly initialised model with `frames` and `jpeg_frames` signatures, starts
`tfvideo-serve --rest_api_port` and measures p50/p99 latency of Predict, one client at a
time, for: the in-process SavedModel call, gRPC (`tfvideo.serving.Client`), and REST with a
plain `http.client` connection (JSON numbers for `frames`, base64 JPEGs for `jpeg_frames`).
The REST overhead over gRPC is mostly JSON: encoding/decoding a uint8 clip as text numbers.

  python benchmarks/rest_api.py --model=tsm_tiny --size=64 --requests=30      # quick
  python benchmarks/rest_api.py --model=tsm_r50 --size=224 --requests=10
"""

import base64
import http.client
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "tsm_tiny", "Model preset.")
flags.DEFINE_integer("size", 64, "Frame height = width = crop size.")
flags.DEFINE_integer("frames", 8, "Frames per clip (the TSM segments).")
flags.DEFINE_integer("num_classes", 400, "Classifier outputs.")
flags.DEFINE_integer("requests", 30, "Timed requests per path.")
flags.DEFINE_integer("warmup", 3, "Untimed requests per path first.")


def _p50_p99(call, requests, warmup):
    for _ in range(warmup):
        call()
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(base_path, rest_port):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)  # noqa: SIM115 -- kept for the run.
    proc = subprocess.Popen(
        [sys.executable, "-m", "export.serve", f"--model_base_path={base_path}", "--model_name=bench", "--port=0",
         f"--rest_api_port={rest_port}", "--max_request_bytes=1000000000"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=ROOT,
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    first, second = lines.get(timeout=600), lines.get(timeout=60)
    if not second.startswith("tfvideo-serve: REST API"):
        proc.kill()
        raise RuntimeError(f"server did not start: {first!r} {second!r}; see {log.name}")
    return proc, first.strip().rsplit(" ", 1)[1]


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    from tfvideo import export as tfv_export
    from tfvideo import models, serving
    from tfvideo.serving._client import encode_jpeg_frames
    from trainers import _experiment

    keras.utils.set_random_seed(0)
    config = _experiment.ExperimentConfig(
        model=FLAGS.model, num_classes=FLAGS.num_classes,
        sampler={"type": "segment", "num_segments": FLAGS.frames},
        preprocess={"crop_size": FLAGS.size, "resize_short": FLAGS.size},
    )
    model = models.get(FLAGS.model, num_classes=FLAGS.num_classes, num_segments=FLAGS.frames)
    model(np.zeros((1, FLAGS.frames, FLAGS.size, FLAGS.size, 3), np.float32))
    root = tempfile.mkdtemp(prefix="tfvideo-bench-rest-")
    result = tfv_export.export_saved_model(root, model=model, config=config, model_name="bench",
                                           input_types=["frames", "jpeg_frames"])
    clip = np.random.default_rng(0).integers(0, 256, size=(1, FLAGS.frames, FLAGS.size, FLAGS.size, 3), dtype=np.uint8)
    jpegs = np.array([encode_jpeg_frames(clip[0])], dtype=object)
    inputs = {"frames": {"frames": clip}, "jpeg_frames": {"jpeg_frames": jpegs}}
    bodies = {
        "frames": json.dumps({"signature_name": "frames", "inputs": clip.tolist()}).encode(),
        "jpeg_frames": json.dumps({"signature_name": "jpeg_frames",
                                   "inputs": [[{"b64": base64.b64encode(j).decode()} for j in jpegs[0]]]}).encode(),
    }
    saved = tf.saved_model.load(result.path)

    rest_port = _free_port()
    proc, target = _start_server(os.path.dirname(result.path), rest_port)
    rows, max_diff = [], 0.0
    try:
        client = serving.Client(target, timeout=600)
        connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=600)

        def over_rest(body):
            connection.request("POST", "/v1/models/bench:predict", body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            data = answer.read()
            assert answer.status == 200, data[:300]
            return np.asarray(json.loads(data)["outputs"]["probabilities"], np.float32)

        for signature in ("frames", "jpeg_frames"):
            function = saved.signatures[signature]
            tensors = {k: tf.constant(v) for k, v in inputs[signature].items()}
            expected = function(**tensors)["probabilities"].numpy()
            over_grpc = client.predict("bench", inputs[signature], signature_name=signature)["probabilities"]
            max_diff = max(max_diff, float(np.abs(over_grpc - expected).max()),
                           float(np.abs(over_rest(bodies[signature]) - expected).max()))
            paths = (
                ("in-process", lambda f=function, t=tensors: f(**t)["probabilities"].numpy()),
                ("gRPC", lambda s=signature: client.predict("bench", inputs[s], signature_name=s,
                                                            output_filter=["probabilities"])),
                ("REST", lambda s=signature: over_rest(bodies[s])),
            )
            for name, call in paths:
                rows.append((signature, name, *_p50_p99(call, FLAGS.requests, FLAGS.warmup)))
        connection.close()
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    print(f"model={FLAGS.model} clip={FLAGS.frames}x{FLAGS.size}x{FLAGS.size} requests={FLAGS.requests} "
          f"cpus={os.cpu_count()} max|served-in_process|={max_diff:.2e}")
    print(f"REST bodies: frames {len(bodies['frames'])} bytes of JSON for a {clip.nbytes}-byte clip; "
          f"jpeg_frames {len(bodies['jpeg_frames'])} bytes")
    print(f"{'signature':>11} {'path':>10} {'p50 ms':>9} {'p99 ms':>9}")
    for signature, name, p50, p99 in rows:
        print(f"{signature:>11} {name:>10} {p50:>9.2f} {p99:>9.2f}")
    base = {(s, n): p50 for s, n, p50, _ in rows}
    for signature in ("frames", "jpeg_frames"):
        grpc_p50, rest_p50 = base[(signature, "gRPC")], base[(signature, "REST")]
        print(f"{signature}: REST p50 {rest_p50 - grpc_p50:+.2f} ms vs gRPC ({rest_p50 / grpc_p50:.2f}x)")


if __name__ == "__main__":
    app.run(main)
