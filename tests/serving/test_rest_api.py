"""TF Serving's REST API of tfvideo-serve (subprocess, --rest_api_port) with a plain HTTP client.

Every answer is compared with the gRPC path of the same server: the same model registry,
input checks and numbers (1e-6).
"""

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import meta_graph_pb2

from tests.conftest import frame_code_frames
from tests.export.conftest import CLIP_LENGTH, LABELS
from tests.serving.conftest import ROOT, ServerProcess
from tfvideo import data as tfv_data
from tfvideo import export as tfv_export
from tfvideo import serving

pytestmark = pytest.mark.slow
MAX_REQUEST_BYTES = 2_000_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def rest_served(tiny_model_dir, tmp_path_factory):
    """tfvideo-serve with the REST API: model "tiny" (jpeg_frames, frames, sequence_example)."""
    root = str(tmp_path_factory.mktemp("rest_exports"))
    tfv_export.export_saved_model(root, model_dir=tiny_model_dir, model_name="tiny",
                                  input_types=["jpeg_frames", "frames", "sequence_example"])
    port = free_port()
    server = ServerProcess(
        [f"--model_base_path={root}/tiny", f"--rest_api_port={port}", f"--max_request_bytes={MAX_REQUEST_BYTES}",
         "--max_workers=2"],
        os.path.join(root, "server.log"),
    )
    rest_line = server.lines.get(timeout=60).strip()
    client = serving.Client(server.target, timeout=60)
    yield {"root": root, "server": server, "rest_line": rest_line, "rest_port": port, "grpc": client,
           "url": f"http://127.0.0.1:{port}"}
    client.close()
    server.stop()


