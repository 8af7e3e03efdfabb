"""A few bytes must not cost gigabytes (issue 26, item 2): sizes a request claims are checked before anything
is allocated for them, with TF Serving's codes, and the server's memory stays bounded."""

import base64
import http.client
import json
import os
import random

import cv2
import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from tests.export.conftest import CLIP_LENGTH
from tests.serving.conftest import ServerProcess
from tests.serving.test_rest_api import free_port
from tfvideo import export as tfv_export
from tfvideo.serving import _limits

MB = 1 << 20


def _jpeg(width=40, height=24, **params):
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.arange(width, dtype=np.uint8) * 5
    flags = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if params.get("progressive") else []
    return cv2.imencode(".jpg", image, flags)[1].tobytes()


def _claiming(jpeg, width, height):
    """`jpeg` with its frame header patched to claim width x height (the data stays tiny)."""
    data = bytearray(jpeg)
    at = data.index(b"\xff\xc0") if b"\xff\xc0" in data else data.index(b"\xff\xc2")
    data[at + 5:at + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_image_headers_give_the_decoded_size_of_every_format(tmp_path):
    image = np.zeros((24, 40, 3), np.uint8)
    gif = str(tmp_path / "a.gif")
    frames = [Image.fromarray(np.full((24, 40, 3), 40 * k, np.uint8)) for k in range(3)]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    with open(gif, "rb") as f:
        gif_bytes = f.read()
    cases = {
        "JPEG": _jpeg(),
        "progressive JPEG": _jpeg(progressive=True),
        "JPEG with an EXIF segment": _jpeg()[:2] + b"\xff\xe1\x00\x08Exif\x00\x00" + _jpeg()[2:],
        "PNG": cv2.imencode(".png", image)[1].tobytes(),
        "BMP": cv2.imencode(".bmp", image)[1].tobytes(),
        "WebP": cv2.imencode(".webp", image)[1].tobytes(),
        "GIF": gif_bytes,
    }
    for name, data in cases.items():
        kind, width, height, count = _limits.image_size(data)
        assert (width, height) == (40, 24), name
        assert count == (3 if name == "GIF" else 1), name
        assert name.endswith(kind) or name.startswith(kind), (name, kind)
        # The header agrees with what TensorFlow decodes.
        if name != "GIF":
            assert tf.io.decode_image(data, channels=3, expand_animations=False).shape == (24, 40, 3), name
    bomb = _claiming(_jpeg(), 6000, 6000)
    assert len(bomb) < 1000 and _limits.image_size(bomb) == ("JPEG", 6000, 6000, 1)
    assert _limits.image_size(b"not an image") is None
    assert _limits.image_size(b"\xff\xd8\xff") == ("JPEG", 0, 0, 1)  # Too short to claim anything.


def _bomb_proto(shape, dtype=types_pb2.DT_UINT8, **values):
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in shape]), **values)


def test_declared_bytes_come_from_the_shape_not_the_values():
    bomb = _bomb_proto([1, 4, 4000, 4000, 3], int_val=[0])
    assert bomb.ByteSize() < 60
    assert _limits.declared_bytes(bomb) == ([1, 4, 4000, 4000, 3], 192_000_000, 192_000_000)
    assert _limits.declared_bytes(tf.make_tensor_proto(np.zeros((2, 3), np.float32)))[2] == 24
    strings = _bomb_proto([10**8], types_pb2.DT_STRING, string_val=[b"abc"])
    assert _limits.declared_bytes(strings)[2] >= 3 * 10**8  # Missing values repeat the last one.
    with pytest.raises(ValueError, match="dimension -2"):
        _limits.declared_bytes(_bomb_proto([3, -2]))


def _reference_structure(value, depth=1):
    """(depth, values + containers) walking the parsed document."""
    if isinstance(value, list):
        inner = [_reference_structure(v, depth + 1) for v in value]
    elif isinstance(value, dict):
        inner = [_reference_structure(v, depth + 1) for v in value.values()]
    else:
        return depth - 1, 1
    return max([depth] + [d for d, _ in inner]), 1 + sum(n for _, n in inner)


def test_json_structure_matches_the_parsed_document():
    rng = random.Random(0)
    texts = ["a", "[[{", "\\\"]]", "b64\\n,", "\u00e9]", "\\\\"]

    def document(level):
        if level > 6 or rng.random() < 0.3:
            return rng.choice([1, -2.5e3, True, None, rng.choice(texts) * rng.randint(0, 3)])
        if rng.random() < 0.5:
            return [document(level + 1) for _ in range(rng.randint(0, 4))]
        return {rng.choice(texts) + str(k): document(level + 1) for k in range(rng.randint(0, 4))}

    for _ in range(200):
        doc = {"inputs": document(1)}
        body = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode()
        depth, elements = _limits.json_structure(body)
        want_depth, want_elements = _reference_structure(doc)
        assert depth == want_depth, body
        # An upper bound: commas + containers + 1 overcounts only empty containers.
        assert want_elements <= elements <= 2 * want_elements, body
    deep = b'{"inputs": ' + b"[" * 600 + b"1" + b"]" * 600 + b"}"
    assert _limits.json_structure(deep)[0] == 601


