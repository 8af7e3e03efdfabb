"""TF Serving's REST API (`/v1/models/...`) beside the development gRPC server.

`RestServer(model_server).start(port)` answers, on the standard library's HTTP server:

  GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            GetModelStatus as JSON
  GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   GetModelMetadata as JSON
  POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    Predict
  POST /v1/models/{name}[/versions/{v}|/labels/{l}]:stream_open | :stream_step | :stream_close
                                                              streams of a streaming export, state
                                                              held by the server (_streams.py)

Predict bodies take TF Serving's two layouts: row (`{"instances": [...]}`, answered with
`{"predictions": [...]}`) and columnar (`{"inputs": ...}`, answered with `{"outputs": ...}`),
an optional `"signature_name"`, and `{"b64": "..."}` for the bytes of string inputs (JPEG
frames, serialized SequenceExamples). JSON values are converted with the signature's
input dtypes (as TF Serving does) into a `PredictRequest` that goes through
`ModelServer.predict`, so both protocols check inputs the same way and return the same
numbers. Errors are `{"error": "<message>"}` with the HTTP status TF Serving maps the
gRPC code to (INVALID_ARGUMENT / FAILED_PRECONDITION 400, NOT_FOUND 404,
RESOURCE_EXHAUSTED 429, UNIMPLEMENTED 501, UNAVAILABLE 503, internal errors 500); a request
over a size limit (body bytes, JSON depth or elements, decoded bytes or pixels) is 413.

Memory per request is bounded before it is spent: the body's size (Content-Length), then its
JSON nesting depth and element count read from the raw text, then (in the model server) the
decoded tensor bytes and the pixels image headers claim. At most `max_workers` bodies are
parsed and run at once.

Under load: the listen backlog takes a burst of `BACKLOG` new connections; a request that
names no version is bound to the version current when it gets a worker slot, and that
version answers it even if it is unloaded meanwhile; `stop()` waits for every request
until the last byte of its answer is written.
"""

import base64
import binascii
import contextlib
import http.server
import json
import re
import socket
import threading
import time
import urllib.parse

import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format, wrappers_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2, predict_pb2

from tfvideo.api._export import tf_export
from tfvideo.serving import _limits, _server, _streams

_CODE = grpc.StatusCode
# TF Serving's mapping of error codes to HTTP statuses (model_servers/http_server.cc).
HTTP_STATUS = {
    _CODE.OK: 200,
    _CODE.CANCELLED: 499,
    _CODE.UNKNOWN: 500,
    _CODE.INVALID_ARGUMENT: 400,
    _CODE.DEADLINE_EXCEEDED: 504,
    _CODE.NOT_FOUND: 404,
    _CODE.ALREADY_EXISTS: 409,
    _CODE.PERMISSION_DENIED: 403,
    _CODE.RESOURCE_EXHAUSTED: 429,
    _CODE.FAILED_PRECONDITION: 400,
    _CODE.ABORTED: 409,
    _CODE.OUT_OF_RANGE: 400,
    _CODE.UNIMPLEMENTED: 501,
    _CODE.INTERNAL: 500,
    _CODE.UNAVAILABLE: 503,
    _CODE.DATA_LOSS: 500,
    _CODE.UNAUTHENTICATED: 401,
}
# The JSON body may be this many times --max_request_bytes (numbers as text are longer than
# their bytes); the decoded tensors are then held to --max_request_bytes as over gRPC.
BODY_LIMIT_FACTOR = 4
DEFAULT_MAX_JSON_DEPTH = 64
DEFAULT_MAX_JSON_ELEMENTS = 1 << 23  # 8 Mi values and lists: a 32x224x224x3 clip as numbers is 6.4 Mi.
BACKLOG = 1024  # Pending connections the kernel queues (a burst of 512 new connections fits).
DEFAULT_MAX_CONNECTIONS = 2048  # Open connections; more are answered 503 (with a body) and closed.
_VERSION_OR_LABEL = r"(?:/versions/([^/:]+)|/labels/([^/:]+))?"
_PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)" + _VERSION_OR_LABEL + r":(classify|regress|predict)", re.I)
_STREAM_PATH = re.compile(r"/v1/models/([^/:]+)" + _VERSION_OR_LABEL + r":(stream_open|stream_step|stream_close)",
                          re.I)
_STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?" + _VERSION_OR_LABEL + r"(?:/(metadata))?", re.I)
_BYTES_SUFFIX = "_bytes"  # String outputs whose name ends so are written as {"b64": ...}.


def _error(code, message):
    return _server.RequestError(code, message)


def _invalid(message):
    return _error(_CODE.INVALID_ARGUMENT, message)


def _too_large(message):
    return _server.RequestError(_CODE.RESOURCE_EXHAUSTED, message, over_limit=True)


def _brief(value, limit=60):
    """A JSON value shortened for an error message."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value):
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__)


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


# --- JSON -> numpy, by the signature's input dtype ------------------------------------
def _dense_shape(value):
    """The shape read along the first elements, as TF Serving infers it."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _leaves(value, shape, where):
    """All leaf values of a nested list in order; errors name the position of a ragged part."""
    out = []

    def walk(v, level, index):
        if isinstance(v, list):
            if level >= len(shape):
                raise _invalid(f"{where}: a list at {index or '[]'} is nested deeper than the shape "
                               f"{_server._shape_str(shape)} its first elements give")
            if len(v) != shape[level]:
                raise _invalid(f"{where}: ragged list: {index or 'the value'} has {len(v)} elements where "
                               f"{shape[level]} are expected (shape {_server._shape_str(shape)} from the first elements)")
            for i, item in enumerate(v):
                walk(item, level + 1, index + [i])
        else:
            if level != len(shape):
                raise _invalid(f"{where}: value {_brief(v)} at {index} is at depth {level}; all values must be at "
                               f"depth {len(shape)} (shape {_server._shape_str(shape)})")
            out.append(v)

    walk(value, 0, [])
    return out


def _decode_string(leaf, where):
    if isinstance(leaf, str):
        return leaf.encode("utf-8")
    if isinstance(leaf, dict):
        if not _is_b64(leaf):
            raise _invalid(f"{where}: JSON object {_brief(leaf)} is not a {{\"b64\": \"...\"}} object")
        try:
            return base64.b64decode(leaf["b64"], validate=True)
        except (binascii.Error, ValueError) as e:
            raise _invalid(f"{where}: cannot base64-decode {_brief(leaf)}: {e}") from e
    raise _invalid(f"{where}: JSON value {_brief(leaf)} ({_json_type(leaf)}) is not of expected type string")


def _string_array(value, where):
    shape = _dense_shape(value)
    leaves = [_decode_string(leaf, where) for leaf in _leaves(value, shape, where)]
    array = np.empty(len(leaves), dtype=object)
    array[:] = leaves
    return array.reshape(shape)


def _first_bad(array, bad_mask):
    """The first offending value of a numeric array, for messages."""
    return array.reshape(-1)[int(np.argmax(bad_mask.reshape(-1)))].item()


