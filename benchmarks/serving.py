"""Serving latency: gRPC and REST (tfvideo-serve on loopback) vs the in-process SavedModel call.

Exports a randomly initialised model, starts `tfvideo-serve` (gRPC and `--rest_api_port`) in a
subprocess on free 127.0.0.1 ports and measures, for 1 and --concurrency clients, p50/p99
latency and requests/s of Predict, next to the same signature called in-process in this run.
The serving overhead (gRPC + serialization + request checks) is `served p50 - in-process p50`
with one client; target: <= 15% of the in-process p50 for TSM 8x224x224 clips. The REST rows
send the same inputs as TF Serving's JSON (`frames`: numbers; `jpeg_frames`: base64) with a
plain `http.client` connection per client.

  python benchmarks/serving.py                               # tsm_r50, 8x224x224 (slow on CPU)
  python benchmarks/serving.py --model=tsm_tiny --size=64 --requests=40   # a quick run
"""

import base64
import concurrent.futures
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
flags.DEFINE_string("model", "tsm_r50", "Model preset.")
flags.DEFINE_integer("size", 224, "Frame height = width = crop size.")
flags.DEFINE_integer("frames", 8, "Frames per clip (the TSM segments).")
flags.DEFINE_integer("num_classes", 400, "Classifier outputs.")
flags.DEFINE_enum("signature", "frames", ["frames", "jpeg_frames"], "Signature measured.")
flags.DEFINE_integer("requests", 30, "Timed requests per client.")
flags.DEFINE_integer("warmup", 3, "Untimed requests per client first.")
flags.DEFINE_integer("concurrency", 8, "Concurrent clients of the second measurement.")