# --- Each bomb against tfvideo-serve, with its peak memory. ---
@pytest.fixture(scope="module")
def limits_served(tiny_model_dir, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("limits_exports"))
    tfv_export.export_saved_model(root, model_dir=tiny_model_dir, model_name="tiny",
                                  input_types=["jpeg_frames", "frames"], warmup=False)
    port = free_port()
    server = ServerProcess([f"--model_base_path={root}/tiny", f"--rest_api_port={port}", "--max_workers=2",
                            "--max_request_pixels=20000000"], os.path.join(root, "server.log"))
    server.lines.get(timeout=60)
    channel = grpc.insecure_channel(server.target)
    yield {"server": server, "rest_port": port, "stub": prediction_service_pb2_grpc.PredictionServiceStub(channel)}
    channel.close()
    server.stop()


def _memory(pid):
    """(VmRSS, VmHWM) of a process in bytes."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return tuple(int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM"))


def _grpc(served, signature, key, proto):
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="tiny", signature_name=signature))
    request.inputs[key].CopyFrom(proto)
    try:
        served["stub"].Predict(request, timeout=120)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def _rest(served, body):
    connection = http.client.HTTPConnection("127.0.0.1", served["rest_port"], timeout=120)
    try:
        connection.request("POST", "/v1/models/tiny:predict", body, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read()).get("error", "")
    finally:
        connection.close()


def test_bombs_are_refused_before_allocation_and_memory_stays_bounded(limits_served):
    served, pid = limits_served, limits_served["server"].proc.pid
    good = [_jpeg(32, 32)] * CLIP_LENGTH
    good_rest = json.dumps({"instances": [[{"b64": base64.b64encode(j).decode()} for j in good]]}).encode()
    for _ in range(2):  # Warm: the model has run over both protocols.
        assert _grpc(served, "jpeg_frames", "jpeg_frames", tf.make_tensor_proto(np.array([good], object)))[0] == \
            grpc.StatusCode.OK
        assert _rest(served, good_rest)[0] == 200
    base_rss, base_peak = _memory(pid)
    b64 = lambda data: {"b64": base64.b64encode(data).decode()}  # noqa: E731
    big_frame, large_frame = _claiming(_jpeg(), 6000, 6000), _claiming(_jpeg(), 3000, 3000)
    bombs = [
        ("gRPC: a 54-byte proto declaring [1,4,4000,4000,3] (192 MB)",
         lambda: _grpc(served, "frames", "frames", _bomb_proto([1, 4, 4000, 4000, 3], int_val=[0])),
         grpc.StatusCode.RESOURCE_EXHAUSTED, "input 'frames' declares shape [1, 4, 4000, 4000, 3] of uint8"),
        ("gRPC: one string declared 10^8 times",
         lambda: _grpc(served, "jpeg_frames", "jpeg_frames",
                       _bomb_proto([1, 10**8], types_pb2.DT_STRING, string_val=[good[0]])),
         grpc.StatusCode.RESOURCE_EXHAUSTED, "--max_request_bytes"),
        ("gRPC: JPEG frames whose headers claim 6000x6000",
         lambda: _grpc(served, "jpeg_frames", "jpeg_frames",
                       tf.make_tensor_proto(np.array([[big_frame] * CLIP_LENGTH], object))),
         grpc.StatusCode.RESOURCE_EXHAUSTED,
         "input 'jpeg_frames' element [0, 0] is a 6000x6000 JPEG (36000000 pixels): over the limit of 16777216 "
         "pixels per image (--max_frame_pixels)"),
        ("REST: JPEG frames claiming 3000x3000 each, over the request's pixels",
         lambda: _rest(served, json.dumps({"instances": [[b64(large_frame)] * CLIP_LENGTH]}).encode()),
         413, "input 'jpeg_frames' element [0, 2] (a 3000x3000 JPEG) brings the request to 27000000 pixels: over "
              "the limit of 20000000 pixels per request (--max_request_pixels)"),
        ("REST: JSON nested 600 deep",
         lambda: _rest(served, b'{"inputs": ' + b"[" * 600 + b"1" + b"]" * 600 + b"}"),
         400, "the body nests 601 levels deep; the limit is 64 (--rest_max_json_depth)"),
        ("REST: 24 MB of one-element lists (9 Mi containers)",
         lambda: _rest(served, b'{"signature_name": "frames", "inputs": [' + b"[0]," * (6 << 20) + b"[0]]}"),
         413, "JSON values and containers; the limit is 8388608 (--rest_max_json_elements)"),
    ]
    for name, send, code, fragment in bombs:
        got, message = send()
        assert got == code and fragment in message, (name, got, message)
        rss, peak = _memory(pid)
        assert rss - base_rss < 100 * MB, (name, f"RSS +{(rss - base_rss) / MB:.0f} MB after the answer")
        assert peak - base_peak < 200 * MB, (name, f"peak RSS +{(peak - base_peak) / MB:.0f} MB")
    assert _rest(served, good_rest)[0] == 200  # Still serving.


def test_limit_arguments_are_validated():
    from tfvideo import serving

    for name in ("max_frame_pixels", "max_request_pixels"):
        with pytest.raises(ValueError, match=f"{name}=0 must be a finite number > 0"):
            serving.ModelServer({"m": "/nonexistent"}, **{name: 0})
    stand_in = type("S", (), {"max_workers": 1, "max_request_bytes": 10})()
    for name in ("max_body_bytes", "max_json_depth", "max_json_elements", "max_connections"):
        with pytest.raises(ValueError, match=f"{name}=0 must be an integer >= 1"):
            serving.RestServer(stand_in, **{name: 0})
