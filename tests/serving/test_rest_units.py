"""The REST API without a model: TF Serving's JSON <-> tensor conventions, status mapping, shutdown."""

import base64
import time
import types

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2

from tfvideo.serving import _rest, _server


def _info(dtype, shape):
    info = meta_graph_pb2.TensorInfo(dtype=tf.dtypes.as_dtype(dtype).as_datatype_enum)
    for size in shape:
        info.tensor_shape.dim.add(size=size)
    return info


SIGNATURE = {"video": _info(tf.string, [-1, -1]), "gain": _info(tf.float32, [-1, 2]), "ids": _info(tf.int64, [-1])}
SPEC = model_pb2.ModelSpec(name="m")


def _arrays(body, signature=SIGNATURE):
    request, layout = _rest.request_from_json(body, signature, SPEC)
    return {k: tf.make_ndarray(v) for k, v in request.inputs.items()}, layout


def b64(data):
    return {"b64": base64.b64encode(data).decode()}


def test_row_and_columnar_layouts_give_the_same_tensors():
    jpeg = b"\xff\xd8 jpeg bytes \x00"
    rows = [{"video": [b64(jpeg), "text"], "gain": [0.5, -1], "ids": 7},
            {"video": [b64(b""), b64(jpeg)], "gain": [1e-3, 2.25], "ids": 2 ** 40}]
    by_rows, layout = _arrays({"instances": rows})
    assert layout == "row"
    by_columns, layout = _arrays({"inputs": {"video": [r["video"] for r in rows], "gain": [r["gain"] for r in rows],
                                             "ids": [r["ids"] for r in rows]}})
    assert layout == "columnar"
    for arrays in (by_rows, by_columns):
        assert arrays["video"].tolist() == [[jpeg, b"text"], [b"", jpeg]]
        assert arrays["gain"].dtype == np.float32
        np.testing.assert_array_equal(arrays["gain"], np.array([[0.5, -1], [1e-3, 2.25]], np.float32))
        assert arrays["ids"].dtype == np.int64 and arrays["ids"].tolist() == [7, 2 ** 40]


@pytest.mark.parametrize("body, fragment", [
    ({"instances": [{"video": [["x"]], "gain": [1, 2]}]}, "input 'ids' is missing from instance 0"),
    ({"instances": [[1, 2]]}, "'instances' holds plain values but the signature takes 3 inputs"),
    ({"inputs": [1, 2]}, "'inputs' is a plain value but the signature takes 3 inputs"),
    ({"inputs": {"video": [["a"]], "gain": [[1, 2]]}}, "input 'ids' is missing from 'inputs'"),
    ({"inputs": {"video": [["a"]], "gain": [[1, 2]], "ids": [1], "extra": 1}}, "input 'extra' is not an input"),
    ({"inputs": {"video": [["a"]], "gain": [[1, 2]], "ids": [1.5]}}, "input 'ids': JSON value 1.5 is not an integer"),
    ({"inputs": {"video": [["a"]], "gain": [[1, True]], "ids": [1]}}, "input 'gain': JSON value true (boolean)"),
    ({"inputs": {"video": [["a"]], "gain": [[16777217, 0]], "ids": [1]}},
     "input 'gain': cannot convert JSON value 16777217 to float32 without loss of precision"),
    ({"inputs": {"video": [["a"]], "gain": [[1e39, 0]], "ids": [1]}}, "cannot convert JSON value 1e+39 to float32"),
    ({"inputs": {"video": [["a"]], "gain": [[1, 2]], "ids": [2 ** 64]}}, "input 'ids': values out of range for int64"),
    ({"inputs": {"video": [[3]], "gain": [[1, 2]], "ids": [1]}},
     "input 'video': JSON value 3 (number) is not of expected type string"),
    ({"inputs": {"video": [[{"b64": "YQ==", "more": 1}]], "gain": [[1, 2]], "ids": [1]}},
     "input 'video': JSON object {\"b64\": \"YQ==\", \"more\": 1} is not a {\"b64\": \"...\"} object"),
    ({"inputs": {"video": [["a", ["b"]]], "gain": [[1, 2]], "ids": [1]}},
     "input 'video': a list at [0, 1] is nested deeper than the shape [1, 2]"),
    ({"inputs": {"video": [["a"]], "gain": [[1, 2], [3]], "ids": [1]}},
     "input 'gain': ragged list: [1] has 1 elements where 2 are expected"),
    ({"instances": [{"video": ["a"], "gain": [1, 2], "ids": 1}, [1]]}, "instance 1 is not an object of named inputs"),
])
def test_bad_values_name_the_input(body, fragment):
    with pytest.raises(_server.RequestError) as info:
        _arrays(body)
    assert info.value.code.name == "INVALID_ARGUMENT"
    assert fragment in info.value.message, info.value.message