def _numeric_array(value, dtype, where, check_booleans):
    """JSON numbers (or booleans) -> an array of `dtype` (a tf.DType); no silent rounding.

    numpy reads `[true, 2]` as `[1, 2]`: with `check_booleans` every value's JSON type is
    checked (the caller skips it when the body holds no `true` / `false`).
    """
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError):
        array = None  # Ragged or out of range for numpy: the slow walk names the problem.
    mixed = check_booleans and array is not None and array.dtype.kind in "iuf" and dtype != tf.bool
    if array is None or mixed or array.dtype == object or array.dtype.kind not in "biuf":
        shape = _dense_shape(value)
        leaves = _leaves(value, shape, where)
        for leaf in leaves:
            if isinstance(leaf, bool) != (dtype == tf.bool) or not isinstance(leaf, (int, float)):
                raise _invalid(f"{where}: JSON value {_brief(leaf)} ({_json_type(leaf)}) is not of expected "
                               f"type {dtype.name}")
        try:
            array = np.asarray(leaves).reshape(shape)
        except (ValueError, OverflowError) as e:
            raise _invalid(f"{where}: values out of range for {dtype.name}: {e}") from e
        if array.dtype == object:
            raise _invalid(f"{where}: values out of range for {dtype.name}")
    target = dtype.as_numpy_dtype
    if array.size == 0:
        return array.astype(target)  # The model server names the empty input.
    kind = array.dtype.kind
    if dtype == tf.bool:
        if kind != "b":
            raise _invalid(f"{where}: JSON value {array.reshape(-1)[0].item()} is not of expected type bool")
        return array
    if kind == "b":
        raise _invalid(f"{where}: JSON value {_brief(array.reshape(-1)[0].item())} (boolean) is not of expected "
                       f"type {dtype.name}")
    if dtype.is_integer:
        if kind == "f":
            fractional = array != np.floor(array)
            value = _first_bad(array, fractional) if np.any(fractional) else array.reshape(-1)[0].item()
            raise _invalid(f"{where}: JSON value {value} is not an integer; the input's type is {dtype.name}")
        info = np.iinfo(target)
        outside = (array < info.min) | (array > info.max)
        if np.any(outside):
            raise _invalid(f"{where}: JSON value {_first_bad(array, outside)} is out of range for {dtype.name} "
                           f"[{info.min}, {info.max}]")
        return array.astype(target)
    if dtype.is_floating:
        try:
            limits = np.finfo(target)
        except ValueError:  # bfloat16 and other types numpy does not describe: float32's limits.
            limits = np.finfo(np.float32)
        exact = 2 ** (limits.nmant + 1) - 1
        if kind in "iu" and np.any(np.abs(array) > exact):
            raise _invalid(f"{where}: cannot convert JSON value {_first_bad(array, np.abs(array) > exact)} to "
                           f"{dtype.name} without loss of precision")
        if kind == "f" and target != np.float64:
            big = np.isfinite(array) & (np.abs(array) > limits.max)
            if np.any(big):
                raise _invalid(f"{where}: cannot convert JSON value {_first_bad(array, big)} to {dtype.name} "
                               "without loss of precision")
        return array.astype(target)
    raise _error(_CODE.UNIMPLEMENTED, f"{where}: JSON conversion to {dtype.name} is not supported")


def _to_array(value, dtype, where, check_booleans=True):
    if dtype == tf.string:
        return _string_array(value, where)
    return _numeric_array(value, dtype, where, check_booleans)


def request_from_json(body, inputs_info, model_spec, check_booleans=True):
    """A parsed JSON predict body -> (`PredictRequest`, "row" | "columnar").

    `inputs_info`: the signature's {input name: TensorInfo}. `check_booleans=False` skips
    looking for booleans among numbers (for bodies known to hold no `true` / `false`).
    """
    request = predict_pb2.PredictRequest(model_spec=model_spec)
    instances, columns = body.get("instances"), body.get("inputs")
    if "instances" in body and "inputs" in body:
        raise _invalid("the body has both 'instances' (row format) and 'inputs' (columnar format); give one")
    names = sorted(inputs_info)
    if "instances" in body:
        if not isinstance(instances, list):
            raise _invalid(f"'instances' must be a list, got {_json_type(instances)}")
        if not instances:
            raise _invalid("'instances' is an empty list")
        arrays = _row_arrays(instances, inputs_info, names, check_booleans)
        layout = "row"
    elif "inputs" in body:
        arrays = _columnar_arrays(columns, inputs_info, names, check_booleans)
        layout = "columnar"
    elif not names:  # A signature without inputs (e.g. `clip_spec`): nothing to send.
        arrays, layout = {}, "columnar"
    else:
        raise _invalid("missing 'instances' (row format) or 'inputs' (columnar format) key")
    for name, array in arrays.items():
        dtype = tf.dtypes.as_dtype(inputs_info[name].dtype)
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=dtype, shape=array.shape))
    return request, layout


