"""Streams held by the development server: a streaming export (init_state / step) stepped frame by frame
over gRPC and REST with the state kept server-side; expiry, the stream limit, unknown ids, bad frames."""

import os
import shutil
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

from tfvideo import serving

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CROP, NUM_CLASSES = 32, 4
TOL = 1e-5


@pytest.fixture(scope="module")
def stream_export(tmp_path_factory):
    """A tsm_online_tiny streaming SavedModel (random non-trivial weights, 8-frame smoothing) at <base>/1."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
    from test_online_tsm import randomize

    from tfvideo import data, models
    from tfvideo.export import _stream_recognizer

    model = models.get("tsm_online_tiny", num_classes=NUM_CLASSES)
    model.build((None, model.num_segments, CROP, CROP, 3))
    randomize(model, 3)
    stream = models.StreamingRecognizer(model, (CROP, CROP), average_last=model.num_segments)
    base = tmp_path_factory.mktemp("streams") / "online"
    _stream_recognizer.export_streaming_recognizer(
        stream, str(base / "1"), data.PreprocessConfig(crop_size=CROP, resize_short=CROP + 4), "tsm_online_tiny")
    return str(base)


@pytest.fixture(scope="module")
def servers(stream_export):
    """(ModelServer, gRPC Client, RestClient) serving the export as model 'online'."""
    server = serving.ModelServer({"online": stream_export}, warmup=False, max_streams=8)
    port = server.start(0)
    rest = serving.RestServer(server)
    rest_port = rest.start(0)
    with serving.Client(f"127.0.0.1:{port}") as client, serving.RestClient(f"127.0.0.1:{rest_port}") as rest_client:
        yield server, client, rest_client
    rest.stop()
    server.stop()


def _frames(seed, count):
    return np.random.default_rng(seed).uniform(0, 255, (count, CROP, CROP, 3)).astype("float32")


_RUNNERS = {}


def _local(stream_export, frames):
    """(scores [N, K], logits [N, K]) of stepping `frames` in order through the SavedModel's own step signature."""
    from tfvideo.export import _stream_recognizer

    if stream_export not in _RUNNERS:
        _RUNNERS[stream_export] = _stream_recognizer.SavedModelStream(os.path.join(stream_export, "1"))
    runner = _RUNNERS[stream_export]
    state = runner.init_state(1)
    scores, logits = [], []
    for frame in frames:
        s, lg, state = runner.step(frame[None], state)
        scores.append(s[0])
        logits.append(lg[0])
    return np.array(scores), np.array(logits)


def _close(got, want):
    assert got.shape == want.shape
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_two_interleaved_streams_equal_the_saved_models_step(servers, stream_export):
    _, client, rest_client = servers
    frames_a, frames_b = _frames(0, 10), _frames(1, 9)
    a = serving.StreamSession(client, "online")  # gRPC, one frame a request.
    b = serving.StreamSession(rest_client, "online")  # REST, three frames a request.
    assert a.stream_id != b.stream_id and a.version == b.version == 1
    assert a.frame_shape == b.frame_shape == (CROP, CROP, 3)
    got_a, got_b = [], []
    for i in range(10):
        got_a.append(a.step(frames_a[i]))
        if i % 3 == 0 and i < 9:
            got_b.append(b.step(frames_b[i : i + 3]))
    for got, frames in ((got_a, frames_a), (got_b, frames_b)):
        logits = np.concatenate([g["logits"] for g in got])
        scores = np.concatenate([g["scores"] for g in got])
        want_scores, want_logits = _local(stream_export, frames)
        assert _close(logits, want_logits) <= TOL and _close(scores, want_scores) <= TOL
        np.testing.assert_array_equal(np.concatenate([g["frame_index"] for g in got]), np.arange(len(frames)))
    # Each stream's answers differ from the other's (the state is per stream, not shared).
    assert np.abs(got_a[-1]["logits"] - got_b[-1]["logits"][-1:]).max() > 1e-3
    assert a.close() == 10 and b.close() == 9


def test_unknown_and_closed_ids_are_not_found_naming_the_id(servers):
    server, client, rest_client = servers
    with pytest.raises(grpc.RpcError) as e:
        client.predict("online", {"stream_id": np.array(b"nope", dtype=object), "frame": _frames(0, 1)},
                       signature_name="step")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "stream 'nope' of model 'online' is not open (unknown stream id)" in e.value.details()
    status, answer = server_rest_call(rest_client, ":stream_step", {"stream_id": "nope", "instances": [[[[0.0]]]]})
    assert status == 404 and "stream 'nope'" in answer["error"] and "unknown stream id" in answer["error"]

    session = serving.StreamSession(rest_client, "online")
    session.close()
    with pytest.raises(serving.RestError) as e:
        session.client._call("POST", "/v1/models/online:stream_step",
                             {"stream_id": session.stream_id, "inputs": {"frame": _frames(0, 1).tolist()}})
    assert e.value.status == 404 and f"stream '{session.stream_id}' of model 'online' was closed" in e.value.message
    # A stream of another model name, and a bad id type, are named too.
    with pytest.raises(grpc.RpcError) as e:
        client.predict("other", {"stream_id": np.array(b"x", dtype=object)}, signature_name="stream_close")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "model 'other' is not served" in e.value.details()
    status, answer = server_rest_call(rest_client, ":stream_close", {"stream_id": 7})
    assert status == 400 and "'stream_id' must be a string" in answer["error"]


