"""tfvideo-serve under faults: corrupt versions, SIGTERM with requests in flight, TF Serving's codes and policies."""

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2, predict_pb2
from tensorflow_serving.config import model_server_config_pb2

from tests.export.conftest import CLIP_LENGTH
from tests.serving.conftest import ROOT, ServerProcess
from tfvideo import export as tfv_export
from tfvideo import serving

RequestError = serving._server.RequestError


def _export(root, model_dir, name="m"):
    return tfv_export.export_saved_model(root, model_dir=model_dir, model_name=name, input_types="frames", warmup=False)


def _corrupt_copy(good_version_dir, target, how):
    """A copy of a good version whose saved_model.pb is cut in half (an interrupted copy) or garbage.

    The copy is made beside and renamed into place, so the poller sees it whole.
    """
    staging = os.path.join(os.path.dirname(target), ".staging")
    shutil.copytree(good_version_dir, staging)
    pb = os.path.join(staging, "saved_model.pb")
    with open(pb, "rb") as f:
        data = f.read()
    with open(pb, "wb") as f:
        f.write(data[: len(data) // 2] if how == "half" else b"\x0a\xff\xff\xff\xff\x0fnot a SavedModel")
    os.rename(staging, target)


def _clip():
    return np.full((1, CLIP_LENGTH, 32, 32, 3), 90, np.uint8)


def _wait_for(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def good_versions(tiny_model_dir, tmp_path_factory):
    """Two good exported versions of the tiny model (different weights are not needed here)."""
    root = str(tmp_path_factory.mktemp("good"))
    _export(root, tiny_model_dir)
    _export(root, tiny_model_dir)
    return os.path.join(root, "m")


def test_poller_survives_corrupt_versions_and_loads_newer_good_ones(good_versions, tmp_path, caplog):
    base = str(tmp_path / "m")
    os.makedirs(base)
    shutil.copytree(os.path.join(good_versions, "1"), os.path.join(base, "1"))
    server = serving.ModelServer({"m": base}, poll_seconds=0.1, max_workers=2, warmup=False)
    port = server.start(port=0)
    client = serving.Client(f"127.0.0.1:{port}", timeout=60)
    try:
        assert client.status("m") == [(1, "AVAILABLE")]
        with caplog.at_level(logging.INFO):
            # Version 2 arrives with a half-written saved_model.pb: today this killed the poller.
            _corrupt_copy(os.path.join(good_versions, "1"), os.path.join(base, "2"), "half")
            _wait_for(lambda: (2, "END") in client.status("m"), "version 2 to fail")
            time.sleep(0.5)  # Several more polls: the failure is not retried while its files are unchanged.
            assert server._poller.is_alive()
            assert client.status("m") == [(1, "AVAILABLE"), (2, "END")]
            out = client.predict("m", {"frames": _clip()}, signature_name="frames")
            assert out["probabilities"].shape == (1, 4)
            failures = [r.getMessage() for r in caplog.records if "failed to load" in r.getMessage()]
            assert len(failures) == 1, failures
            assert f"version 2 at {os.path.join(base, '2')} failed to load: DecodeError" in failures[0]
            assert "serving [1]" in failures[0]
            response = server.status(get_model_status_pb2.GetModelStatusRequest(
                model_spec=model_pb2.ModelSpec(name="m")))
            failed = [s for s in response.model_version_status if s.version == 2][0]
            assert failed.status.error_message.startswith(os.path.join(base, "2") + ": DecodeError")
            with pytest.raises(grpc.RpcError) as info:
                client.predict("m", {"frames": _clip()}, signature_name="frames", version=2)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            assert f"it failed to load from {os.path.join(base, '2')}: DecodeError" in info.value.details()

        # Its files change (the copy completes): retried and served; version 1 is unloaded (latest policy).
        shutil.copy(os.path.join(good_versions, "1", "saved_model.pb"), os.path.join(base, "2", "saved_model.pb"))
        _wait_for(lambda: client.status("m") == [(2, "AVAILABLE")], "version 2 to load once repaired")

        # A garbage version 3 and then a good version 4: 4 loads although 3 never does.
        _corrupt_copy(os.path.join(good_versions, "1"), os.path.join(base, "3"), "garbage")
        _wait_for(lambda: (3, "END") in client.status("m"), "version 3 to fail")
        shutil.copytree(os.path.join(good_versions, "2"), os.path.join(base, "4"))
        _wait_for(lambda: client.status("m") == [(4, "AVAILABLE")], "version 4 to load past the bad version 3")
        out = client.predict("m", {"frames": _clip()}, signature_name="frames")
        assert server.predict(_predict_request()).model_spec.version.value == 4
        assert out["probabilities"].shape == (1, 4)
        assert server._poller.is_alive()
    finally:
        client.close()
        server.stop(0)


def _predict_request(name="m", version=None, label=None, signature="frames"):
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name=signature))
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.inputs["frames"].CopyFrom(tf.make_tensor_proto(_clip()))
    return request


def _native_free(stderr):
    native = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl|To enable the following instructions)")
    return [line for line in stderr.splitlines() if line.strip() and not native.match(line)]