def _named(value):
    """An object of named inputs (not a {"b64": ...} value)."""
    return isinstance(value, dict) and not _is_b64(value)


def _columnar_arrays(columns, inputs_info, names, check_booleans):
    if not _named(columns):
        if len(names) > 1:
            raise _invalid(f"'inputs' is a plain value but the signature takes {len(names)} inputs "
                           f"({', '.join(names)}); give an object of named inputs")
        name = names[0]
        return {name: _to_array(columns, tf.dtypes.as_dtype(inputs_info[name].dtype), f"input '{name}'",
                                check_booleans)}
    unknown = sorted(set(columns) - set(names))
    if unknown:
        raise _invalid(f"input '{unknown[0]}' is not an input of the signature; it takes "
                       f"{', '.join(names) or 'no inputs'}")
    missing = [n for n in names if n not in columns]
    if missing:
        raise _invalid(f"input '{missing[0]}' is missing from 'inputs'; the signature takes {', '.join(names)}")
    return {n: _to_array(columns[n], tf.dtypes.as_dtype(inputs_info[n].dtype), f"input '{n}'", check_booleans)
            for n in names}


def _row_arrays(instances, inputs_info, names, check_booleans):
    named = _named(instances[0])
    if not named and len(names) > 1:
        raise _invalid(f"'instances' holds plain values but the signature takes {len(names)} inputs "
                       f"({', '.join(names)}); give a list of objects of named inputs")
    rows = {n: [] for n in names}
    for i, instance in enumerate(instances):
        if _named(instance) != named:
            raise _invalid(f"instance {i} is {'not ' if named else ''}an object of named inputs, unlike instance 0")
        if named:
            unknown = sorted(set(instance) - set(names))
            if unknown:
                raise _invalid(f"input '{unknown[0]}' (instance {i}) is not an input of the signature; "
                               f"it takes {', '.join(names)}")
            missing = [n for n in names if n not in instance]
            if missing:
                raise _invalid(f"input '{missing[0]}' is missing from instance {i}; the signature takes "
                               f"{', '.join(names)}")
        for n in names:
            value = instance[n] if named else instance
            array = _to_array(value, tf.dtypes.as_dtype(inputs_info[n].dtype), f"input '{n}' (instance {i})",
                              check_booleans)
            if rows[n] and array.shape != rows[n][0].shape:
                raise _invalid(f"input '{n}': instance {i} has shape {_server._shape_str(array.shape)} but instance 0 "
                               f"has {_server._shape_str(rows[n][0].shape)}; instances must have equal shapes")
            rows[n].append(array)
    return {n: np.stack(rows[n]) for n in names}


# --- numpy -> JSON ---------------------------------------------------------------------
def _json_values(name, array):
    """An output array as nested JSON-able lists, written as TF Serving writes them."""
    if array.dtype.kind in "SO":
        as_bytes = name.endswith(_BYTES_SUFFIX)

        def text(b):
            b = b if isinstance(b, bytes) else str(b).encode()
            return {"b64": base64.b64encode(b).decode("ascii")} if as_bytes else b.decode("utf-8", "replace")

        flat = [text(b) for b in array.reshape(-1)]
    elif array.dtype.kind == "f" and array.dtype != np.float64:
        # The shortest decimal that reads back as the same float32 (0.2, not 0.2000000029802).
        flat = [float(str(x)) for x in array.astype(np.float32).reshape(-1)]
    else:
        return array.tolist()
    if array.ndim == 0:
        return flat[0]
    nested = np.empty(len(flat), dtype=object)
    nested[:] = flat
    return nested.reshape(array.shape).tolist()


