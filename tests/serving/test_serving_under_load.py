"""The REST API under load (issue 27): connection bursts, a version published mid-request, SIGTERM while an
answer is being written, and concurrent JSON parsing. Loopback only; each test a few seconds."""

import gc
import json
import os
import shutil
import socket
import threading
import time
import types

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import predict_pb2

from tests.serving.test_server_reliability import _sleepy_saved_model
from tfvideo import serving
from tfvideo.serving import _rest


def _int64_info():
    info = meta_graph_pb2.TensorInfo(dtype=tf.int64.as_datatype_enum)
    info.tensor_shape.dim.add(size=-1)
    return info


class _EchoModelServer:
    """Stands in for ModelServer: answers `ids` repeated `repeat` times (a large answer on demand)."""

    max_workers = 8
    max_request_bytes = 1 << 20

    def __init__(self, repeat=1):
        self.repeat = repeat
        self.answered = 0
        signature = meta_graph_pb2.SignatureDef()
        signature.inputs["ids"].CopyFrom(_int64_info())
        self._servable = types.SimpleNamespace(name="m", version=1, signature_defs={"serving_default": signature})

    def resolve_servable(self, name, version=None, label=None):
        return self._servable

    def metadata(self, request):  # What the REST front end asked before (kept so the test runs on older trees).
        from google.protobuf import wrappers_pb2
        from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=model_pb2.ModelSpec(name="m", version=wrappers_pb2.Int64Value(value=1)))
        signatures = get_model_metadata_pb2.SignatureDefMap()
        signatures.signature_def["serving_default"].CopyFrom(self._servable.signature_defs["serving_default"])
        response.metadata["signature_def"].Pack(signatures)
        return response

    def predict(self, request, servable=None):
        ids = tf.make_ndarray(request.inputs["ids"])
        response = predict_pb2.PredictResponse()
        response.outputs["echo"].CopyFrom(tf.make_tensor_proto(np.tile(ids, self.repeat)))
        self.answered += 1
        return response