def call(served, method, path, body=None, raw=None):
    """(HTTP status, parsed JSON body) with urllib; `raw` sends bytes as they are."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(served["url"] + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            assert answer.headers["Content-Type"] == "application/json"
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        assert e.headers["Content-Type"] == "application/json"
        return e.code, json.loads(e.read())


def b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


def _clip(seed, size=32):
    frames = frame_code_frames(CLIP_LENGTH, height=size, width=size + 8)
    frames[..., 1] = np.uint8(40 * seed)
    return frames


def test_ready_lines_name_both_ports(rest_served):
    server = rest_served["server"]
    assert server.ready_line == f"tfvideo-serve: serving tiny on 127.0.0.1:{server.port}"
    assert rest_served["rest_line"] == f"tfvideo-serve: REST API on 127.0.0.1:{rest_served['rest_port']}"


def test_model_status_and_metadata_match_tf_serving_json(rest_served):
    expected = {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert call(rest_served, "GET", "/v1/models/tiny") == (200, expected)
    assert call(rest_served, "GET", "/v1/models/tiny/versions/1") == (200, expected)
    status, answer = call(rest_served, "GET", "/v1/models/tiny/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": "tiny", "version": "1", "signature_name": ""}
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "jpeg_frames", "frames", "sequence_example", "clip_spec"}
    jpeg = signatures["jpeg_frames"]["inputs"]["jpeg_frames"]
    assert jpeg["dtype"] == "DT_STRING" and [d["size"] for d in jpeg["tensor_shape"]["dim"]] == ["-1", str(CLIP_LENGTH)]
    # The same SignatureDefs as over gRPC.
    over_grpc = rest_served["grpc"].metadata("tiny")
    for key, value in signatures.items():
        assert json_format.ParseDict(value, meta_graph_pb2.SignatureDef()) == over_grpc[key]
    assert call(rest_served, "GET", "/v1/models/tiny/versions/1/metadata")[1] == answer


def test_row_and_columnar_predict_equal_grpc(rest_served):
    grpc_client = rest_served["grpc"]
    clips = np.stack([_clip(0), _clip(1)])  # [2, T, H, W, 3]
    expected = grpc_client.predict("tiny", {"frames": clips}, signature_name="frames")
    assert not np.allclose(expected["probabilities"][0], expected["probabilities"][1], atol=1e-4)

    # frames, row format: one object per instance with every output.
    status, answer = call(rest_served, "POST", "/v1/models/tiny:predict",
                          {"signature_name": "frames", "instances": clips.tolist()})
    assert status == 200, answer
    rows = answer["predictions"]
    assert len(rows) == 2 and set(rows[0]) == {"logits", "probabilities", "top_k_indices", "top_k_labels"}
    np.testing.assert_allclose([r["probabilities"] for r in rows], expected["probabilities"], atol=1e-6)
    np.testing.assert_allclose([r["logits"] for r in rows], expected["logits"], atol=1e-6)
    assert [r["top_k_indices"] for r in rows] == expected["top_k_indices"].tolist()
    assert [r["top_k_labels"] for r in rows] == [[s.decode() for s in row] for row in expected["top_k_labels"]]

    # frames, columnar format, pinned version: one array per output.
    status, answer = call(rest_served, "POST", "/v1/models/tiny/versions/1:predict",
                          {"signature_name": "frames", "inputs": {"frames": clips.tolist()}})
    assert status == 200, answer
    np.testing.assert_allclose(answer["outputs"]["probabilities"], expected["probabilities"], atol=1e-6)
    assert answer["outputs"]["top_k_labels"][1] == [LABELS[k] for k in expected["top_k_indices"][1]]

    # jpeg_frames (the default signature) with base64 frames, both formats.
    jpegs = [[tf.io.encode_jpeg(f, quality=90).numpy() for f in clip] for clip in clips]
    expected = grpc_client.predict("tiny", {"jpeg_frames": np.array(jpegs, object)})
    status, answer = call(rest_served, "POST", "/v1/models/tiny:predict",
                          {"instances": [[b64(j) for j in video] for video in jpegs]})
    assert status == 200, answer
    np.testing.assert_allclose([r["probabilities"] for r in answer["predictions"]], expected["probabilities"],
                               atol=1e-6)
    status, answer = call(rest_served, "POST", "/v1/models/tiny:predict",
                          {"signature_name": "jpeg_frames", "inputs": [[b64(j) for j in video] for video in jpegs]})
    assert status == 200, answer
    np.testing.assert_allclose(answer["outputs"]["probabilities"], expected["probabilities"], atol=1e-6)

    # sequence_example: one base64 string per video.
    example = tfv_data.make_sequence_example(jpegs[0] + jpegs[1], media_id="v").SerializeToString()
    expected = grpc_client.predict("tiny", {"sequence_example": np.array([example], object)},
                                   signature_name="sequence_example")
    status, answer = call(rest_served, "POST", "/v1/models/tiny:predict",
                          {"signature_name": "sequence_example", "instances": [b64(example)]})
    assert status == 200, answer
    np.testing.assert_allclose(answer["predictions"][0]["probabilities"], expected["probabilities"][0], atol=1e-6)

    # The library's RestClient reads the same numbers back with the signature's dtypes.
    rest_client = serving.RestClient(f"127.0.0.1:{rest_served['rest_port']}")
    out = rest_client.predict("tiny", {"frames": clips}, signature_name="frames")
    direct = grpc_client.predict("tiny", {"frames": clips}, signature_name="frames")
    for key, value in direct.items():
        assert out[key].dtype == value.dtype, key
        if value.dtype == object:
            assert out[key].tolist() == value.tolist()
        else:
            np.testing.assert_allclose(out[key], value, atol=1e-6)
    assert rest_client.status("tiny") == grpc_client.status("tiny")
    assert rest_client.clip_length("tiny") == CLIP_LENGTH


def test_bad_requests_get_tf_serving_statuses_and_server_keeps_serving(rest_served):
    clip = _clip(2)
    good = {"signature_name": "frames", "instances": [clip.tolist()]}
    expected = rest_served["grpc"].predict("tiny", {"frames": clip[None]}, signature_name="frames")["probabilities"]
    jpeg = b64(tf.io.encode_jpeg(clip[0]).numpy())
    frames_body = lambda value, key="instances": {"signature_name": "frames", key: value}  # noqa: E731
    over_255 = clip.astype(int)
    over_255[3, 5, 7, 1] = 300
    too_large = np.zeros((1, CLIP_LENGTH, 300, 300, 3), np.uint8).tolist()
    predict = "/v1/models/tiny:predict"
    bad = [
        # (method, path, body or raw bytes, HTTP status, fragment of the error)
        ("POST", predict, b'{"instances": [1, 2', 400, "JSON parse error"),
        ("POST", predict, b"", 400, "the request body is empty"),
        ("POST", predict, b"[1, 2]", 400, "must be a JSON object, got array"),
        ("POST", predict, {"signature_name": "frames"}, 400, "missing 'instances' (row format) or 'inputs'"),
        ("POST", predict, {"instances": [], "inputs": []}, 400, "has both 'instances'"),
        ("POST", predict, frames_body([]), 400, "'instances' is an empty list"),
        ("POST", predict, {"signature_name": 3, "instances": [1]}, 400, "'signature_name' must be a string"),
        ("POST", predict, frames_body((clip / 2).tolist(), "inputs"), 400,
         "input 'frames': JSON value 127.5 is not an integer; the input's type is uint8"),
        ("POST", predict, frames_body([over_255.tolist()]), 400,
         "input 'frames' (instance 0): JSON value 300 is out of range for uint8 [0, 255]"),
        ("POST", predict, frames_body([[["a"]]]), 400, "input 'frames' (instance 0): JSON value \"a\" (string) is "
                                                       "not of expected type uint8"),
        ("POST", predict, frames_body([clip.tolist(), clip[:5].tolist()]), 400,
         "input 'frames': instance 1 has shape [5, 32, 40, 3] but instance 0 has [8, 32, 40, 3]"),
        ("POST", predict, frames_body([clip.tolist()[:7] + [clip[0, :3].tolist()]]), 400,
         "input 'frames' (instance 0): ragged list: [7] has 3 elements where 32 are expected"),
        ("POST", predict, frames_body(clip.tolist(), "inputs"), 400,
         "input 'frames' has shape [8, 32, 40, 3]; signature 'frames' expects [-1, 8, -1, -1, 3]"),
        ("POST", predict, frames_body([np.concatenate([clip, clip]).tolist()]), 400,
         "input 'frames' has 16 frames per video (shape [1, 16, 32, 40, 3]); signature 'frames' expects 8"),
        ("POST", predict, frames_body({"video": [clip.tolist()]}, "inputs"), 400,
         "input 'video' is not an input of the signature; it takes frames"),
        ("POST", predict, {"instances": [[jpeg] * (CLIP_LENGTH - 1)]}, 400,
         "input 'jpeg_frames' has 7 frames per video"),
        ("POST", predict, {"instances": [[{"b64": "not base64!"}] * CLIP_LENGTH]}, 400,
         "input 'jpeg_frames' (instance 0): cannot base64-decode"),
        ("POST", predict, {"instances": [[{"b64": "aGVsbG8=", "x": 1}] * CLIP_LENGTH]}, 400,
         "input 'jpeg_frames' (instance 0): JSON object"),
        ("POST", predict, {"instances": [[b64(b"not a jpeg")] * CLIP_LENGTH]}, 400,
         "signature 'serving_default' rejected input 'jpeg_frames': Unknown image file format"),
        ("POST", predict, {"signature_name": "nope", "instances": [1]}, 400,
         "model 'tiny' version 1 has no signature 'nope'"),
        ("POST", "/v1/models/nope:predict", good, 404, "model 'nope' is not served"),
        ("POST", "/v1/models/tiny/versions/9:predict", good, 404, "no version 9"),
        ("GET", "/v1/models/nope", None, 404, "model 'nope' is not served"),
        ("GET", "/v1/models/tiny/versions/9", None, 404, "no version 9"),
        ("GET", "/v1/models/nope/metadata", None, 404, "model 'nope' is not served"),
        ("GET", "/v1/models/tiny/labels/stable", None, 400, "has no version label 'stable'"),  # INVALID_ARGUMENT, as TF Serving.
        ("GET", "/v1/models/tiny/versions/x1", None, 400, "failed to convert version 'x1' to a number"),
        ("GET", "/v1/models", None, 400, "missing model name"),
        ("GET", "/v1/models/tiny:predict", None, 400, "malformed request: GET /v1/models/tiny:predict"),
        ("POST", "/v1/models/tiny:classify", good, 501, "classify is not served"),
        ("GET", "/index.html", None, 404, "no such resource"),
        ("POST", predict, frames_body(too_large, "inputs"), 413, "exceeds the server's limit of 2000000 bytes "
                                                                  "(largest input: 'frames')"),
    ]
    for method, path, body, status, fragment in bad:
        raw = body if isinstance(body, bytes) else None
        got, answer = call(rest_served, method, path, None if raw is not None else body, raw=raw)
        assert (got, set(answer)) == (status, {"error"}), (path, body if raw else "", answer)
        assert fragment in answer["error"], (fragment, answer["error"])
        got, answer = call(rest_served, "POST", predict, good)
        assert got == 200, answer
        np.testing.assert_allclose([r["probabilities"] for r in answer["predictions"]], expected, atol=1e-6)

    # A body over the REST limit (4 x --max_request_bytes) is refused before it is read.
    connection = http.client.HTTPConnection("127.0.0.1", rest_served["rest_port"], timeout=60)
    connection.putrequest("POST", predict)
    connection.putheader("Content-Length", str(4 * MAX_REQUEST_BYTES + 1))
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413 and "exceeds the REST limit of 8000000 bytes" in json.loads(answer.read())["error"]
    connection.close()
    # gRPC is still fine too.
    out = rest_served["grpc"].predict("tiny", {"frames": clip[None]}, signature_name="frames")
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-6)


def test_rest_client_errors_carry_status_and_message(rest_served):
    client = serving.RestClient(rest_served["url"])
    with pytest.raises(serving.RestError) as info:
        client.predict("nope", {"frames": _clip(0)[None]}, signature_name="frames")
    assert info.value.status == 404 and "model 'nope' is not served" in info.value.message
    with pytest.raises(ConnectionError, match=r"cannot reach the REST API at http://127.0.0.1:\d+"):
        serving.RestClient(f"127.0.0.1:{free_port()}", timeout=5).status("tiny")


def _run(args, timeout=300):
    return subprocess.run([sys.executable, *args], check=False, capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "",
                                                "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_predict_binary_over_rest_prints_what_grpc_prints(rest_served, tmp_path):
    """Both protocols print the same lines; a bad file among good ones is one line, the others go on."""
    paths = []
    for i, n in enumerate((17, 11)):
        frames = frame_code_frames(n, height=40, width=48)
        frames[..., 2] = np.uint8(70 * i)
        paths.append(str(tmp_path / f"v{i}.mp4"))
        tfv_data.write_video(paths[-1], frames, fps=10)
    broken = str(tmp_path / "broken.mp4")
    with open(broken, "wb") as f:
        f.write(b"\x00 not a video" * 20)
    server = rest_served["server"]
    args = ["--model=tiny", "--top_k=3", paths[0], broken, paths[1]]
    over_grpc = _run(["-m", "export.predict", f"--server={server.target}", *args])
    over_rest = _run(["-m", "export.predict", "--rest", f"--server=127.0.0.1:{rest_served['rest_port']}", *args])
    for out in (over_grpc, over_rest):
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
        ours = [line for line in out.stderr.splitlines() if line.startswith("tfvideo-predict")]
        assert len(ours) == 2 and ours[0].startswith(f"tfvideo-predict: error: {broken}: "), ours
        assert ours[1] == "tfvideo-predict: 1 of 3 inputs failed"
    assert over_rest.stdout == over_grpc.stdout
    assert [line.split("\t")[0] for line in over_rest.stdout.splitlines()] == paths


def test_serve_validates_rest_api_port(tmp_path):
    out = _run(["-m", "export.serve", f"--model_base_path={tmp_path}", "--rest_api_port=70000"], timeout=120)
    assert out.returncode == 2
    assert "tfvideo-serve: error: --rest_api_port=70000 must be in [0, 65535]." in out.stderr, out.stderr[-1000:]


def test_grpc_and_rest_statuses_agree(rest_served):
    """The HTTP status is TF Serving's mapping of the gRPC code the same request gets."""
    client = rest_served["grpc"]
    clip = _clip(0)
    for call_grpc, method, path, body in (
        (lambda: client.predict("nope", {"frames": clip[None]}, signature_name="frames"), "POST",
         "/v1/models/nope:predict", {"signature_name": "frames", "instances": [clip.tolist()]}),
        (lambda: client.predict("tiny", {"frames": clip}, signature_name="frames"), "POST",
         "/v1/models/tiny:predict", {"signature_name": "frames", "inputs": clip.tolist()}),
        (lambda: client.status("tiny", version=5), "GET", "/v1/models/tiny/versions/5", None),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call_grpc()
        status, answer = call(rest_served, method, path, body)
        assert status == serving._rest.HTTP_STATUS[info.value.code()]
        assert answer["error"] == info.value.details()