def test_start_up_serves_the_highest_loadable_version(good_versions, tmp_path):
    base = str(tmp_path / "m")
    os.makedirs(base)
    shutil.copytree(os.path.join(good_versions, "1"), os.path.join(base, "1"))
    _corrupt_copy(os.path.join(good_versions, "1"), os.path.join(base, "2"), "garbage")
    os.makedirs(os.path.join(base, ".tmp-killed-export", "variables"))  # What a killed tfvideo-export leaves.
    log = str(tmp_path / "server.log")
    server = ServerProcess([f"--model_base_path={base}", "--warmup=false"], log)  # Today: DecodeError, no ready line.
    assert not os.path.exists(os.path.join(base, ".tmp-killed-export"))  # Removed at start, with one line.
    try:
        with serving.Client(server.target, timeout=60) as client:
            assert client.status("m") == [(1, "AVAILABLE"), (2, "END")]
            out = client.predict("m", {"frames": _clip()}, signature_name="frames")
            assert out["probabilities"].shape == (1, 4)
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
        server.stop()
    with open(log) as f:
        text = f.read()
    assert f"version 2 at {os.path.join(base, '2')} failed to load: DecodeError" in text, text[-3000:]
    assert f"Removed 1 temporary directory left by interrupted exports in {base}: .tmp-killed-export" in text
    assert "Traceback" not in text


def _sleepy_saved_model(path):
    """A SavedModel whose `sleep` signature waits `micros` inside the graph (a slow request on demand)."""
    from tensorflow.python.data.experimental.ops import testing as data_testing

    class Sleepy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1], tf.int64, name="micros")])
        def sleep(self, micros):
            slept = tf.data.Dataset.from_tensors(micros[0]).apply(data_testing.sleep(micros[0]))
            return {"slept": tf.reshape(slept.reduce(tf.constant(0, tf.int64), lambda total, x: total + x), [1])}

    module = Sleepy()
    tf.saved_model.save(module, path, signatures={"serving_default": module.sleep, "sleep": module.sleep})


def test_sigterm_drains_in_flight_requests_and_exits_0(tmp_path):
    base = str(tmp_path / "sleepy")
    for version in (1, 2):
        _sleepy_saved_model(os.path.join(base, str(version)))
    log = str(tmp_path / "server.log")
    server = ServerProcess([f"--model_base_path={base}", "--drain_grace_period_s=60", "--max_workers=4",
                            "--model_version_policy=specific", "--model_versions=1"], log)
    try:
        client = serving.Client(server.target, timeout=60)
        assert client.status("sleepy") == [(1, "AVAILABLE")]  # --model_versions=1: version 2 is not served.
        with pytest.raises(grpc.RpcError) as info:
            client.status("sleepy", version=2)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        started = time.monotonic()
        assert client.predict("sleepy", {"micros": np.array([1000], np.int64)})["slept"].tolist() == [1000]
        result = {}

        def slow_request():
            try:
                result["out"] = client.predict("sleepy", {"micros": np.array([4_000_000], np.int64)})
            except grpc.RpcError as e:
                result["error"] = e

        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(1.5)  # The request is now inside the SavedModel.
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        late = serving.Client(server.target, timeout=10)
        with pytest.raises(grpc.RpcError) as info:  # New requests are refused while draining.
            late.predict("sleepy", {"micros": np.array([1], np.int64)})
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        late.close()
        thread.join(timeout=60)
        assert "error" not in result, result.get("error")
        assert result["out"]["slept"].tolist() == [4_000_000]
        assert server.proc.wait(timeout=60) == 0
        assert time.monotonic() - started >= 4.0
        client.close()
    finally:
        server.stop()
    with open(log) as f:
        lines = _native_free(f.read())
    assert "tfvideo-serve: SIGTERM: draining, 1 request(s) in flight, grace 60 s" in lines, lines[-20:]
    assert lines[-1] == "tfvideo-serve: drained, exiting", lines[-20:]


def test_drain_cancels_what_outlasts_the_grace_period(tmp_path):
    base = str(tmp_path / "sleepy")
    _sleepy_saved_model(os.path.join(base, "1"))
    server = serving.ModelServer({"sleepy": base}, warmup=False)
    client = serving.Client(f"127.0.0.1:{server.start(port=0)}", timeout=60)
    errors = []

    def slow_request():
        try:
            client.predict("sleepy", {"micros": np.array([3_000_000], np.int64)})
        except grpc.RpcError as e:
            errors.append(e.code())

    thread = threading.Thread(target=slow_request)
    thread.start()
    _wait_for(lambda: server.in_flight == 1, "the request to arrive")
    started = time.monotonic()
    assert server.drain(0.3) == 1  # Still running when the grace period ended.
    assert time.monotonic() - started < 2.0
    thread.join(timeout=30)
    assert errors and errors[0] in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE), errors
    client.close()


