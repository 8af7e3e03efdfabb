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

--mode=load runs the load test of issue 27 instead (loopback only, bounded in time and count),
for REST and gRPC side by side, on `tsn_tiny` with --frames JPEG frames of --size pixels
(`jpeg_frames` signature):

* burst: --burst clients (default 512 of each protocol) each open a new connection and send one
  Predict at the same instant;
* publish: --clients clients of each protocol (default 64) send Predict in a loop while
  --publishes new versions (default 5) are published (renamed into the base path, as
  tfvideo-export does) and the old ones unloaded;
* sigterm: the same clients while the server gets SIGTERM. A request sent before the signal
  must be answered; after it, a clean refusal (REST 503 / gRPC UNAVAILABLE / connection
  refused) is expected and counted apart.

Each row prints the requests, failed requests, p50/p99 latency and requests/s:

  python benchmarks/serving.py --mode=load --size=32 --frames=4
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
flags.DEFINE_enum("mode", "latency", ["latency", "load"], "latency: p50/p99 vs in-process; load: issue 27's load test.")
flags.DEFINE_integer("burst", 512, "--mode=load: new connections opened at once, per protocol.")
flags.DEFINE_integer("clients", 64, "--mode=load: concurrent clients per protocol while publishing / at SIGTERM.")
flags.DEFINE_integer("publishes", 5, "--mode=load: new versions published under load.")
flags.DEFINE_float("publish_interval", 2.0, "--mode=load: seconds between publishes.")


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