def response_to_json(response, layout):
    """A `PredictResponse` -> TF Serving's JSON body for the request's layout."""
    outputs = {k: tf.make_ndarray(v) for k, v in sorted(response.outputs.items())}
    if not outputs:
        raise _error(_CODE.INTERNAL, "the signature returned no outputs")
    if layout == "columnar":
        if len(outputs) == 1:
            (name, array), = outputs.items()
            return {"outputs": _json_values(name, array)}
        return {"outputs": {k: _json_values(k, v) for k, v in outputs.items()}}
    batch = None
    for name, array in outputs.items():
        if array.ndim == 0:
            raise _invalid(f"output '{name}' is a scalar: the row format needs a batch axis; use 'inputs'")
        if batch is not None and array.shape[0] != batch:
            raise _invalid(f"output '{name}' has batch size {array.shape[0]}, other outputs {batch}; use 'inputs'")
        batch = array.shape[0]
    rows = {k: _json_values(k, v) for k, v in outputs.items()}
    if len(rows) == 1:
        (values,) = rows.values()
        return {"predictions": values}
    return {"predictions": [{k: rows[k][i] for k in rows} for i in range(batch)]}


# --- the API -------------------------------------------------------------------------
def _model_spec(name, version, label):
    spec = model_pb2.ModelSpec(name=urllib.parse.unquote(name))
    if version is not None and label is not None:
        raise _invalid(f"both a version ({version}) and a version label ({label}) are given")
    if version is not None:
        if not version.isdigit() or int(version) >= 2 ** 63:
            raise _invalid(f"failed to convert version '{version}' to a number")
        spec.version.CopyFrom(wrappers_pb2.Int64Value(value=int(version)))
    if label is not None:
        spec.version_label = urllib.parse.unquote(label)
    return spec