def _post(port, path, body, timeout=60):
    """One request on a new connection: (status, body bytes); socket errors propagate."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_a_burst_of_new_connections_is_accepted_and_answered():
    """256 clients connect and POST at the same instant: every one gets 200 (the backlog was 5: resets)."""
    rest = _rest.RestServer(_EchoModelServer(), max_workers=4)
    port = rest.start(0)
    clients = 256
    barrier = threading.Barrier(clients)
    results = [None] * clients

    def client(i):
        barrier.wait()
        try:
            status, data = _post(port, "/v1/models/m:predict", json.dumps({"instances": [i]}).encode())
            results[i] = (status, json.loads(data))
        except OSError as e:
            results[i] = type(e).__name__

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        rest.stop(grace=5)
    failed = [r for i, r in enumerate(results) if r != (200, {"predictions": [i]})]
    assert not failed, f"{len(failed)} of {clients} failed, e.g. {failed[:3]}"


def test_a_request_naming_no_version_is_served_by_the_version_current_when_it_runs(tmp_path):
    """One worker busy on version 1; a second request waits for it; version 2 replaces 1 meanwhile: 200, not 404."""
    base = str(tmp_path / "sleepy")
    _sleepy_saved_model(os.path.join(base, "1"))
    shutil.copytree(os.path.join(base, "1"), str(tmp_path / "v2"))
    server = serving.ModelServer({"sleepy": base}, warmup=False, max_workers=1)
    assert server.refresh() == {"sleepy": [1]}
    rest = _rest.RestServer(server, max_workers=1)
    port = rest.start(0)
    results = {}

    def request(name, micros):
        results[name] = _post(port, "/v1/models/sleepy:predict", json.dumps({"inputs": {"micros": [micros]}}).encode())

    slow = threading.Thread(target=request, args=("slow", 2_000_000))
    waiting = threading.Thread(target=request, args=("waiting", 1000))
    try:
        slow.start()
        time.sleep(0.7)  # The slow request holds the only worker slot.
        waiting.start()
        time.sleep(0.5)  # The second request has arrived and waits for the slot.
        os.rename(str(tmp_path / "v2"), os.path.join(base, "2"))
        assert server.refresh() == {"sleepy": [2]}  # Version 1 is unloaded while both requests are open.
        slow.join(60)
        waiting.join(60)
    finally:
        rest.stop(grace=5)
    assert results["slow"][0] == 200, results["slow"]  # Version 1 finished the request bound to it.
    assert json.loads(results["slow"][1]) == {"outputs": [2_000_000]}
    assert results["waiting"][0] == 200, results["waiting"]  # Today: 404 "model 'sleepy' has no version 1".
    assert json.loads(results["waiting"][1]) == {"outputs": [1000]}


def test_stop_waits_until_the_last_byte_of_a_large_answer_is_written():
    """A 1M-value answer to a client that reads slowly: stop() returns only after the client has all of it."""
    rest = _rest.RestServer(_EchoModelServer(repeat=1_000_000))
    port = rest.start(0)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # 8 MB answer: most of it stays in the server.
    sock.settimeout(60)
    sock.connect(("127.0.0.1", port))
    body = json.dumps({"instances": [123456]}).encode()
    sock.sendall(b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    deadline = time.monotonic() + 60
    while rest._httpd and not rest.model_server.answered and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # The answer is computed; its bytes are being written, blocked on the client.
    stopped = threading.Event()
    stopper = threading.Thread(target=lambda: (rest.stop(grace=60), stopped.set()))
    stopper.start()
    time.sleep(1.5)
    # Today the request stopped counting before its answer was written: stop() returned (and
    # tfvideo-serve exited) with the answer half sent.
    assert not stopped.is_set(), "stop() returned while an answer was still being written"
    data = bytearray()
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data:
            head, _, rest_bytes = bytes(data).partition(b"\r\n\r\n")
            length = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
            if len(rest_bytes) >= length:
                break
    sock.close()
    stopper.join(60)
    assert stopped.is_set()
    assert head.startswith(b"HTTP/1.1 200")
    answer = json.loads(rest_bytes[:length])
    assert len(answer["predictions"]) == 1_000_000 and answer["predictions"][-1] == 123456


def test_concurrent_json_parsing_leaves_the_garbage_collector_alone():
    """Bodies parsed in 4 threads: the collector is never switched off (it was, per request, without a lock)."""
    body = json.dumps({"inputs": np.zeros((2, 32, 32, 3), np.uint8).tolist()}).encode()
    assert gc.isenabled()
    done = threading.Event()

    def parse():
        while not done.is_set():
            _rest._parse_json(body)

    threads = [threading.Thread(target=parse) for _ in range(4)]
    for t in threads:
        t.start()
    seen = []
    try:
        for _ in range(40):
            seen.append(gc.isenabled())
            time.sleep(0.003)
    finally:
        done.set()
        for t in threads:
            t.join(30)
    assert all(seen), f"gc was off in {seen.count(False)} of {len(seen)} samples during parsing"
    assert gc.isenabled()


def test_beyond_max_connections_a_request_gets_503_with_a_body():
    rest = _rest.RestServer(_EchoModelServer(), max_connections=1)
    port = rest.start(0)
    idle = socket.create_connection(("127.0.0.1", port), timeout=30)  # Holds the one connection allowed.
    try:
        time.sleep(0.3)
        status, data = _post(port, "/v1/models/m:predict", json.dumps({"instances": [1]}).encode())
        assert (status, json.loads(data)) == (503, {"error": "the server has 1 connections open; retry later"})
        idle.close()
        time.sleep(0.3)
        assert _post(port, "/v1/models/m:predict", json.dumps({"instances": [1]}).encode()) == (200, b'{"predictions": [1]}')
    finally:
        idle.close()
        rest.stop(grace=5)


def test_grpc_drain_answers_what_was_accepted_and_refuses_what_comes_later(tmp_path):
    """One worker: a slow RPC runs, a second waits in the pool; drain() answers both, refuses a third with UNAVAILABLE."""
    import grpc

    base = str(tmp_path / "sleepy")
    _sleepy_saved_model(os.path.join(base, "1"))
    server = serving.ModelServer({"sleepy": base}, warmup=False, max_workers=1)
    target = f"127.0.0.1:{server.start(port=0)}"
    results = {}

    def call(name, micros):
        with serving.Client(target, timeout=60) as client:
            try:
                results[name] = client.predict("sleepy", {"micros": np.array([micros], np.int64)})["slept"].tolist()
            except grpc.RpcError as e:
                results[name] = e.code()

    threads = {name: threading.Thread(target=call, args=(name, micros))
               for name, micros in (("running", 1_500_000), ("queued", 1000), ("late", 1000))}
    threads["running"].start()
    time.sleep(0.5)
    threads["queued"].start()
    time.sleep(0.5)
    drained = {}
    drainer = threading.Thread(target=lambda: drained.setdefault("cut_off", server.drain(30)))
    drainer.start()
    time.sleep(0.2)
    threads["late"].start()
    for t in (*threads.values(), drainer):
        t.join(60)
    assert results == {"running": [1_500_000], "queued": [1000], "late": grpc.StatusCode.UNAVAILABLE}
    assert drained == {"cut_off": 0}
