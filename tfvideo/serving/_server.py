"""A development model server speaking TF Serving's gRPC protocol.

Implements `tensorflow.serving.PredictionService` (Predict, GetModelMetadata) and
`tensorflow.serving.ModelService` (GetModelStatus) from the `tensorflow-serving-api` protos
over the same `<base_path>/<version>/` SavedModel directories the real model server reads,
so `tfvideo.serving.Client` and tests run without it. It is not a production server: one
process, SavedModels called eagerly from a thread pool, no batching.

Version policy (per model, from `models.config` or the default): the latest version is
loaded at start and whenever a newer one appears (the base path is polled); older versions
that are still on disk are loaded when a request names them. A version whose directory
disappears is unloaded. Requests without a version get the latest.
"""

import concurrent.futures
import dataclasses
import os
import re
import threading

import grpc
import tensorflow as tf
from absl import logging
from google.protobuf import wrappers_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from tfvideo.api._export import tf_export

DEFAULT_MAX_REQUEST_BYTES = 64 << 20
_DEFAULT_SIGNATURE = "serving_default"


class RequestError(Exception):
    """A request the server rejects: a gRPC status code and a message naming the input."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _list_versions(base_path):
    from export import _versions

    return _versions.list_versions(base_path)


def _read_signature_defs(path):
    """The serving SignatureDefs of a SavedModel directory (without internal `__` keys)."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    for meta_graph in proto.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}
    raise ValueError(f"{path}: SavedModel has no 'serve' MetaGraph")


def _shape_str(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _tf_error_reason(message):
    """The informative line of a TF runtime error ("Invalid JPEG data ...") and its op."""
    lines = [line.strip() for line in message.splitlines()]
    skip = ("Graph execution error", "Detected at node", "<stack traces", "[[", "File ")
    reasons = [line for line in lines if line and not line.startswith(skip)]
    reason = reasons[0] if reasons else message.strip().splitlines()[0]
    node = re.search(r"\{\{node ([^}]+)\}\}", message)
    return f"{reason} (op {node.group(1).rsplit('/', 1)[-1]})" if node else reason


def _tensor_info_shape(info):
    if info.tensor_shape.unknown_rank:
        return None
    return [d.size for d in info.tensor_shape.dim]


class _Servable:
    """One loaded version: its SavedModel, signatures and SignatureDefs."""

    def __init__(self, name, version, path):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = _read_signature_defs(path)
        self.loaded = tf.saved_model.load(path)
        self.functions = dict(self.loaded.signatures)

    def signature(self, signature_name):
        key = signature_name or _DEFAULT_SIGNATURE
        if key not in self.signature_defs or key not in self.functions:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{self.name}' version {self.version} has no signature '{key}'; "
                f"it has {', '.join(sorted(self.signature_defs))}",
            )
        return key, self.signature_defs[key], self.functions[key]


@dataclasses.dataclass
class _Policy:
    kind: str = "latest"  # "latest", "all" or "specific".
    num_latest: int = 1
    specific: tuple = ()

    def allowed(self, versions):
        if self.kind == "all":
            return list(versions)
        if self.kind == "specific":
            return [v for v in versions if v in self.specific]
        return list(versions)  # Latest eagerly; older ones on request (see module docstring).

    def eager(self, versions):
        if self.kind == "latest":
            return list(versions)[-self.num_latest:]
        return self.allowed(versions)


class _Model:
    """A served model name: its base path, policy and loaded versions."""

    def __init__(self, name, base_path, policy, warmup):
        self.name = name
        self.base_path = base_path
        self.policy = policy
        self.warmup = warmup
        self._servables = {}
        self._lock = threading.Lock()

    def refresh(self, server):
        """Loads new eager versions and unloads vanished ones; returns the loaded versions."""
        on_disk = self.policy.allowed(_list_versions(self.base_path))
        for version in self.policy.eager(on_disk):
            self._load(version, server)
        with self._lock:
            for version in list(self._servables):
                if version not in on_disk:
                    logging.info("Unloading %s version %d (removed from %s)", self.name, version, self.base_path)
                    del self._servables[version]
            return sorted(self._servables)

    def _load(self, version, server):
        with self._lock:
            if version in self._servables:
                return self._servables[version]
        path = os.path.join(self.base_path, str(version))
        servable = _Servable(self.name, version, path)
        if self.warmup:
            server.replay_warmup(servable)
        with self._lock:
            servable = self._servables.setdefault(version, servable)
        logging.info("Loaded %s version %d from %s", self.name, version, path)
        return servable

    def loaded_versions(self):
        with self._lock:
            return sorted(self._servables)

    def get(self, version, server):
        """The servable for `version` (None: the latest loaded); NOT_FOUND if absent."""
        if version is None:
            with self._lock:
                if self._servables:
                    return self._servables[max(self._servables)]
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"model '{self.name}' has no loaded version yet")
        with self._lock:
            if version in self._servables:
                return self._servables[version]
        if version not in self.policy.allowed(_list_versions(self.base_path)):
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{self.name}' has no version {version} under {self.base_path}; "
                f"loaded: {self.loaded_versions() or 'none'}",
            )
        return self._load(version, server)


