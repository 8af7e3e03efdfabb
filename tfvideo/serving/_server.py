"""A development model server speaking TF Serving's gRPC protocol.

Implements `tensorflow.serving.PredictionService` (Predict, GetModelMetadata) and
`tensorflow.serving.ModelService` (GetModelStatus) from the `tensorflow-serving-api` protos
over the same `<base_path>/<version>/` SavedModel directories the real model server reads,
so `tfvideo.serving.Client` and tests run without it. It is not a production server: one
process, SavedModels called eagerly from a thread pool, no batching.

Versions, as TF Serving: each model has a version policy (`models.config`'s
`model_version_policy`, default `latest` with one version). `latest {num_versions: N}`
serves the N highest versions that load, `all` every version on disk, `specific` the
listed ones; the base path is polled and the served set follows the disk. Other versions
are not served (NOT_FOUND), also for GetModelMetadata and GetModelStatus. Requests without
a version get the highest served one; `version_label` resolves through the config's
`version_labels`.

Bad versions never stop the server: a version that fails to load (half-written or corrupt
`saved_model.pb`, missing variables, ...) is logged with its path and reason, reported by
GetModelStatus as END with the error, and retried when its files change (or every
`load_retry_seconds`); the versions already loaded keep serving, and newer good versions
still load. At start-up the highest loadable versions are served.

Status codes follow TF Serving's (docs/notes/export.md lists them and where they come from):
unknown model or version NOT_FOUND, unknown version label or missing/bad inputs or outputs
INVALID_ARGUMENT, unknown signature FAILED_PRECONDITION, errors raised while running the
SavedModel keep their TensorFlow code.

Streaming exports (signatures `init_state` and `step`) can be stepped with their state held
here: Predict with signature `stream_open`, `step` plus a `stream_id` input, `stream_close`
(`_streams.py`; idle expiry `stream_idle_timeout_s`, at most `max_streams` open).

Reusing the model registry (e.g. from another front end): `ModelServer.resolve(name,
version=None, label=None, signature_name=None)` returns a `Resolved` (servable, signature
key, SignatureDef, callable) or raises `RequestError` carrying the gRPC status code;
`predict`, `metadata` and `status` take and return the TF Serving request/response protos.
"""

import concurrent.futures
import dataclasses
import os
import re
import threading
import time

import grpc
import numpy as np
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
from tfvideo.serving import _limits, _streams

DEFAULT_MAX_REQUEST_BYTES = 64 << 20
# Decoded pixels an image (JPEG/PNG/GIF/BMP/WebP string input) may claim: a 4096x4096 frame,
# and 64 Mi pixels a request (e.g. 32 frames of 1920x1080); both read from headers before decoding.
DEFAULT_MAX_FRAME_PIXELS = 4096 * 4096
DEFAULT_MAX_REQUEST_PIXELS = 64 << 20
_DEFAULT_SIGNATURE = "serving_default"


class RequestError(Exception):
    """A request the server rejects: a gRPC status code and a message naming the input.

    `over_limit`: the request exceeds a size limit (RESOURCE_EXHAUSTED; REST answers 413).
    """

    def __init__(self, code, message, over_limit=False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.over_limit = over_limit


def _over_limit(message):
    return RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, message, over_limit=True)


def _list_versions(base_path):
    from tfvideo.export import _versions

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


_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}
DEFAULT_LOAD_RETRY_SECONDS = 60.0


def _grpc_code(tf_error):
    """The gRPC status code of a TensorFlow error (TensorFlow's codes are gRPC's numbers)."""
    return _GRPC_CODES.get(tf_error.error_code, grpc.StatusCode.UNKNOWN)


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
        """(key, SignatureDef, callable); FAILED_PRECONDITION for an unknown key, as TF Serving."""
        key = signature_name or _DEFAULT_SIGNATURE
        if key not in self.signature_defs or key not in self.functions:
            raise RequestError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"model '{self.name}' version {self.version} has no signature '{key}'; "
                f"it has {', '.join(sorted(self.signature_defs))}",
            )
        return key, self.signature_defs[key], self.functions[key]