def server_rest_call(rest_client, verb, body, model="online"):
    """(HTTP status, JSON answer) of a POST to /v1/models/<model><verb>."""
    try:
        return 200, rest_client._call("POST", f"/v1/models/{model}{verb}", body)
    except serving.RestError as e:
        return e.status, {"error": e.message}


def test_a_bad_frame_names_the_expected_shape_and_every_stream_goes_on(servers, stream_export):
    _, client, rest_client = servers
    frames_a, frames_b = _frames(2, 4), _frames(3, 4)
    a = serving.StreamSession(client, "online")
    b = serving.StreamSession(rest_client, "online")
    a.step(frames_a[:2])
    b.step(frames_b[:2])
    wrong = {
        "size": np.zeros((1, 48, CROP, 3), "float32"),
        "channels": np.zeros((1, CROP, CROP, 1), "float32"),
    }
    for what, frame in wrong.items():
        with pytest.raises(grpc.RpcError) as e:
            client.predict("online", {"stream_id": np.array(a.stream_id.encode(), dtype=object), "frame": frame},
                           signature_name="step")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        message = e.value.details()
        assert "\n" not in message
        assert f"input 'frame' has shape [1, {frame.shape[1]}, 32, {frame.shape[3]}]; stream '{a.stream_id}'" in message
        assert "float32 frames [N, 32, 32, 3]" in message
        status, answer = server_rest_call(rest_client, ":stream_step",
                                          {"stream_id": b.stream_id, "instances": frame.tolist()})
        assert status == 400 and "[N, 32, 32, 3]" in answer["error"] and b.stream_id in answer["error"], answer
    with pytest.raises(grpc.RpcError) as e:  # uint8 pixels: the dtype is named.
        client.predict("online", {"stream_id": np.array(a.stream_id.encode(), dtype=object),
                                  "frame": np.zeros((1, CROP, CROP, 3), "uint8")}, signature_name="step")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "has dtype uint8" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:  # A state sent along (e.g. stale, another model's): refused by name.
        client.predict("online", {"stream_id": np.array(a.stream_id.encode(), dtype=object), "frame": frames_a[2:3],
                                  "state_shift_conv2_block1_shift": np.zeros((1, 8, 8, 2), "float32")},
                       signature_name="step")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'state_shift_conv2_block1_shift'" in e.value.details() and "holds the stream's state" in e.value.details()
    # Both streams continue where they were: the refused frames left their state untouched.
    for session, frames in ((a, frames_a), (b, frames_b)):
        got = session.step(frames[2:])
        want_scores, want_logits = _local(stream_export, frames)
        assert _close(got["logits"], want_logits[2:]) <= TOL and _close(got["scores"], want_scores[2:]) <= TOL
        np.testing.assert_array_equal(got["frame_index"], [2, 3])
        session.close()