def _percentiles(seconds):
    ms = np.asarray(seconds) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _measure(call, clients, requests, warmup):
    """Runs `call()` `requests` times in each of `clients` threads: (latencies, wall seconds)."""
    barrier = threading.Barrier(clients)

    def worker():
        for _ in range(warmup):
            call()
        barrier.wait()
        latencies = []
        start = time.perf_counter()
        for _ in range(requests):
            t = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - t)
        return latencies, start, time.perf_counter()

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = [f.result() for f in [pool.submit(worker) for _ in range(clients)]]
    latencies = [x for r in results for x in r[0]]
    wall = max(r[2] for r in results) - min(r[1] for r in results)
    return latencies, wall


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(base_path, workers, rest_port):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)  # noqa: SIM115 -- kept for the run.
    proc = subprocess.Popen(
        [sys.executable, "-m", "export.serve", f"--model_base_path={base_path}", "--model_name=bench", "--port=0",
         f"--max_workers={workers}", "--max_request_bytes=1000000000", f"--rest_api_port={rest_port}"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=ROOT,
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    line = lines.get(timeout=600)
    rest_line = lines.get(timeout=60) if line.startswith("tfvideo-serve: serving") else ""
    if not rest_line.startswith("tfvideo-serve: REST API"):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {rest_line!r}; see {log.name}")
    return proc, line.strip().rsplit(" ", 1)[1]


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    from tfvideo import _experiment, models, serving
    from tfvideo import export as tfv_export
    from tfvideo.serving._client import encode_jpeg_frames

    keras.utils.set_random_seed(0)
    config = _experiment.ExperimentConfig(
        model=FLAGS.model, num_classes=FLAGS.num_classes,
        sampler={"type": "segment", "num_segments": FLAGS.frames},
        preprocess={"crop_size": FLAGS.size, "resize_short": FLAGS.size},
    )
    model = models.get(FLAGS.model, num_classes=FLAGS.num_classes, num_segments=FLAGS.frames)
    model(np.zeros((1, FLAGS.frames, FLAGS.size, FLAGS.size, 3), np.float32))
    root = tempfile.mkdtemp(prefix="tfvideo-bench-")
    result = tfv_export.export_saved_model(root, model=model, config=config, model_name="bench",
                                           input_types=[FLAGS.signature])
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, size=(1, FLAGS.frames, FLAGS.size, FLAGS.size, 3), dtype=np.uint8)
    if FLAGS.signature == "jpeg_frames":
        inputs = {"jpeg_frames": np.array([encode_jpeg_frames(clip[0])], dtype=object)}
        rest_inputs = [[{"b64": base64.b64encode(j).decode()} for j in inputs["jpeg_frames"][0]]]
    else:
        inputs = {"frames": clip}
        rest_inputs = clip.tolist()
    rest_body = json.dumps({"signature_name": FLAGS.signature, "inputs": rest_inputs}).encode()

    saved = tf.saved_model.load(result.path)
    function = saved.signatures[FLAGS.signature]
    tensors = {k: tf.constant(v) for k, v in inputs.items()}

    def in_process():
        return function(**tensors)["probabilities"].numpy()

    rest_port = _free_port()
    proc, target = _start_server(os.path.dirname(result.path), max(FLAGS.concurrency, 1), rest_port)
    try:
        clients = [serving.Client(target, timeout=600) for _ in range(FLAGS.concurrency)]
        expected = in_process()
        served = clients[0].predict("bench", inputs, signature_name=FLAGS.signature)["probabilities"]
        max_diff = float(np.abs(served - expected).max())
        local = threading.local()
        pool_index = iter(range(10**9))
        lock = threading.Lock()

        def over_grpc():
            if not hasattr(local, "client"):
                with lock:
                    local.client = clients[next(pool_index) % len(clients)]
            return local.client.predict("bench", inputs, signature_name=FLAGS.signature,
                                        output_filter=["probabilities"])

        def over_rest():
            if not hasattr(local, "connection"):
                local.connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=600)
            local.connection.request("POST", "/v1/models/bench:predict", rest_body,
                                     {"Content-Type": "application/json"})
            answer = local.connection.getresponse()
            data = answer.read()
            if answer.status != 200:
                raise RuntimeError(f"REST answered {answer.status}: {data[:300]!r}")
            return np.asarray(json.loads(data)["outputs"]["probabilities"], np.float32)

        max_diff = max(max_diff, float(np.abs(over_rest() - expected).max()))
        rows = []
        for concurrency in sorted({1, FLAGS.concurrency}):
            for name, call in (("in-process", in_process), ("gRPC", over_grpc), ("REST", over_rest)):
                latencies, wall = _measure(call, concurrency, FLAGS.requests, FLAGS.warmup)
                p50, p99 = _percentiles(latencies)
                rows.append((concurrency, name, p50, p99, len(latencies) / wall))
        for c in clients:
            c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    print(f"model={FLAGS.model} clip={FLAGS.frames}x{FLAGS.size}x{FLAGS.size} signature={FLAGS.signature} "
          f"requests/client={FLAGS.requests} cpus={os.cpu_count()} max|served-in_process|={max_diff:.2e} "
          f"REST body={len(rest_body)} bytes")
    print(f"{'clients':>7} {'path':>10} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>8}")
    for concurrency, name, p50, p99, rps in rows:
        print(f"{concurrency:>7} {name:>10} {p50:>9.2f} {p99:>9.2f} {rps:>8.2f}")
    base = {(c, n): p50 for c, n, p50, _, _ in rows}
    for concurrency in sorted({1, FLAGS.concurrency}):
        local_p50, grpc_p50 = base[(concurrency, "in-process")], base[(concurrency, "gRPC")]
        overhead = (grpc_p50 - local_p50) / local_p50
        print(f"clients={concurrency}: serving overhead p50 {grpc_p50 - local_p50:+.2f} ms = {100 * overhead:+.1f}% "
              f"of in-process p50 (target <= 15% with 1 client)")
        rest_p50 = base[(concurrency, "REST")]
        print(f"clients={concurrency}: REST p50 {rest_p50 - grpc_p50:+.2f} ms vs gRPC ({rest_p50 / grpc_p50:.2f}x)")


if __name__ == "__main__":
    app.run(main)