def test_outputs_are_written_as_tf_serving_writes_them():
    response = predict_pb2.PredictResponse()
    response.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(np.array([[0.2, np.nan], [1.0, np.inf]], np.float32)))
    response.outputs["top_k_labels"].CopyFrom(tf.make_tensor_proto(np.array([[b"left"], ["d\u00e9j\u00e0".encode()]], object)))
    response.outputs["thumb_bytes"].CopyFrom(tf.make_tensor_proto(np.array([b"\x00\x01", b"\xff"], object)))
    rows = _rest.response_to_json(response, "row")["predictions"]
    assert rows[0]["probabilities"][0] == 0.2  # The float32 value's shortest decimal, not 0.20000000298...
    assert np.isnan(rows[0]["probabilities"][1]) and rows[1]["probabilities"] == [1.0, float("inf")]
    assert [r["top_k_labels"] for r in rows] == [["left"], ["d\u00e9j\u00e0"]]
    assert [r["thumb_bytes"] for r in rows] == [{"b64": "AAE="}, {"b64": "/w=="}]
    columns = _rest.response_to_json(response, "columnar")["outputs"]
    assert columns["top_k_labels"] == [["left"], ["d\u00e9j\u00e0"]] and columns["thumb_bytes"][1] == {"b64": "/w=="}
    single = predict_pb2.PredictResponse()
    single.outputs["scores"].CopyFrom(tf.make_tensor_proto(np.array([[1, 2]], np.int64)))
    assert _rest.response_to_json(single, "row") == {"predictions": [[1, 2]]}
    assert _rest.response_to_json(single, "columnar") == {"outputs": [[1, 2]]}


def test_every_grpc_code_has_tf_servings_http_status():
    import grpc

    assert set(_rest.HTTP_STATUS) == set(grpc.StatusCode)
    assert (_rest.HTTP_STATUS[grpc.StatusCode.INVALID_ARGUMENT], _rest.HTTP_STATUS[grpc.StatusCode.NOT_FOUND],
            _rest.HTTP_STATUS[grpc.StatusCode.FAILED_PRECONDITION],
            _rest.HTTP_STATUS[grpc.StatusCode.RESOURCE_EXHAUSTED]) == (400, 404, 400, 429)


class _SlowModelServer:
    """Stands in for ModelServer: Predict answers once `release` is set (a slow model)."""

    max_workers = 2
    max_request_bytes = 1 << 20

    def __init__(self):
        import threading

        self.started = threading.Event()
        self.release = threading.Event()

    def resolve_servable(self, name, version=None, label=None):
        from tensorflow.core.protobuf import meta_graph_pb2

        signature = meta_graph_pb2.SignatureDef()
        signature.inputs["ids"].CopyFrom(_info(tf.int64, [-1]))
        return types.SimpleNamespace(name="m", version=3, signature_defs={"serving_default": signature})

    def predict(self, request, servable=None):
        self.started.set()
        assert self.release.wait(30)
        response = predict_pb2.PredictResponse()
        response.outputs["doubled"].CopyFrom(tf.make_tensor_proto(2 * tf.make_ndarray(request.inputs["ids"])))
        self.finished_at = time.monotonic()
        return response


def test_stop_finishes_in_flight_requests_then_refuses_connections():
    import json
    import threading
    import urllib.error
    import urllib.request

    model_server = _SlowModelServer()
    rest = _rest.RestServer(model_server)
    port = rest.start(0)
    url = f"http://127.0.0.1:{port}/v1/models/m:predict"
    answers = []

    def post():
        request = urllib.request.Request(url, data=json.dumps({"instances": [4, 5]}).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            answers.append((answer.status, json.loads(answer.read())))

    client = threading.Thread(target=post)
    client.start()
    assert model_server.started.wait(30)
    stopped_at = []
    stopper = threading.Thread(target=lambda: [rest.stop(grace=20), stopped_at.append(time.monotonic())])
    stopper.start()
    time.sleep(1.5)  # Longer than stopping the listener takes: stop() must be waiting for the request.
    assert not stopped_at
    model_server.release.set()
    client.join(30)
    stopper.join(30)
    assert answers == [(200, {"predictions": [8, 10]})]
    assert stopped_at[0] >= model_server.finished_at
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, data=b"{}", timeout=5)


def test_a_signature_without_inputs_takes_an_empty_or_absent_inputs_object():
    """The export's `clip_spec` signature has no inputs: TF Serving's `{"inputs": {}}`, or no key."""
    assert _arrays({"inputs": {}}, {}) == ({}, "columnar")
    assert _arrays({"signature_name": "clip_spec"}, {}) == ({}, "columnar")
    with pytest.raises(_server.RequestError, match="input 'x' is not an input of the signature; it takes no inputs$"):
        _arrays({"inputs": {"x": 1}}, {})
    with pytest.raises(_server.RequestError, match=r"missing 'instances' \(row format\) or 'inputs'"):
        _arrays({"signature_name": "s"})  # A signature with inputs still needs them.
    text = _rest.response_to_json(predict_pb2.PredictResponse(outputs={"clip_spec": tf.make_tensor_proto(b'{"a": 1}')}),
                                  "columnar")
    assert text == {"outputs": '{"a": 1}'}