@dataclasses.dataclass(frozen=True)
class Resolved:
    """What `ModelServer.resolve` found: the loaded version and one of its signatures.

    `servable` has `name`, `version`, `path` and `signature_defs`; `function(**tensors)`
    runs the signature and returns its output dict.
    """

    servable: object
    signature_name: str
    signature_def: object
    function: object


@dataclasses.dataclass(frozen=True)
class _Policy:
    """TF Serving's version policies: which on-disk versions a model serves."""

    kind: str = "latest"  # "latest", "all" or "specific".
    num_latest: int = 1
    specific: tuple = ()

    def candidates(self, versions):
        """The on-disk versions the policy may serve, newest first."""
        if self.kind == "specific":
            versions = [v for v in versions if v in self.specific]
        return sorted(versions, reverse=True)

    @property
    def limit(self):
        """How many versions to serve (None: every candidate that loads)."""
        return self.num_latest if self.kind == "latest" else None

    def describe(self):
        if self.kind == "latest":
            return f"latest {self.num_latest}"
        if self.kind == "specific":
            return f"specific {', '.join(str(v) for v in self.specific)}"
        return "all"


@dataclasses.dataclass(frozen=True)
class _LoadFailure:
    path: str
    reason: str
    fingerprint: tuple
    tried_at: float


def _fingerprint(path):
    """Changes whenever a version directory's files change (written, replaced, truncated, chmod-ed)."""
    entries = []
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            entries.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode))
    return tuple(sorted(entries))


def _failure_reason(error):
    """`ErrorType: first line of its message` (TensorFlow errors: their own message)."""
    text = error.message if isinstance(error, tf.errors.OpError) else str(error)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


class _Model:
    """A served model name: its base path, version policy, labels and versions.

    Loaded versions live in `_servables`; versions that failed to load in `_failures`
    (retried when their files change, or every `retry_seconds`).
    """

    def __init__(self, name, base_path, policy, warmup, labels=None, retry_seconds=DEFAULT_LOAD_RETRY_SECONDS):
        self.name = name
        self.base_path = base_path
        self.policy = policy
        self.warmup = warmup
        self.labels = dict(labels or {})
        self.retry_seconds = retry_seconds
        self._servables = {}
        self._failures = {}
        self._lock = threading.Lock()

    def refresh(self, server):
        """Follows the disk: loads what the policy serves (newest first), unloads the rest.

        A version that fails to load is skipped (older good ones keep or take its place);
        the old versions are unloaded only once newer ones are available. Returns the
        served versions.
        """
        on_disk = _list_versions(self.base_path)
        limit = self.policy.limit
        served, attempted = [], set()
        for version in self.policy.candidates(on_disk):
            if limit is not None and len(served) >= limit:
                break
            attempted.add(version)
            if self._ensure_loaded(version, server):
                served.append(version)
        with self._lock:
            for version in sorted(self._servables):
                if version not in served:
                    why = (f"removed from {self.base_path}" if version not in on_disk
                           else f"version policy {self.policy.describe()} now serves {sorted(served)}")
                    logging.info("Unloading model '%s' version %d (%s)", self.name, version, why)
                    del self._servables[version]
            for version in list(self._failures):
                if version not in attempted:
                    del self._failures[version]
            return sorted(self._servables)

    def _ensure_loaded(self, version, server):
        """True when `version` is loaded (loading it now if needed); False if it does not load."""
        with self._lock:
            if version in self._servables:
                return True
            failure = self._failures.get(version)
        path = os.path.join(self.base_path, str(version))
        fingerprint = _fingerprint(path)
        now = time.monotonic()
        if failure and failure.fingerprint == fingerprint and now - failure.tried_at < self.retry_seconds:
            return False
        try:
            servable = _Servable(self.name, version, path)
            if self.warmup:
                server.replay_warmup(servable)
        except Exception as e:  # noqa: BLE001 -- any broken version: log it by path, keep serving the others.
            reason = _failure_reason(e)
            with self._lock:
                self._failures[version] = _LoadFailure(path, reason, fingerprint, now)
                serving = sorted(self._servables)
            log = logging.warning if failure is not None and failure.reason == reason else logging.error
            log("Model '%s' version %d at %s failed to load: %s; serving %s; retrying when its files change "
                "(or in %.0f s)", self.name, version, path, reason, serving or "no version yet", self.retry_seconds)
            return False
        with self._lock:
            self._servables[version] = servable
            self._failures.pop(version, None)
        logging.info("Loaded model '%s' version %d from %s", self.name, version, path)
        return True

    def loaded_versions(self):
        with self._lock:
            return sorted(self._servables)

    def holds(self, servable):
        """True while `servable` (a version loaded earlier) is still the one served."""
        with self._lock:
            return self._servables.get(servable.version) is servable

    def version_states(self):
        """[(version, loaded, _LoadFailure or None)] sorted by version: what GetModelStatus reports."""
        with self._lock:
            states = {v: (True, None) for v in self._servables}
            for version, failure in self._failures.items():
                states.setdefault(version, (False, failure))
        return [(v, *states[v]) for v in sorted(states)]

    def servable(self, version=None):
        """The loaded `version` (None: the highest loaded); NOT_FOUND naming why it is not served."""
        with self._lock:
            if version is None and self._servables:
                return self._servables[max(self._servables)]
            if version is not None and version in self._servables:
                return self._servables[version]
            failures = dict(self._failures)
            loaded = sorted(self._servables)
        serving = f"serving {', '.join(map(str, loaded))}" if loaded else "serving no version"
        if version is None:
            detail = "; ".join(f"version {v} at {f.path} failed to load: {f.reason}" for v, f in sorted(failures.items()))
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{self.name}' has no servable version under {self.base_path} "
                f"(version policy {self.policy.describe()})" + (f"; {detail}" if detail else ""),
            )
        if version in failures:
            why = f"it failed to load from {failures[version].path}: {failures[version].reason}"
        elif version in _list_versions(self.base_path):
            why = f"version policy {self.policy.describe()} does not serve it"
        else:
            why = f"{os.path.join(self.base_path, str(version))} holds no SavedModel"
        raise RequestError(grpc.StatusCode.NOT_FOUND, f"model '{self.name}' has no version {version}: {why}; {serving}")