def _start_server(base_path, workers, rest_port, extra=()):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)  # noqa: SIM115 -- kept for the run.
    proc = subprocess.Popen(
        [sys.executable, "-m", "export.serve", f"--model_base_path={base_path}", "--model_name=bench", "--port=0",
         f"--max_workers={workers}", "--max_request_bytes=1000000000", f"--rest_api_port={rest_port}", *extra],
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


class _Tally:
    """Outcomes and latencies of one protocol in one phase (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies, self.failures, self.refused, self.after = [], [], 0, 0
        self.first = self.last = None

    def ok(self, started, seconds):
        with self.lock:
            self.latencies.append(seconds)
            self.first = started if self.first is None else min(self.first, started)
            self.last = started + seconds if self.last is None else max(self.last, started + seconds)

    def fail(self, what):
        with self.lock:
            self.failures.append(what)

    def row(self, phase, protocol):
        p50, p99 = _percentiles(self.latencies) if self.latencies else (float("nan"),) * 2
        wall = (self.last - self.first) if self.latencies and self.last > self.first else float("nan")
        total = len(self.latencies) + len(self.failures) + self.refused
        kinds = sorted({f.split(":")[0] for f in self.failures})
        return (f"{phase:>8} {protocol:>5} {total:>8} {len(self.failures):>7} {self.refused:>8} {self.after:>6} "
                f"{p50:>8.1f} {p99:>8.1f} {len(self.latencies) / wall:>8.1f}  {', '.join(kinds)[:60]}")


def _rest_once(connection, body):
    connection.request("POST", "/v1/models/bench:predict", body, {"Content-Type": "application/json"})
    answer = connection.getresponse()
    data = answer.read()
    return answer.status, data


def _load(argv_unused=None):
    """Issue 27's load test: burst, publishes under load, SIGTERM under load; prints one row per protocol."""
    import signal

    import grpc
    import keras

    from tfvideo import _experiment, models, serving
    from tfvideo import export as tfv_export
    from tfvideo.serving._client import encode_jpeg_frames

    keras.utils.set_random_seed(0)
    name = "tsn_tiny"
    config = _experiment.ExperimentConfig(
        model=name, num_classes=FLAGS.num_classes, sampler={"type": "segment", "num_segments": FLAGS.frames},
        preprocess={"crop_size": FLAGS.size, "resize_short": FLAGS.size})
    model = models.get(name, num_classes=FLAGS.num_classes, num_segments=FLAGS.frames)
    model(np.zeros((1, FLAGS.frames, FLAGS.size, FLAGS.size, 3), np.float32))
    root = tempfile.mkdtemp(prefix="tfvideo-load-")
    staging = os.path.join(root, "staging")
    for version in range(1, FLAGS.publishes + 2):  # Version 1 served first; the rest published under load.
        tfv_export.export_saved_model(staging, model=model, config=config, model_name="bench",
                                      input_types=["jpeg_frames"], version=version)  # Warm-up records: a
        # new version is traced before it serves, as TF Serving's warm-up does.
    base = os.path.join(root, "bench")
    os.makedirs(base)
    os.rename(os.path.join(staging, "bench", "1"), os.path.join(base, "1"))
    clip = np.random.default_rng(0).integers(0, 256, size=(FLAGS.frames, FLAGS.size, FLAGS.size, 3), dtype=np.uint8)
    jpegs = encode_jpeg_frames(clip)
    inputs = {"jpeg_frames": np.array([jpegs], dtype=object)}
    body = json.dumps({"instances": [[{"b64": base64.b64encode(j).decode()} for j in jpegs]]}).encode()
    rest_port = _free_port()
    proc, target = _start_server(base, 8, rest_port, ["--file_system_poll_wait_seconds=0.2",
                                                       "--drain_grace_period_s=30"])
    rows = []
    try:
        with serving.Client(target, timeout=300) as client:  # Untimed: the first call of each protocol.
            client.predict("bench", inputs, signature_name="jpeg_frames")
        _rest_once(http.client.HTTPConnection("127.0.0.1", rest_port, timeout=300), body)
        # --- burst: every client opens a new connection at the same instant ---
        tallies = {"REST": _Tally(), "gRPC": _Tally()}
        barrier = threading.Barrier(2 * FLAGS.burst)

        def burst_rest():
            barrier.wait()
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=300)
            try:
                status, data = _rest_once(connection, body)
                if status == 200:
                    tallies["REST"].ok(started, time.perf_counter() - started)
                else:
                    tallies["REST"].fail(f"HTTP {status}: {data[:80]!r}")
            except OSError as e:
                tallies["REST"].fail(f"{type(e).__name__}: {e}")
            finally:
                connection.close()

        def burst_grpc():
            client = serving.Client(target, timeout=300)
            barrier.wait()
            started = time.perf_counter()
            try:
                client.predict("bench", inputs, signature_name="jpeg_frames")
                tallies["gRPC"].ok(started, time.perf_counter() - started)
            except grpc.RpcError as e:
                tallies["gRPC"].fail(f"{e.code().name}: {e.details()[:80]}")
            finally:
                client.close()

        threads = [threading.Thread(target=f) for f in (burst_rest, burst_grpc) for _ in range(FLAGS.burst)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rows += [tallies[p].row("burst", p) for p in ("REST", "gRPC")]

        # --- clients in a loop, for the publish and SIGTERM phases ---
        def run_clients(tallies, stop, signalled):
            def rest_client():
                connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=300)
                while not stop.is_set():
                    started = time.perf_counter()
                    before = not signalled.is_set()
                    try:
                        status, data = _rest_once(connection, body)
                        if status == 200:
                            tallies["REST"].ok(started, time.perf_counter() - started)
                            continue
                        what = f"HTTP {status}: {data[:80]!r}"
                        error = status != 503
                    except (OSError, http.client.HTTPException) as e:
                        what = f"{type(e).__name__}: {e}"
                        error = not isinstance(e, ConnectionRefusedError)
                        connection.close()
                        connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=300)
                    if signalled.is_set() and not before:
                        with tallies["REST"].lock:
                            tallies["REST"].after += 1
                        return  # The server is going away: this client stops.
                    if error:
                        tallies["REST"].fail(what)
                    else:
                        with tallies["REST"].lock:
                            tallies["REST"].refused += 1
                    if signalled.is_set():
                        return
                connection.close()

            def grpc_client():
                client = serving.Client(target, timeout=300)
                while not stop.is_set():
                    started = time.perf_counter()
                    before = not signalled.is_set()
                    try:
                        client.predict("bench", inputs, signature_name="jpeg_frames")
                        tallies["gRPC"].ok(started, time.perf_counter() - started)
                        continue
                    except grpc.RpcError as e:
                        code = e.code()
                        what = f"{code.name}: {e.details()[:80]}"
                    if signalled.is_set() and not before:
                        with tallies["gRPC"].lock:
                            tallies["gRPC"].after += 1
                        break
                    if code == grpc.StatusCode.UNAVAILABLE and signalled.is_set():
                        with tallies["gRPC"].lock:
                            tallies["gRPC"].refused += 1
                    else:
                        tallies["gRPC"].fail(what)
                    if signalled.is_set():
                        break
                client.close()

            threads = [threading.Thread(target=f) for f in (rest_client, grpc_client) for _ in range(FLAGS.clients)]
            for t in threads:
                t.start()
            return threads

        # --- publish: new versions replace the served one under load ---
        tallies = {"REST": _Tally(), "gRPC": _Tally()}
        stop, signalled = threading.Event(), threading.Event()
        threads = run_clients(tallies, stop, signalled)
        time.sleep(FLAGS.publish_interval)
        with serving.Client(target, timeout=60) as watcher:
            for version in range(2, FLAGS.publishes + 2):
                os.rename(os.path.join(staging, "bench", str(version)), os.path.join(base, str(version)))
                deadline = time.monotonic() + 120
                while watcher.status("bench") != [(version, "AVAILABLE")] and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(FLAGS.publish_interval)
        stop.set()
        for t in threads:
            t.join()
        rows += [tallies[p].row("publish", p) for p in ("REST", "gRPC")]

        # --- sigterm: the server drains under load ---
        tallies = {"REST": _Tally(), "gRPC": _Tally()}
        stop, signalled = threading.Event(), threading.Event()
        threads = run_clients(tallies, stop, signalled)
        time.sleep(FLAGS.publish_interval)
        signalled.set()
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(timeout=120)
        stop.set()
        for t in threads:
            t.join()
        rows += [tallies[p].row("sigterm", p) for p in ("REST", "gRPC")]
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"load test: model={name} {FLAGS.frames} JPEG frames of {FLAGS.size}x{FLAGS.size}, server --max_workers=8, "
          f"burst={FLAGS.burst}, clients={FLAGS.clients} per protocol, publishes={FLAGS.publishes}, cpus={os.cpu_count()}; "
          f"server exit code after SIGTERM: {exit_code}")
    print("failed: requests sent before SIGTERM (all of them in burst/publish) that got no answer; refused: REST 503 / "
          "gRPC UNAVAILABLE sent before SIGTERM, answered cleanly while draining; after: a client's first request "
          "sent after SIGTERM (not answered, expected)")
    print(f"{'phase':>8} {'proto':>5} {'requests':>8} {'failed':>7} {'refused':>8} {'after':>6} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'req/s':>8}  failure kinds")
    for row in rows:
        print(row)


def main(argv):
    del argv
    if FLAGS.mode == "load":
        return _load()
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