@tf_export("tfvideo.serving.RestServer")
class RestServer:
    """TF Serving's REST API for the models of a `ModelServer`: `start(port)`, then `stop()`.

    Args:
      model_server: a `tfvideo.serving.ModelServer` (started or not; its models, version
        policy and input checks answer both protocols).
      max_workers: requests parsed and running a model at once (default: the model server's).
      request_timeout: seconds a connection may take to send its request.
      max_body_bytes: larger bodies get 413 before they are read (default: 4 x the model
        server's `max_request_bytes`).
      max_json_depth: bodies nested deeper get 400 before they are parsed.
      max_json_elements: bodies with more JSON values and containers get 413 before they
        are parsed.
      max_connections: open connections; beyond them a request is answered 503.
    """

    def __init__(self, model_server, max_workers=None, request_timeout=60.0, max_body_bytes=None,
                 max_json_depth=DEFAULT_MAX_JSON_DEPTH, max_json_elements=DEFAULT_MAX_JSON_ELEMENTS,
                 max_connections=DEFAULT_MAX_CONNECTIONS):
        self.model_server = model_server
        workers = model_server.max_workers if max_workers is None else int(max_workers)
        if workers < 1:
            raise ValueError(f"RestServer: max_workers={workers} must be >= 1")
        if not request_timeout > 0:
            raise ValueError(f"RestServer: request_timeout={request_timeout} must be > 0")
        if max_body_bytes is None:
            max_body_bytes = BODY_LIMIT_FACTOR * model_server.max_request_bytes
        for name, value in (("max_body_bytes", max_body_bytes), ("max_json_depth", max_json_depth),
                            ("max_json_elements", max_json_elements), ("max_connections", max_connections)):
            if int(value) != value or value < 1:
                raise ValueError(f"RestServer: {name}={value} must be an integer >= 1")
        self.max_body_bytes = int(max_body_bytes)
        self.max_json_depth = int(max_json_depth)
        self.max_json_elements = int(max_json_elements)
        self.max_connections = int(max_connections)
        self._connections = 0
        self.request_timeout = float(request_timeout)
        self._slots = threading.BoundedSemaphore(workers)
        self._httpd = None
        self._thread = None
        self._in_flight = 0
        self._in_flight_lock = threading.Condition()
        self.stopping = False
        self.port = None

    # --- lifecycle -------------------------------------------------------------------
    def start(self, port=8501, host="127.0.0.1"):
        """Binds `host:port` (0 = a free port), serves in a background thread; returns the port."""
        handler = type("_Handler", (_Handler,), {"rest": self, "timeout": self.request_timeout})
        server_class = _IPv6HTTPServer if ":" in host else _HTTPServer
        self._httpd = server_class((host, int(port)), handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="tfvideo-serve-rest", daemon=True)
        self._thread.start()
        return self.port

    def stop(self, grace=None):
        """Stops accepting, lets in-flight requests finish (up to `grace` seconds), closes."""
        if self._httpd is None:
            return
        self.stopping = True  # Open keep-alive connections get 503 from now on.
        self._httpd.shutdown()
        deadline = None if grace is None else time.monotonic() + float(grace)
        with self._in_flight_lock:
            while self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    logging.warning("REST API: %d requests still running at shutdown", self._in_flight)
                    break
                self._in_flight_lock.wait(left)
        self._httpd.server_close()
        self._httpd = None

    # --- requests --------------------------------------------------------------------
    @contextlib.contextmanager
    def _counted(self):
        """Counts one request as in flight: the HTTP handler holds it until the answer's last byte is sent."""
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1
                self._in_flight_lock.notify_all()

    def handle(self, method, path, body=b""):
        """Answers one request (`body`: bytes or str): (HTTP status, JSON-able body). Never raises."""
        try:
            return 200, self._dispatch(method.upper(), path, body)
        except _server.RequestError as e:
            logging.info("REST %s %s: %s %s", method, path, e.code.name, e.message)
            return (413 if getattr(e, "over_limit", False) else HTTP_STATUS.get(e.code, 500)), {"error": e.message}
        except Exception as e:  # noqa: BLE001 -- a bug must not take the server down; the client learns.
            logging.exception("REST %s %s failed", method, path)
            return 500, {"error": f"internal error: {type(e).__name__}: {e}"}

    def _dispatch(self, method, path, body):
        path = urllib.parse.urlsplit(path).path
        if method == "POST":
            match = _PREDICT_PATH.fullmatch(path)
            if match:
                name, version, label, verb = match.groups()
                if verb.lower() != "predict":
                    raise _error(_CODE.UNIMPLEMENTED, f"{verb} is not served by tfvideo-serve (video signatures use "
                                                      ":predict)")
                return self._predict(_model_spec(name, version, label), body)
            match = _STREAM_PATH.fullmatch(path)
            if match:
                name, version, label, verb = match.groups()
                return self._stream(verb.lower(), _model_spec(name, version, label), body)
        elif method == "GET":
            match = _STATUS_PATH.fullmatch(path)
            if match:
                name, version, label, metadata = match.groups()
                if not name:
                    raise _invalid("missing model name in request: GET /v1/models/<name>")
                spec = _model_spec(name, version, label)
                return self._metadata(spec) if metadata else self._status(spec)
        if not path.lower().startswith("/v1/"):
            raise _error(_CODE.NOT_FOUND, f"no such resource: {path} (the API is under /v1/models/)")
        raise _invalid(f"malformed request: {method} {path}")

    def _status(self, spec):
        if spec.version_label:  # Resolved (or refused) as Predict resolves it, then asked by number.
            metadata, _ = self._signature_defs(spec)
            spec.ClearField("version_label")
            spec.version.CopyFrom(metadata.model_spec.version)
        response = self.model_server.status(get_model_status_pb2.GetModelStatusRequest(model_spec=spec))
        for status in response.model_version_status:
            status.status.SetInParent()  # error_code OK, as TF Serving reports it.
        return _message_to_dict(response, preserve_names=False)

    def _signature_defs(self, spec):
        request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"])
        response = self.model_server.metadata(request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return response, signature_map

    def _metadata(self, spec):
        response, signature_map = self._signature_defs(spec)
        return {
            "model_spec": _message_to_dict(response.model_spec, preserve_names=True),
            "metadata": {"signature_def": _message_to_dict(signature_map, preserve_names=True)},
        }

    def _check_body(self, body):
        """413 / 400 for a body over the size, element or depth limits, read before it is parsed."""
        if len(body) > self.max_body_bytes:
            raise _too_large(f"request body of {len(body)} bytes exceeds the REST limit of {self.max_body_bytes} "
                             "bytes (--rest_max_body_bytes)")
        depth, elements = _limits.json_structure(body)
        if depth > self.max_json_depth:
            raise _invalid(f"JSON parse error: the body nests {depth} levels deep; the limit is "
                           f"{self.max_json_depth} (--rest_max_json_depth)")
        if elements > self.max_json_elements:
            raise _too_large(f"the request body holds about {elements} JSON values and containers; the limit is "
                             f"{self.max_json_elements} (--rest_max_json_elements)")

    def _predict(self, spec, body):
        body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        self._check_body(body)
        # Parsed, converted and run inside a worker slot: at most max_workers bodies in memory as
        # Python objects at once, and the version is chosen when the request runs.
        with self._slots:
            document = _parse_json(body)
            signature = document.get("signature_name", "")
            if not isinstance(signature, str):
                raise _invalid(f"'signature_name' must be a string, got {_brief(signature)}")
            spec.signature_name = signature
            which = spec.WhichOneof("version_choice")
            # Held until it answers: the version keeps serving this request if a newer one replaces it.
            servable = self.model_server.resolve_servable(
                spec.name, version=spec.version.value if which == "version" else None,
                label=spec.version_label if which == "version_label" else None)
            key = signature or _server._DEFAULT_SIGNATURE
            if key not in servable.signature_defs:
                # TF Serving's REST handler answers INVALID_ARGUMENT (400) here.
                raise _invalid(f"model '{servable.name}' version {servable.version} has no signature '{key}'; it has "
                               f"{', '.join(sorted(servable.signature_defs))}")
            inputs_info = servable.signature_defs[key].inputs
            request, layout = request_from_json(document, inputs_info, spec,
                                                check_booleans=b"true" in body or b"false" in body)
            del document
            response = self.model_server.predict(request, servable=servable)
        return response_to_json(response, layout)


    def _stream(self, verb, spec, body):
        """`:stream_open` (body `{}` or empty), `:stream_step` (`{"stream_id", "instances" | "inputs"}`: frames
        [N, H, W, C]), `:stream_close` (`{"stream_id"}`); see docs/notes/export.md."""
        body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        self._check_body(body)
        with self._slots:
            document = _parse_json(body) if body.strip() or verb != "stream_open" else {}
            allowed = {"stream_open": set(), "stream_close": {"stream_id"},
                       "stream_step": {"stream_id", "instances", "inputs"}}[verb]
            unknown = sorted(set(document) - allowed)
            if unknown:
                raise _invalid(f"'{unknown[0]}' is not a key of a :{verb} body; it takes "
                               f"{', '.join(repr(k) for k in sorted(allowed)) or 'an empty object'}")
            model_server = self.model_server
            if verb == "stream_open":
                stream = model_server.open_stream(spec)
                return {"stream_id": stream.id,
                        "model_spec": {"name": stream.servable.name, "version": str(stream.servable.version)},
                        "idle_timeout_s": model_server.streams.idle_timeout_s,
                        "frame_shape": list(stream.frame_shape)}
            stream_id = document.get("stream_id")
            if stream_id is None:
                raise _invalid(f"'stream_id' is missing: :{verb} needs the id :stream_open returned")
            if not isinstance(stream_id, str):
                raise _invalid(f"'stream_id' must be a string (the id :stream_open returned), got {_brief(stream_id)}")
            if verb == "stream_close":
                stream = model_server.close_stream(spec, stream_id)
                return {"stream_id": stream.id, "closed": True, "frames": stream.frames}
            # The frames are read with the dtype of the stream's own version (404 first for a gone id).
            info = _streams.frame_info(model_server.stream_servable(spec, stream_id))
            request, layout = request_from_json(document, {_streams.FRAME: info}, spec,
                                                check_booleans=b"true" in body or b"false" in body)
            del document
            request.model_spec.signature_name = _streams.STEP
            request.inputs[_streams.STREAM_ID].CopyFrom(tf.make_tensor_proto(stream_id))
            answer = response_to_json(model_server.predict(request), layout)
        return {"stream_id": stream_id, **answer}


def _parse_json(body):
    if not body.strip():
        raise _invalid("JSON parse error: the request body is empty")
    # No process-wide state (e.g. gc.disable()) is changed per request: requests run in parallel.
    try:
        document = json.loads(body)
    except UnicodeDecodeError as e:
        raise _invalid(f"JSON parse error: the body is not UTF-8: {e}") from e
    except json.JSONDecodeError as e:
        raise _invalid(f"JSON parse error: {e.msg} at line {e.lineno} column {e.colno} (offset {e.pos})") from e
    except RecursionError as e:
        raise _invalid("JSON parse error: nested too deeply") from e
    if not isinstance(document, dict):
        raise _invalid(f"the request body must be a JSON object, got {_json_type(document)}")
    return document


def _message_to_dict(message, preserve_names):
    try:
        return json_format.MessageToDict(message, preserving_proto_field_name=preserve_names,
                                         always_print_fields_with_no_presence=True)
    except TypeError:  # protobuf < 5.26 names the option differently.
        return json_format.MessageToDict(message, preserving_proto_field_name=preserve_names,
                                         including_default_value_fields=True)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = BACKLOG  # listen(); Python's default of 5 resets a burst of new connections.


class _IPv6HTTPServer(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # Keep-alive; every answer carries Content-Length.
    server_version = "tfvideo-serve"
    disable_nagle_algorithm = True  # Headers and body are two writes: no 40 ms delayed-ACK stall between them.
    rest = None  # The RestServer; set on the subclass start() makes.

    def setup(self):
        super().setup()
        with self.rest._in_flight_lock:
            self.rest._connections += 1

    def finish(self):
        try:
            super().finish()
        finally:
            with self.rest._in_flight_lock:
                self.rest._connections -= 1

    def _answer(self):
        with self.rest._counted():  # Until the answer's last byte is written: stop() waits for it.
            self._answer_counted()

    def _answer_counted(self):
        if self.rest.stopping:
            self.close_connection = True
            return self._send(503, {"error": "the server is shutting down"})
        if self.rest._connections > self.rest.max_connections:
            self.close_connection = True
            self._read_body_or_none()
            return self._send(503, {"error": f"the server has {self.rest.max_connections} connections open; "
                                             "retry later"})
        length = self.headers.get("Content-Length")
        body = b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            return self._send(411, {"error": "chunked request bodies are not supported; send Content-Length"})
        if length is not None:
            try:
                length = int(length)
                if length < 0:
                    raise ValueError
            except ValueError:
                self.close_connection = True
                return self._send(400, {"error": f"bad Content-Length: {self.headers.get('Content-Length')!r}"})
            if length > self.rest.max_body_bytes:
                self.close_connection = True  # The body is not read: the connection cannot be reused.
                return self._send(413, {"error": f"request body of {length} bytes exceeds the REST limit of "
                                                 f"{self.rest.max_body_bytes} bytes (--rest_max_body_bytes)"})
            body = self.rfile.read(length)
        status, answer = self.rest.handle(self.command, self.path, body)
        self._send(status, answer)

    def _read_body_or_none(self):
        """Reads a small body (so closing does not reset the connection before the answer arrives)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if 0 < length <= 1 << 20:
            self.rfile.read(length)

    def _send(self, status, answer):
        data = json.dumps(answer).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer  # noqa: N815 -- BaseHTTPRequestHandler's names.

    def log_message(self, format, *args):  # noqa: A002 -- the base class's signature.
        logging.debug("REST %s: " + format, self.address_string(), *args)