def _policy_from_proto(config):
    which = config.model_version_policy.WhichOneof("policy_choice")
    if which == "all":
        return _Policy("all")
    if which == "specific":
        versions = tuple(sorted(set(config.model_version_policy.specific.versions)))
        if not versions:
            raise ValueError(f"model '{config.name}': model_version_policy specific lists no versions")
        return _Policy("specific", specific=versions)
    if which == "latest" and config.model_version_policy.latest.num_versions:
        return _Policy("latest", num_latest=int(config.model_version_policy.latest.num_versions))
    return _Policy("latest")


def _positive(name, value, kind=float):
    value = kind(value)
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"ModelServer: {name}={value} must be a finite number > 0")
    return value


@tf_export("tfvideo.serving.ModelServer")
class ModelServer:
    """The development server: `ModelServer(models).start(port)` then `wait()` / `drain()` / `stop()`.

    Args:
      models: `{name: base_path}` (each served with the `latest` policy), or a
        `ModelServerConfig` (e.g. read from models.config) with per-model
        `model_version_policy` and `version_labels`.
      max_request_bytes: larger Predict requests get RESOURCE_EXHAUSTED; it also bounds the
        decoded size of the inputs (declared shape x dtype size), checked before any input is
        expanded.
      poll_seconds: how often base paths are scanned for new versions.
      max_workers: threads answering requests concurrently.
      warmup: replay each version's `assets.extra/tf_serving_warmup_requests` on load.
      load_retry_seconds: a version that failed to load is retried when its files change,
        and otherwise every this many seconds.
      max_frame_pixels: an encoded image (JPEG/PNG/GIF/BMP/WebP string input) whose header
        claims more pixels gets RESOURCE_EXHAUSTED before it is decoded.
      max_request_pixels: the same for the pixels all images of one request claim together.
      stream_idle_timeout_s: a stream (a streaming export's state held here, see
        `tfvideo/serving/_streams.py`) not stepped for this long expires.
      max_streams: streams open at once; opening more is RESOURCE_EXHAUSTED.
    """

    def __init__(self, models, max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, poll_seconds=1.0, max_workers=8,
                 warmup=True, load_retry_seconds=DEFAULT_LOAD_RETRY_SECONDS,
                 max_frame_pixels=DEFAULT_MAX_FRAME_PIXELS, max_request_pixels=DEFAULT_MAX_REQUEST_PIXELS,
                 stream_idle_timeout_s=_streams.DEFAULT_IDLE_TIMEOUT_S, max_streams=_streams.DEFAULT_MAX_STREAMS):
        if isinstance(models, model_server_config_pb2.ModelServerConfig):
            entries = [(c.name, c.base_path, _policy_from_proto(c), dict(c.version_labels))
                       for c in models.model_config_list.config]
        else:
            entries = [(name, path, _Policy(), {}) for name, path in dict(models).items()]
        if not entries:
            raise ValueError("ModelServer: no models to serve")
        self.max_request_bytes = _positive("max_request_bytes", max_request_bytes, int)
        self.poll_seconds = _positive("poll_seconds", poll_seconds)
        self.max_workers = _positive("max_workers", max_workers, int)
        self.load_retry_seconds = _positive("load_retry_seconds", load_retry_seconds)
        self.max_frame_pixels = _positive("max_frame_pixels", max_frame_pixels, int)
        self.max_request_pixels = _positive("max_request_pixels", max_request_pixels, int)
        self.streams = _streams.StreamTable(
            lambda servable: self._models[servable.name].holds(servable),
            _positive("stream_idle_timeout_s", stream_idle_timeout_s), _positive("max_streams", max_streams, int))
        self._models = {}
        for name, base_path, policy, labels in entries:
            if not name:
                raise ValueError(f"ModelServer: a model config entry for {base_path} has no name")
            if name in self._models:
                raise ValueError(f"ModelServer: model '{name}' is configured twice")
            if not os.path.isdir(base_path):
                raise FileNotFoundError(f"model '{name}': base path {base_path} does not exist")
            self._models[name] = _Model(name, os.path.abspath(base_path), policy, warmup, labels,
                                        self.load_retry_seconds)
        self._server = None
        self._stop = threading.Event()
        self._refresh_lock = threading.Lock()
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._poller = None
        self._executor = None
        self.port = None

    @property
    def model_names(self):
        return sorted(self._models)

    # --- lifecycle -------------------------------------------------------------------
    def refresh(self):
        """Scans every base path once; returns {name: served versions}. Never raises for a bad version."""
        out = {}
        with self._refresh_lock:
            for model in self._models.values():
                try:
                    out[model.name] = model.refresh(self)
                except Exception as e:  # noqa: BLE001 -- e.g. an unreadable base path: keep what is loaded.
                    logging.error("Scanning model '%s' at %s failed: %s", model.name, model.base_path,
                                  _failure_reason(e))
                    out[model.name] = model.loaded_versions()
        return out

    def start(self, port=8500, host="127.0.0.1"):
        """Loads the models, binds `host:port` (0 = a free port) and starts serving; returns the port."""
        for name, versions in self.refresh().items():
            if not versions:
                logging.warning("Model '%s' has no loadable version under %s yet; polling every %.1f s",
                                name, self._models[name].base_path, self.poll_seconds)
        margin = 1 << 20  # Let slightly-too-large requests through so Predict can name the input.
        options = [
            ("grpc.max_receive_message_length", self.max_request_bytes + margin),
            ("grpc.max_send_message_length", -1),
        ]
        self._executor = _AcceptingExecutor(self.max_workers)
        self._server = grpc.server(self._executor, options=options)
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
            try:
                self.refresh()
                self.streams.sweep()  # Expired streams and those of unloaded versions free their state.
            except Exception:  # noqa: BLE001 -- the poller must outlive anything on disk.
                logging.exception("Polling the model base paths failed; retrying in %.1f s", self.poll_seconds)

    def wait(self):
        self._server.wait_for_termination()

    def stop(self, grace=None):
        self._stop.set()
        if self._server is not None:
            self._server.stop(grace).wait()

    @property
    def in_flight(self):
        """Requests being answered now."""
        with self._in_flight_lock:
            return self._in_flight

    def track_request(self):
        """A context manager counting one request as in flight (front ends wrap each request in it)."""
        return _InFlight(self)

    def drain(self, grace_seconds):
        """Stops accepting requests, lets in-flight ones finish for up to `grace_seconds`, stops.

        Returns how many requests were still running when the grace period ended (they are
        cancelled; 0 when everything finished).
        """
        grace_seconds = float(grace_seconds)
        if not grace_seconds >= 0:
            raise ValueError(f"drain: grace_seconds={grace_seconds} must be >= 0")
        self._stop.set()
        logging.info("Draining: no new requests; waiting up to %.1f s for %d in flight", grace_seconds, self.in_flight)
        deadline = time.monotonic() + grace_seconds
        if self._executor is not None:
            # Lame duck first: the RPCs accepted before now are answered, later ones refused with
            # UNAVAILABLE by their handler; gRPC's own stop() would cancel RPCs it has received but
            # not yet handed to a thread, so it comes once those have been refused.
            self._executor.lame_duck(deadline)
        if self._server is not None:
            self._server.stop(max(deadline - time.monotonic(), 0.0)).wait()
        deadline = time.monotonic() + 0.5  # Handlers return just after their RPC completes.
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.in_flight

    # --- resolving (model, version | label, signature) ---------------------------------
    def _model(self, name):
        if not name:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "model_spec.name is empty")
        if name not in self._models:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{name}' is not served; serving {', '.join(self.model_names)}",
            )
        return self._models[name]

    def _version_of(self, model, version, label):
        if version is not None and label:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "give a version or a version label, not both")
        if not label:
            return version
        if label not in model.labels:
            known = ", ".join(f"{k}={v}" for k, v in sorted(model.labels.items())) or "none"
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"model '{model.name}' has no version label '{label}' (labels: {known})",
            )
        return model.labels[label]

    def resolve_servable(self, name, version=None, label=None):
        """The served version of model `name`: `version`, the version `label` names, or the latest.

        Raises `RequestError`: INVALID_ARGUMENT (empty name, unknown label), NOT_FOUND
        (unknown model, version not served, with the reason).
        """
        model = self._model(name)
        return model.servable(self._version_of(model, version, label))

    def resolve(self, name, version=None, label=None, signature_name=None):
        """A `Resolved` (servable, signature key, SignatureDef, callable) for one request.

        `signature_name` None or "" means `serving_default`; an unknown one is
        FAILED_PRECONDITION. Other errors as `resolve_servable`.
        """
        servable = self.resolve_servable(name, version, label)
        key, signature_def, function = servable.signature(signature_name)
        return Resolved(servable, key, signature_def, function)

    def _servable(self, model_spec):
        which = model_spec.WhichOneof("version_choice")
        return self.resolve_servable(
            model_spec.name,
            version=model_spec.version.value if which == "version" else None,
            label=model_spec.version_label if which == "version_label" else None,
        )

    # --- request handling ------------------------------------------------------------
    def _check_inputs(self, request, signature_name, signature_def):
        expected = signature_def.inputs
        for key in request.inputs:
            if key not in expected:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input '{key}' is not an input of signature '{signature_name}'; "
                    f"it takes {', '.join(sorted(expected))}",
                )
        self._check_declared_sizes(request)
        arrays = {}
        pixels = 0
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
            if array.dtype == object:
                pixels = self._check_image_sizes(key, array, pixels)
            arrays[key] = array
        return arrays

    def _check_declared_sizes(self, request):
        """RESOURCE_EXHAUSTED when the inputs' declared shapes x dtype sizes exceed max_request_bytes.

        Read from each TensorProto's shape before it is expanded (a proto declaring a large shape
        with one value otherwise becomes the full array).
        """
        total = 0
        for key in sorted(request.inputs):
            try:
                shape, count, size = _limits.declared_bytes(request.inputs[key])
            except ValueError as e:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{key}' is not a valid TensorProto: {e}") from e
            total += size
            if total > self.max_request_bytes:
                dtype = tf.dtypes.as_dtype(request.inputs[key].dtype).name if request.inputs[key].dtype else "unset"
                raise _over_limit(
                    f"input '{key}' declares shape {_shape_str(shape)} of {dtype} ({count} values, {size} bytes "
                    f"decoded{'' if total == size else f'; {total} with the inputs before it'}): over the server's "
                    f"limit of {self.max_request_bytes} bytes (--max_request_bytes)")

    def _check_image_sizes(self, key, array, pixels):
        """Reads each encoded image's header; RESOURCE_EXHAUSTED over the pixel limits. Returns the running total."""
        for index, value in enumerate(array.reshape(-1)):
            if not isinstance(value, bytes):
                continue
            claim = _limits.image_size(value)
            if claim is None:
                continue
            kind, width, height, frames = claim
            size = width * height * frames
            where = f"input '{key}' element {[int(i) for i in np.unravel_index(index, array.shape)]}"
            what = f"a {width}x{height} {kind}" + (f" of {frames} frames" if frames > 1 else "")
            if size > self.max_frame_pixels:
                raise _over_limit(f"{where} is {what} ({size} pixels): over the limit of {self.max_frame_pixels} "
                                  "pixels per image (--max_frame_pixels)")
            pixels += size
            if pixels > self.max_request_pixels:
                raise _over_limit(f"{where} ({what}) brings the request to {pixels} pixels: over the limit of "
                                  f"{self.max_request_pixels} pixels per request (--max_request_pixels)")
        return pixels

    def predict(self, request, servable=None):
        """Answers a `PredictRequest`; raises `RequestError` for bad requests.

        `servable`: run on this version (`resolve_servable`'s result, e.g. the one whose
        signature a front end read to build the request) instead of resolving
        `request.model_spec` again; it answers even if it is unloaded meanwhile.
        """
        if not request.HasField("model_spec"):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the request has no model_spec")
        size = request.ByteSize()
        if size > self.max_request_bytes:
            largest = max(request.inputs, key=lambda k: request.inputs[k].ByteSize(), default="?")
            raise _over_limit(f"request of {size} bytes exceeds the server's limit of {self.max_request_bytes} bytes "
                              f"(largest input: '{largest}')")
        if _streams.is_stream_request(request):
            return self._stream_predict(request)
        if servable is None:
            servable = self._servable(request.model_spec)
        signature_name, signature_def, function = servable.signature(request.model_spec.signature_name)
        seen = set()
        for key in request.output_filter:
            if key not in signature_def.outputs:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"output_filter names '{key}', not an output of signature '{signature_name}' "
                    f"({', '.join(sorted(signature_def.outputs))})",
                )
            if key in seen:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names '{key}' twice")
            seen.add(key)
        arrays = self._check_inputs(request, signature_name, signature_def)
        try:
            outputs = function(**{k: tf.constant(v) for k, v in arrays.items()})
        except tf.errors.InvalidArgumentError as e:
            names = ", ".join(f"'{k}'" for k in sorted(arrays))
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"signature '{signature_name}' rejected input {names}: {_tf_error_reason(e.message)}",
            ) from e
        except tf.errors.OpError as e:  # Runtime errors keep their TensorFlow code, as in TF Serving.
            raise RequestError(_grpc_code(e), f"signature '{signature_name}': {_tf_error_reason(e.message)}") from e
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

    # --- streams (state held here; see _streams) ------------------------------------
    def _spec_version(self, spec):
        """The version a ModelSpec names (a number, or its label resolved), or None."""
        which = spec.WhichOneof("version_choice")
        if which is None:
            return None
        model = self._model(spec.name)
        return self._version_of(model, spec.version.value if which == "version" else None,
                                spec.version_label if which == "version_label" else None)

    def open_stream(self, spec):
        """Opens a stream on the version `spec` (a ModelSpec) names, or the latest; returns the `_Stream`."""
        return self.streams.open(self._servable(spec))

    def stream_servable(self, spec, stream_id):
        """The version an open stream is bound to (NOT_FOUND for an unknown, expired or closed id)."""
        self._model(spec.name)
        return self.streams.servable(spec.name, stream_id, self._spec_version(spec))

    def close_stream(self, spec, stream_id):
        """Closes an open stream; returns it (`frames`: how many it stepped)."""
        self._model(spec.name)
        return self.streams.close(spec.name, stream_id, self._spec_version(spec))

    def step_stream(self, spec, stream_id, frames):
        """Steps frames [N, H, W, C] through an open stream: (stream, {scores, logits, frame_index: [N, ...]})."""
        self._model(spec.name)
        return self.streams.step(spec.name, stream_id, frames, self._spec_version(spec))

    def _stream_id(self, request, signature):
        if _streams.STREAM_ID not in request.inputs:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{_streams.STREAM_ID}' is missing: signature '{signature}' needs the id "
                               f"'{_streams.STREAM_OPEN}' returned")
        proto = request.inputs[_streams.STREAM_ID]
        value = tf.make_ndarray(proto) if proto.dtype == tf.string.as_datatype_enum else None
        if value is None or value.size != 1:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{_streams.STREAM_ID}' must be one string (the id '{_streams.STREAM_OPEN}' "
                               "returned)")
        value = value.reshape(-1)[0]
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

    def _stream_predict(self, request):
        """Predict for streams: signature 'stream_open', 'step' with a 'stream_id' input, 'stream_close'."""
        spec, signature = request.model_spec, request.model_spec.signature_name
        allowed = {_streams.STREAM_OPEN: set(), _streams.STREAM_CLOSE: {_streams.STREAM_ID},
                   _streams.STEP: {_streams.STREAM_ID, _streams.FRAME}}[signature]
        for key in request.inputs:
            if key not in allowed:
                held = " (the server holds the stream's state; send only the frames)" if key.startswith("state_") else ""
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input '{key}' is not an input of '{signature}' on a stream{held}; it takes "
                                   f"{', '.join(repr(k) for k in sorted(allowed)) or 'no inputs'}")
        self._check_declared_sizes(request)
        if signature == _streams.STREAM_OPEN:
            stream = self.open_stream(spec)
            outputs = {_streams.STREAM_ID: np.array(stream.id.encode(), dtype=object),
                       "idle_timeout_s": np.array(self.streams.idle_timeout_s, np.float64),
                       "frame_shape": np.array(stream.frame_shape, np.int64)}
        elif signature == _streams.STREAM_CLOSE:
            stream = self.close_stream(spec, self._stream_id(request, signature))
            outputs = {_streams.STREAM_ID: np.array(stream.id.encode(), dtype=object),
                       "frames": np.array(stream.frames, np.int64)}
        else:
            stream_id = self._stream_id(request, signature)
            if _streams.FRAME not in request.inputs:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input '{_streams.FRAME}' of signature '{signature}' is missing")
            try:
                frames = tf.make_ndarray(request.inputs[_streams.FRAME])
            except (ValueError, TypeError) as e:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input '{_streams.FRAME}' is not a valid TensorProto: {e}") from e
            stream, outputs = self.step_stream(spec, stream_id, frames)
        response = predict_pb2.PredictResponse(model_spec=model_pb2.ModelSpec(
            name=stream.servable.name, version=wrappers_pb2.Int64Value(value=stream.servable.version),
            signature_name=signature))
        wanted = set(request.output_filter) or set(outputs)
        for key, value in outputs.items():
            if key in wanted:
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def metadata(self, request):
        """Answers a `GetModelMetadataRequest` (metadata_field ['signature_def'])."""
        if not request.HasField("model_spec"):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the request has no model_spec")
        fields = list(request.metadata_field)
        if not fields or any(f != "signature_def" for f in fields):
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"metadata_field must be ['signature_def'] (the only metadata served), got {fields}",
            )
        servable = self._servable(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=model_pb2.ModelSpec(name=servable.name, version=wrappers_pb2.Int64Value(value=servable.version))
        )
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def status(self, request):
        """Answers a `GetModelStatusRequest`: served versions AVAILABLE, failed ones END with the error."""
        if not request.HasField("model_spec"):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the request has no model_spec")
        model = self._model(request.model_spec.name)
        which = request.model_spec.WhichOneof("version_choice")
        states = model.version_states()
        if which in ("version", "version_label"):
            version = self._version_of(
                model,
                request.model_spec.version.value if which == "version" else None,
                request.model_spec.version_label if which == "version_label" else None,
            )
            states = [s for s in states if s[0] == version]
            if not states:
                model.servable(version)  # Raises NOT_FOUND with the reason.
        elif not states:
            model.servable(None)
        response = get_model_status_pb2.GetModelStatusResponse()
        state = get_model_status_pb2.ModelVersionStatus
        for version, loaded, failure in states:
            entry = response.model_version_status.add()
            entry.version = version
            entry.state = state.AVAILABLE if loaded else state.END
            if failure is not None:
                entry.status.error_code = grpc.StatusCode.UNKNOWN.value[0]
                entry.status.error_message = f"{failure.path}: {failure.reason}"
        return response

    def replay_warmup(self, servable):
        """Runs a version's warm-up requests through Predict; failures are logged, not fatal."""
        from tfvideo.export import _warmup

        for request in _warmup.read_warmup_requests(servable.path):
            try:
                name, signature_def, function = servable.signature(request.model_spec.signature_name)
                arrays = self._check_inputs(request, name, signature_def)
                function(**{k: tf.constant(v) for k, v in arrays.items()})
            except (RequestError, tf.errors.OpError) as e:
                logging.warning("Warm-up request for %s version %d failed: %s", servable.name, servable.version, e)