def test_concurrent_steps_of_one_stream_are_serialised(servers, stream_export):
    _, client, _ = servers
    frame = _frames(4, 1)
    session = serving.StreamSession(client, "online")
    results, errors = [], []

    def step():
        try:
            results.append(session.step(frame))
        except Exception as e:  # noqa: BLE001 -- reported by the assertion below.
            errors.append(e)

    threads = [threading.Thread(target=step) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    # Six steps, each seeing the state the one before left: indices 0..5 once each, and the last equals 6 local steps.
    assert sorted(int(r["frame_index"][0]) for r in results) == list(range(6))
    last = next(r for r in results if int(r["frame_index"][0]) == 5)
    _, want_logits = _local(stream_export, np.repeat(frame, 6, axis=0))
    assert _close(last["logits"], want_logits[5:]) <= TOL
    session.close()


def test_a_stream_being_stepped_does_not_hold_up_the_others(servers):
    server, client, _ = servers
    a, b = serving.StreamSession(client, "online"), serving.StreamSession(client, "online")
    held = server.streams._streams[a.stream_id].lock
    held.acquire()  # As if a long step of stream a were running.
    results = []
    waiting = threading.Thread(target=lambda: results.append(a.step(_frames(0, 1))))
    try:
        waiting.start()
        started = time.monotonic()
        assert b.step(_frames(1, 1))["frame_index"].tolist() == [0]  # Stream b is answered meanwhile.
        assert time.monotonic() - started < 20 and waiting.is_alive() and not results
    finally:
        held.release()
    waiting.join(60)
    assert results[0]["frame_index"].tolist() == [0]
    a.close()
    b.close()


@pytest.fixture()
def small_server(stream_export, tmp_path):
    """`start(idle_timeout_s)`: (server, Client, RestClient, base path) with 2 streams at most, on a copy of the
    export (its versions may change)."""
    base = tmp_path / "online"
    shutil.copytree(os.path.join(stream_export, "1"), base / "1")
    started = []

    def start(idle_timeout_s):
        server = serving.ModelServer({"online": str(base)}, warmup=False, stream_idle_timeout_s=idle_timeout_s,
                                     max_streams=2, poll_seconds=3600)
        port = server.start(0)
        rest = serving.RestServer(server)
        rest_port = rest.start(0)
        client, rest_client = serving.Client(f"127.0.0.1:{port}"), serving.RestClient(f"127.0.0.1:{rest_port}")
        started.append((server, rest, client))
        return server, client, rest_client, base

    yield start
    for server, rest, client in started:
        client.close()
        rest.stop()
        server.stop()


def test_idle_streams_expire_and_the_stream_limit_answers_resource_exhausted(small_server):
    server, client, rest_client, _ = small_server(0.5)
    a = serving.StreamSession(client, "online")
    b = serving.StreamSession(rest_client, "online")
    assert a.idle_timeout_s == 0.5
    with pytest.raises(grpc.RpcError) as e:
        serving.StreamSession(client, "online")
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "holds 2 open streams, its limit (--max_streams=2)" in e.value.details()
    status, answer = server_rest_call(rest_client, ":stream_open", {})
    assert status == 429 and "--max_streams=2" in answer["error"] and "\n" not in answer["error"]
    b.close()
    c = serving.StreamSession(rest_client, "online")  # A closed stream frees its place.

    a.step(_frames(0, 1))
    time.sleep(0.8)
    with pytest.raises(grpc.RpcError) as e:
        a.step(_frames(0, 1))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert f"stream '{a.stream_id}' of model 'online' expired: not stepped for" in e.value.details()
    assert "(--stream_idle_timeout_s=0.5) after 1 frames" in e.value.details()
    with pytest.raises(serving.RestError) as e:
        c.step(_frames(0, 1))
    assert e.value.status == 404 and "expired" in e.value.message and c.stream_id in e.value.message
    assert len(server.streams) == 0  # Expired streams free their places.
    serving.StreamSession(client, "online")
    serving.StreamSession(client, "online")


def test_a_stream_is_bound_to_its_version_and_ends_clearly_when_it_is_unloaded(small_server):
    server, client, rest_client, base = small_server(60)
    a = serving.StreamSession(client, "online")
    a.step(_frames(0, 2))
    shutil.copytree(base / "1", base / "2")
    assert server.refresh() == {"online": [2]}  # Latest policy: version 1 unloaded.
    b = serving.StreamSession(rest_client, "online")
    assert b.version == 2
    with pytest.raises(grpc.RpcError) as e:
        a.step(_frames(0, 1))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert (f"stream '{a.stream_id}' of model 'online' ended: it was opened on model 'online' version 1, which is "
            "no longer served; open a new stream") in e.value.details()
    assert b.step(_frames(0, 1))["frame_index"].tolist() == [0]
    with pytest.raises(serving.RestError) as e:  # A stream answers only on its own version.
        rest_client._call("POST", "/v1/models/online/versions/1:stream_step",
                          {"stream_id": b.stream_id, "inputs": {"frame": _frames(0, 1).tolist()}})
    assert e.value.status == 400 and "is bound to the version it was opened on" in e.value.message


def test_a_model_without_streaming_signatures_and_bad_limits_are_refused(stream_export, tmp_path):
    from tfvideo.serving import _server, _streams

    class NotStreaming:
        name, version, functions = "plain", 3, {}
        signature_defs = {"serving_default": None}

    with pytest.raises(_server.RequestError) as e:
        _streams.frame_info(NotStreaming())
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "model 'plain' version 3 is not a streaming export" in e.value.message
    for name in ("stream_idle_timeout_s", "max_streams"):
        with pytest.raises(ValueError, match=rf"{name}=0(\.0)? must be a finite number > 0"):
            serving.ModelServer({"online": stream_export}, **{name: 0})


def test_serve_refuses_a_non_positive_stream_idle_timeout_in_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-m", "export.serve", f"--model_base_path={tmp_path}",
                          "--stream_idle_timeout_s=0"], check=False, capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "tfvideo-serve: error: --stream_idle_timeout_s=0 must be > 0." in out.stderr and "Traceback" not in out.stderr