def _policy_from_proto(config):
    which = config.model_version_policy.WhichOneof("policy_choice")
    if which == "all":
        return _Policy("all")
    if which == "specific":
        return _Policy("specific", specific=tuple(config.model_version_policy.specific.versions))
    if which == "latest" and config.model_version_policy.latest.num_versions:
        return _Policy("latest", num_latest=int(config.model_version_policy.latest.num_versions))
    return _Policy("latest")


@tf_export("tfvideo.serving.ModelServer")
class ModelServer:
    """The development server: `ModelServer(models).start(port)` then `wait()` / `stop()`.

    Args:
      models: `{name: base_path}`, or a `ModelServerConfig` (e.g. read from models.config).
      max_request_bytes: larger Predict requests get RESOURCE_EXHAUSTED.
      poll_seconds: how often base paths are scanned for new versions.
      max_workers: threads answering requests concurrently.
      warmup: replay each version's `assets.extra/tf_serving_warmup_requests` on load.
    """

    def __init__(self, models, max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, poll_seconds=1.0, max_workers=8,
                 warmup=True):
        if isinstance(models, model_server_config_pb2.ModelServerConfig):
            entries = [(c.name, c.base_path, _policy_from_proto(c)) for c in models.model_config_list.config]
        else:
            entries = [(name, path, _Policy()) for name, path in dict(models).items()]
        if not entries:
            raise ValueError("ModelServer: no models to serve")
        self._models = {}
        for name, base_path, policy in entries:
            if not name:
                raise ValueError(f"ModelServer: a model config entry for {base_path} has no name")
            if not os.path.isdir(base_path):
                raise FileNotFoundError(f"model '{name}': base path {base_path} does not exist")
            self._models[name] = _Model(name, os.path.abspath(base_path), policy, warmup)
        self.max_request_bytes = int(max_request_bytes)
        self.poll_seconds = float(poll_seconds)
        self.max_workers = int(max_workers)
        self._server = None
        self._stop = threading.Event()
        self._poller = None
        self.port = None

    @property
    def model_names(self):
        return sorted(self._models)

    # --- lifecycle -------------------------------------------------------------------
    def refresh(self):
        """Scans every base path once; returns {name: loaded versions}."""
        out = {}
        for model in self._models.values():
            try:
                out[model.name] = model.refresh(self)
            except (OSError, ValueError, tf.errors.OpError) as e:  # A broken version must not stop the server.
                logging.error("Loading model '%s' from %s failed: %s", model.name, model.base_path, e)
                out[model.name] = model.loaded_versions()
        return out

    def start(self, port=8500, host="127.0.0.1"):
        """Loads the models, binds `host:port` (0 = a free port) and starts serving; returns the port."""
        self.refresh()
        margin = 1 << 20  # Let slightly-too-large requests through so Predict can name the input.
        options = [
            ("grpc.max_receive_message_length", self.max_request_bytes + margin),
            ("grpc.max_send_message_length", -1),
        ]
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(self.max_workers), options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionServicer(self), self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(self), self._server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self._server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot bind {address}")
        self._server.start()
        self._poller = threading.Thread(target=self._poll, name="tfvideo-serve-poll", daemon=True)
        self._poller.start()
        return self.port

    def _poll(self):
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def wait(self):
        self._server.wait_for_termination()

    def stop(self, grace=None):
        self._stop.set()
        if self._server is not None:
            self._server.stop(grace).wait()

    # --- request handling ------------------------------------------------------------
    def _model(self, model_spec):
        if not model_spec.name:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "model_spec.name is empty")
        if model_spec.name not in self._models:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{model_spec.name}' is not served; serving {', '.join(self.model_names)}",
            )
        return self._models[model_spec.name]

    def _servable(self, model_spec):
        model = self._model(model_spec)
        which = model_spec.WhichOneof("version_choice")
        if which == "version_label":
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{model.name}': version labels are not supported (got '{model_spec.version_label}')",
            )
        version = model_spec.version.value if which == "version" else None
        return model.get(version, self)

    def _check_inputs(self, request, signature_name, signature_def):
        expected = signature_def.inputs
        for key in request.inputs:
            if key not in expected:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input '{key}' is not an input of signature '{signature_name}'; "
                    f"it takes {', '.join(sorted(expected))}",
                )
        arrays = {}
        for key, info in expected.items():
            if key not in request.inputs:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"input '{key}' of signature '{signature_name}' is missing"
                )
            proto = request.inputs[key]
            if proto.dtype != info.dtype:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input '{key}' has dtype {tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else 'unset'}; "
                    f"signature '{signature_name}' expects {tf.dtypes.as_dtype(info.dtype).name}",
                )
            try:
                array = tf.make_ndarray(proto)
            except (ValueError, TypeError) as e:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{key}' is not a valid TensorProto: {e}") from e
            want = _tensor_info_shape(info)
            if want is not None:
                if array.ndim != len(want):
                    raise RequestError(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"input '{key}' has shape {_shape_str(array.shape)}; signature '{signature_name}' "
                        f"expects {_shape_str(want)} (-1: any size)",
                    )
                for axis, (got, size) in enumerate(zip(array.shape, want)):
                    if size >= 0 and got != size:
                        what = "frames per video" if axis == 1 and key in ("frames", "jpeg_frames") else f"axis {axis}"
                        raise RequestError(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"input '{key}' has {got} {what} (shape {_shape_str(array.shape)}); signature "
                            f"'{signature_name}' expects {size} (shape {_shape_str(want)})",
                        )
            if array.size == 0:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{key}' is empty: {_shape_str(array.shape)}")
            arrays[key] = array
        return arrays

    def predict(self, request):
        """Answers a `PredictRequest`; raises `RequestError` for bad requests."""
        size = request.ByteSize()
        if size > self.max_request_bytes:
            largest = max(request.inputs, key=lambda k: request.inputs[k].ByteSize(), default="?")
            raise RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request of {size} bytes exceeds the server's limit of {self.max_request_bytes} bytes "
                f"(largest input: '{largest}')",
            )
        servable = self._servable(request.model_spec)
        signature_name, signature_def, function = servable.signature(request.model_spec.signature_name)
        for key in request.output_filter:
            if key not in signature_def.outputs:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"output_filter names '{key}', not an output of signature '{signature_name}' "
                    f"({', '.join(sorted(signature_def.outputs))})",
                )
        arrays = self._check_inputs(request, signature_name, signature_def)
        try:
            outputs = function(**{k: tf.constant(v) for k, v in arrays.items()})
        except tf.errors.InvalidArgumentError as e:
            names = ", ".join(f"'{k}'" for k in sorted(arrays))
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"signature '{signature_name}' rejected input {names}: {_tf_error_reason(e.message)}",
            ) from e
        except tf.errors.ResourceExhaustedError as e:
            raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"signature '{signature_name}': {e.message}") from e
        response = predict_pb2.PredictResponse(
            model_spec=model_pb2.ModelSpec(
                name=servable.name,
                version=wrappers_pb2.Int64Value(value=servable.version),
                signature_name=signature_name,
            )
        )
        wanted = set(request.output_filter) or set(outputs)
        for key, value in outputs.items():
            if key in wanted:
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response

    def metadata(self, request):
        servable = self._servable(request.model_spec)
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"metadata_field must be ['signature_def'] (the only metadata served), got {fields}",
            )
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=model_pb2.ModelSpec(name=servable.name, version=wrappers_pb2.Int64Value(value=servable.version))
        )
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def status(self, request):
        model = self._model(request.model_spec)
        which = request.model_spec.WhichOneof("version_choice")
        if which == "version":
            versions = [self._servable(request.model_spec).version]
        else:
            versions = model.loaded_versions()
            if not versions:
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"model '{model.name}' has no loaded version yet")
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in versions:
            status = response.model_version_status.add()
            status.version = version
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response

    def replay_warmup(self, servable):
        """Runs a version's warm-up requests through Predict; failures are logged, not fatal."""
        from export import _warmup

        for request in _warmup.read_warmup_requests(servable.path):
            try:
                name, signature_def, function = servable.signature(request.model_spec.signature_name)
                arrays = self._check_inputs(request, name, signature_def)
                function(**{k: tf.constant(v) for k, v in arrays.items()})
            except (RequestError, tf.errors.OpError) as e:
                logging.warning("Warm-up request for %s version %d failed: %s", servable.name, servable.version, e)


def _handler(method):
    def handle(self, request, context):
        try:
            return method(self, request)
        except RequestError as e:
            logging.info("%s: %s %s", method.__name__, e.code.name, e.message)
            context.abort(e.code, e.message)

    handle.__name__ = method.__name__
    return handle


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server):
        self._server = server

    @_handler
    def Predict(self, request):
        return self._server.predict(request)

    @_handler
    def GetModelMetadata(self, request):
        return self._server.metadata(request)


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, server):
        self._server = server

    @_handler
    def GetModelStatus(self, request):
        return self._server.status(request)