class _InFlight:
    def __init__(self, server):
        self._server = server

    def __enter__(self):
        with self._server._in_flight_lock:
            self._server._in_flight += 1
        return self

    def __exit__(self, *exc):
        with self._server._in_flight_lock:
            self._server._in_flight -= 1
        return False


class _AcceptingExecutor(concurrent.futures.ThreadPoolExecutor):
    """The gRPC server's thread pool, knowing when each RPC was accepted (handed to it).

    After `lame_duck()` begins, an RPC accepted later is refused (UNAVAILABLE) by its handler,
    while the ones accepted before are answered.
    """

    def __init__(self, max_workers):
        super().__init__(max_workers)
        self._lock = threading.Lock()
        self._accepted = {}  # id -> monotonic time accepted, for RPCs not finished yet.
        self._next_id = 0
        self._last_accepted = 0.0
        self.draining_since = None
        self._local = threading.local()

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            ident, self._next_id = self._next_id, self._next_id + 1
            self._last_accepted = self._accepted[ident] = time.monotonic()

        def run():
            self._local.accepted_at = self._accepted[ident]
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    del self._accepted[ident]

        return super().submit(run)

    def refuses_current(self):
        """True in a handler of an RPC accepted after draining began."""
        since = self.draining_since
        return since is not None and getattr(self._local, "accepted_at", 0.0) >= since

    def lame_duck(self, deadline, quiet=0.2, settle=1.0):
        """Refuses new RPCs; returns once the earlier ones have finished and then none arrived for
        `quiet` s (at most `settle` s more: clients may keep retrying), or at `deadline`."""
        self.draining_since = time.monotonic()
        done_at = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            with self._lock:
                busy = any(t < self.draining_since for t in self._accepted.values())
                idle_for = now - self._last_accepted
            if not busy:
                done_at = done_at or now
                if idle_for >= quiet or now - done_at >= settle:
                    return
            time.sleep(0.02)


def _handler(method):
    def handle(self, request, context):
        executor = self._server._executor
        if executor is not None and executor.refuses_current():
            context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        with self._server.track_request():
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