def test_bad_serve_flags_are_one_line_usage_errors(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    cases = [
        (["--drain_grace_period_s=-1"], "--drain_grace_period_s=-1 must be >= 0."),
        (["--model_version_policy=specific"], "--model_version_policy=specific needs --model_versions"),
        (["--max_frame_pixels=0"], "--max_frame_pixels=0 must be >= 1."),
    ]  # Three cases only: each is a process start (~10 s on 2 cores).
    for flags, message in cases:
        out = subprocess.run([sys.executable, "-m", "export.serve", f"--model_base_path={tmp_path}", *flags],
                             check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        assert out.returncode == 2, (flags, out.stderr[-2000:])
        (line,) = _native_free(out.stderr)
        assert line.startswith("tfvideo-serve: error: ") and message in line, (flags, line)


# --- TF Serving's status codes and version policies, in-process. ---
def _config(base, policy_text="", labels_text=""):
    return text_format.Parse(
        f'model_config_list {{ config {{ name: "m" base_path: "{base}" model_platform: "tensorflow" '
        f"{policy_text} {labels_text} }} }}",
        model_server_config_pb2.ModelServerConfig(),
    )


def _code(call):
    with pytest.raises(RequestError) as info:
        call()
    return info.value.code, info.value.message


def test_status_codes_match_tf_serving(good_versions):
    server = serving.ModelServer(_config(good_versions, "model_version_policy { all {} }",
                                         'version_labels { key: "stable" value: 1 } version_labels { key: "gone" value: 9 }'),
                                 warmup=False)
    assert server.refresh() == {"m": [1, 2]}
    assert server.predict(_predict_request(label="stable")).model_spec.version.value == 1
    assert server.resolve("m", label="stable", signature_name="frames").servable.version == 1
    assert server.resolve("m").signature_name == "serving_default"
    code = grpc.StatusCode
    meta = get_model_metadata_pb2.GetModelMetadataRequest
    status = get_model_status_pb2.GetModelStatusRequest
    cases = [
        (code.FAILED_PRECONDITION, "no signature 'nope'", lambda: server.predict(_predict_request(signature="nope"))),
        (code.NOT_FOUND, "model 'x' is not served", lambda: server.predict(_predict_request(name="x"))),
        (code.NOT_FOUND, "no version 7", lambda: server.predict(_predict_request(version=7))),
        (code.INVALID_ARGUMENT, "no version label 'beta'", lambda: server.predict(_predict_request(label="beta"))),
        (code.NOT_FOUND, "no version 9", lambda: server.predict(_predict_request(label="gone"))),
        (code.INVALID_ARGUMENT, "model_spec.name is empty", lambda: server.predict(_predict_request(name=""))),
        (code.INVALID_ARGUMENT, "no model_spec", lambda: server.predict(predict_pb2.PredictRequest())),
        (code.INVALID_ARGUMENT, "output_filter names 'probabilities' twice",
         lambda: server.predict(_with_filter(["probabilities", "probabilities"]))),
        (code.INVALID_ARGUMENT, "metadata_field must be ['signature_def']",
         lambda: server.metadata(meta(model_spec=model_pb2.ModelSpec(name="x")))),  # Checked before the model.
        (code.INVALID_ARGUMENT, "metadata_field must be ['signature_def']",
         lambda: server.metadata(meta(model_spec=model_pb2.ModelSpec(name="m"), metadata_field=["x"]))),
        (code.NOT_FOUND, "no version 5",
         lambda: server.status(status(model_spec=model_pb2.ModelSpec(name="m", version={"value": 5})))),
        (code.NOT_FOUND, "model 'x'", lambda: server.status(status(model_spec=model_pb2.ModelSpec(name="x")))),
    ]
    for expected_code, fragment, call in cases:
        got_code, message = _code(call)
        assert (got_code, fragment in message) == (expected_code, True), (fragment, got_code, message)


def _with_filter(names):
    request = _predict_request()
    request.output_filter.extend(names)
    return request


def test_specific_policy_is_honoured_by_metadata_and_status(good_versions):
    server = serving.ModelServer(_config(good_versions, "model_version_policy { specific { versions: 1 } }"),
                                 warmup=False)
    assert server.refresh() == {"m": [1]}
    spec = model_pb2.ModelSpec(name="m", version={"value": 2})
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"])
    code, message = _code(lambda: server.metadata(request))
    assert code == grpc.StatusCode.NOT_FOUND and "version policy specific 1 does not serve it" in message
    code, _ = _code(lambda: server.status(get_model_status_pb2.GetModelStatusRequest(model_spec=spec)))
    assert code == grpc.StatusCode.NOT_FOUND
    response = server.status(get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="m")))
    assert [(s.version, s.state) for s in response.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    request.model_spec.version.value = 1
    assert server.metadata(request).model_spec.version.value == 1
