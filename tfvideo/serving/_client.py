"""`tfvideo.serving.Client` (gRPC) and `RestClient` (TF Serving's REST API): Predict, model
metadata and status, and whole video files sampled, JPEG-encoded and classified.

Both work unchanged against `tensorflow_model_server` and `tfvideo-serve`.
"""

import base64
import dataclasses
import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request

import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format, wrappers_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfvideo.api._export import tf_export
from tfvideo.data import _clip_spec, _samplers, _video_io
from tfvideo.serving import _fused

_CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
CLIP_SPEC_SIGNATURE = "clip_spec"  # The export's zero-input signature returning the clip spec's JSON.


@tf_export("tfvideo.serving.VideoPrediction")
@dataclasses.dataclass(frozen=True)
class VideoPrediction:
    """Top-k classes of one video: `labels[i]` has probability `probabilities[i]`."""

    path: str
    labels: tuple
    probabilities: tuple
    indices: tuple


def _model_spec(model_name, version=None, signature_name=None):
    spec = model_pb2.ModelSpec(name=model_name)
    if version is not None:
        spec.version.CopyFrom(wrappers_pb2.Int64Value(value=int(version)))
    if signature_name:
        spec.signature_name = signature_name
    return spec


def encode_jpeg_frames(frames, quality=95):
    """uint8 [N, H, W, 3] -> list of N JPEG byte strings."""
    return [tf.io.encode_jpeg(frame, quality=quality).numpy() for frame in np.asarray(frames, np.uint8)]


def sample_video(path, sampler):
    """The test-time frames of a video file: uint8 [views * T, H, W, 3], clip-major.

    Raises `tfvideo.data.VideoDecodeError` naming the file when it cannot be read.
    """
    info = _video_io.probe_video(path)
    return _video_io.read_frames(path, sampler(info.num_frames).reshape(-1))


def top_k_prediction(path, probabilities, labels, top_k):
    """`VideoPrediction` of the `top_k` most probable of `probabilities` [K] (ties: lower index first)."""
    probabilities = np.asarray(probabilities)
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    return VideoPrediction(
        path=str(path),
        labels=tuple(str(labels[k]) for k in order),
        probabilities=tuple(float(probabilities[k]) for k in order),
        indices=tuple(int(k) for k in order),
    )


class _VideoClient:
    """What both clients do with video files on top of `predict` and `metadata`."""

    def _init_caches(self):
        self._clip_specs = {}  # (model name, version) -> ClipSpec or None (an export without one).
        self._warned = set()

    def clip_length(self, model_name, signature_name="jpeg_frames", version=None):
        """Frames per video the signature takes (its input's second dimension)."""
        signatures = self.metadata(model_name, version)
        if signature_name not in signatures:
            raise ValueError(
                f"model '{model_name}' at {self.target} has no signature '{signature_name}' "
                f"(it has {', '.join(sorted(signatures))})"
            )
        (name, info), = signatures[signature_name].inputs.items()
        dims = [d.size for d in info.tensor_shape.dim]
        if len(dims) < 2 or dims[1] <= 0:
            raise ValueError(f"signature '{signature_name}' input '{name}' has no fixed frame count: {dims}")
        return dims[1]

    def serving_version(self, model_name, version=None):
        """`version`, or the highest AVAILABLE version of the model (None when none is)."""
        if version is not None:
            return int(version)
        available = [v for v, state in self.status(model_name) if state == "AVAILABLE"]
        return max(available) if available else None

    def _clip_spec_text(self, model_name, version):
        """The JSON text the `clip_spec` signature returns (None without one); read once per version."""
        cache = self._clip_specs
        key = (model_name, version, "text")
        if key not in cache:
            if CLIP_SPEC_SIGNATURE not in self.metadata(model_name, version):
                cache[key] = None
            else:
                text = self.predict(model_name, {}, signature_name=CLIP_SPEC_SIGNATURE, version=version)
                value = np.asarray(text[CLIP_SPEC_SIGNATURE]).reshape(-1)[0]
                cache[key] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        return cache[key]

    def _where(self, model_name, version):
        return f"model '{model_name}' version {version} at {self.target}: signature '{CLIP_SPEC_SIGNATURE}'"

    def fused_spec(self, model_name, version=None):
        """A two-stream export's clip spec (`_fused.FusedSpec`: each stream's ClipSpec, fusion
        weights, how prepare made each stream's frames), or None for a single-stream export.

        Raises ValueError naming what is missing when the export lacks the flow settings
        needed to compute flow from videos.
        """
        version = self.serving_version(model_name, version)
        text = self._clip_spec_text(model_name, version)
        return None if text is None else _fused.parse_json(text, self._where(model_name, version))

    def clip_spec(self, model_name, version=None):
        """The export's `tfvideo.data.ClipSpec` (its `clip_spec` signature), or None for an
        export without that signature (made before it existed).

        Read once per model version (`version` None: the highest available one). A two-stream
        export has one per stream: see `fused_spec`.
        """
        version = self.serving_version(model_name, version)
        cache = self._clip_specs
        key = (model_name, version)
        if key not in cache:
            text = self._clip_spec_text(model_name, version)
            where = self._where(model_name, version)
            if text is not None and _fused.parse_json(text, where) is not None:
                raise ValueError(f"model '{model_name}' version {version} at {self.target} is a two-stream export "
                                 "(an RGB and a flow clip per video): see fused_spec / predict_videos")
            cache[key] = None if text is None else _clip_spec.ClipSpec.from_json(text, where)
        return cache[key]

    def test_sampler(self, model_name, signature_name="jpeg_frames", version=None, num_clips=None):
        """The test-time sampler of the export (see `sampler_and_fallback`)."""
        return self.sampler_and_fallback(model_name, signature_name, version, num_clips)[0]

    def sampler_and_fallback(self, model_name, signature_name="jpeg_frames", version=None, num_clips=None):
        """(test-time sampler, None), or (guessed sampler, why) for an export without a clip spec.

        The sampler is the export's clip spec read from its `clip_spec` signature; `num_clips`
        (None: the export's) must equal the export's `--num_clips`. An export made before
        the spec was recorded gets a `SegmentSampler` filling the signature's frames with
        `num_clips` clips (default 1), and the reason says so (logged as a warning).
        """
        if num_clips is not None and (isinstance(num_clips, bool) or int(num_clips) != num_clips or num_clips < 1):
            raise ValueError(f"num_clips={num_clips} must be an integer >= 1")
        total = self.clip_length(model_name, signature_name, version)
        spec = self.clip_spec(model_name, version)
        if spec is not None:
            if num_clips is not None and int(num_clips) != spec.num_clips:
                raise ValueError(f"num_clips={num_clips}, but model '{model_name}' was exported with "
                                 f"{spec.num_clips} clip(s) (its clip spec)")
            sampler = spec.sampler(training=False)
            if sampler.num_views * sampler.clip_length != total:
                raise ValueError(f"model '{model_name}': its clip spec gives {sampler.num_views}x{sampler.clip_length} "
                                 f"frames but signature '{signature_name}' takes {total}")
            return sampler, None
        clips = int(num_clips or 1)
        if total % clips:
            raise ValueError(f"num_clips={clips} does not divide the signature's {total} frames")
        sampler = _samplers.SegmentSampler(num_segments=total // clips, num_clips=clips)
        reason = (f"model '{model_name}' at {self.target} has no '{CLIP_SPEC_SIGNATURE}' signature (exported before "
                  f"it was recorded); using {sampler!r} from the signature's {total} frames")
        return sampler, reason

    def top_k_size(self, model_name, signature_name="jpeg_frames", version=None):
        """How many labels the signature's `top_k_labels` output holds per video (None: unknown)."""
        signature = self.metadata(model_name, version).get(signature_name)
        outputs = signature.outputs if signature is not None else {}
        if "top_k_labels" not in outputs:
            return None
        dims = [d.size for d in outputs["top_k_labels"].tensor_shape.dim]
        return dims[1] if len(dims) == 2 and dims[1] > 0 else None

    def predict_videos(self, paths, model_name, top_k=5, signature_name="jpeg_frames", version=None, num_clips=None,
                       sampler=None, jpeg_quality=95):
        """Decodes, samples and JPEG-encodes video files locally, sends one Predict request.

        The frames are chosen by the test-time sampler used in training: `sampler`, or the
        one the export's clip spec records (read once per model version; the request is
        pinned to that version). For an export without a clip spec, a `SegmentSampler`
        whose clip length comes from the signature's input shape (`num_clips` clips,
        matching the export's `--num_clips`) and one warning. Returns one
        `VideoPrediction` per path.
        """
        paths = [str(p) for p in paths]
        if sampler is None:
            version = self.serving_version(model_name, version)
            fused = self.fused_spec(model_name, version)
            if fused is not None:
                return self.predict_fused_videos(paths, model_name, fused, top_k, signature_name, version)
            sampler, fallback = self.sampler_and_fallback(model_name, signature_name, version, num_clips)
            if fallback and (model_name, version) not in self._warned:
                self._warned.add((model_name, version))
                logging.warning("%s", fallback)
        batch = [encode_jpeg_frames(sample_video(path, sampler), jpeg_quality) for path in paths]
        outputs = self.predict(
            model_name,
            {signature_name: np.array(batch, dtype=object)},
            signature_name=signature_name,
            version=version,
            output_filter=["probabilities", "top_k_indices", "top_k_labels"],
        )
        results = []
        for i, path in enumerate(paths):
            indices = outputs["top_k_indices"][i][:top_k]
            results.append(
                VideoPrediction(
                    path=path,
                    labels=tuple(label.decode() for label in outputs["top_k_labels"][i][:top_k]),
                    probabilities=tuple(float(p) for p in outputs["probabilities"][i][indices]),
                    indices=tuple(int(k) for k in indices),
                )
            )
        return results

    def predict_fused_videos(self, paths, model_name, fused, top_k=5, signature_name="jpeg_frames", version=None):
        """A two-stream export's fused top-k of video files: each decoded once here, its RGB and
        flow clips made as `tfvideo-prepare` made the training records (see `_fused`), one Predict
        request. `fused`: the export's `fused_spec`. Returns one `VideoPrediction` per path."""
        batch = [_fused.video_inputs(path, fused, signature_name) for path in paths]
        inputs = {key: np.concatenate([b[key] for b in batch]) for key in batch[0]}
        outputs = self.predict(model_name, inputs, signature_name=signature_name, version=version,
                               output_filter=["probabilities", "top_k_indices", "top_k_labels"])
        return [_fused.outputs_prediction(path, outputs, i, top_k) for i, path in enumerate(paths)]

    def predict_video(self, path, model_name, **kwargs):
        """`predict_videos` for one file; returns its `VideoPrediction`."""
        return self.predict_videos([path], model_name, **kwargs)[0]


@tf_export("tfvideo.serving.Client")
class Client(_VideoClient):
    """A gRPC client of a TF Serving model server at `target` ("host:port").

    Example:
        client = tfvideo.serving.Client("localhost:8500")
        print(client.predict_video("clip.mp4", "tsm").labels)
    """

    def __init__(self, target, timeout=30.0):
        self.target = target
        self.timeout = timeout
        self._init_caches()
        self._channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def predict(self, model_name, inputs, signature_name="serving_default", version=None, output_filter=None):
        """Calls Predict; `inputs` maps input names to arrays. Returns {output name: ndarray}.

        Failures raise `grpc.RpcError` carrying the server's status code and message.
        """
        request = predict_pb2.PredictRequest(model_spec=_model_spec(model_name, version, signature_name))
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        if output_filter:
            request.output_filter.extend(output_filter)
        response = self._predictions.Predict(request, timeout=self.timeout)
        return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}

    def metadata(self, model_name, version=None):
        """The model's SignatureDefs: {signature name: `SignatureDef` proto}."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=_model_spec(model_name, version), metadata_field=["signature_def"]
        )
        response = self._predictions.GetModelMetadata(request, timeout=self.timeout)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return dict(signature_map.signature_def)

    def status(self, model_name, version=None):
        """[(version, state name)] of the model's versions, e.g. [(2, "AVAILABLE")]."""
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=_model_spec(model_name, version))
        response = self._models.GetModelStatus(request, timeout=self.timeout)
        state = get_model_status_pb2.ModelVersionStatus.State
        return [(s.version, state.Name(s.state)) for s in response.model_version_status]



@tf_export("tfvideo.serving.RestError")
class RestError(Exception):
    """A REST API error answer: `status` (HTTP) and `message` (the server's `{"error": ...}`)."""

    def __init__(self, status, message, url=None):
        super().__init__(f"HTTP {status}: {message}")
        self.status = int(status)
        self.message = message
        self.url = url


def _json_tensor(value):
    """An input array as TF Serving's JSON: nested lists, bytes as {"b64": ...}."""
    array = np.asarray(value)
    if array.dtype.kind in "SO":
        flat = [{"b64": base64.b64encode(b if isinstance(b, bytes) else str(b).encode()).decode("ascii")}
                for b in array.reshape(-1)]
        if array.ndim == 0:
            return flat[0]
        nested = np.empty(len(flat), dtype=object)
        nested[:] = flat
        return nested.reshape(array.shape).tolist()
    return array.tolist()


def _from_json_tensor(value, dtype):
    """A JSON output value -> ndarray of the signature's dtype (strings as bytes)."""
    if dtype == tf.string:
        def leaf(v):
            if isinstance(v, dict):
                return base64.b64decode(v["b64"])
            return v.encode("utf-8") if isinstance(v, str) else v

        def walk(v):
            return [walk(x) for x in v] if isinstance(v, list) else leaf(v)

        nested = walk(value)
        array = np.array(nested, dtype=object)
        return array
    return np.asarray(value, dtype=dtype.as_numpy_dtype)


@tf_export("tfvideo.serving.RestClient")
class RestClient(_VideoClient):
    """A client of TF Serving's REST API at `target` ("host:8501" or "http://host:8501").

    The same calls as `tfvideo.serving.Client` (`predict`, `metadata`, `status`,
    `predict_video(s)`) over HTTP/JSON. Server errors raise `RestError` (HTTP status and
    message); a server that cannot be reached raises `ConnectionError` naming the address.
    """

    def __init__(self, target, timeout=30.0):
        base = target if "://" in target else f"http://{target}"
        parts = urllib.parse.urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"RestClient: target {target!r} is not host:port or http://host:port")
        self.target = target
        self.base_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.timeout = timeout
        self._metadata = {}
        self._init_caches()

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def _path(model_name, version=None):
        path = f"/v1/models/{urllib.parse.quote(model_name, safe='')}"
        return path + (f"/versions/{int(version)}" if version is not None else "")

    def _call(self, method, path, body=None):
        url = self.base_url + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
            try:
                message = json.loads(text)["error"]
            except (ValueError, KeyError, TypeError):
                message = text.strip() or e.reason
            raise RestError(e.code, message, url) from None
        except urllib.error.URLError as e:
            reason = getattr(e.reason, "strerror", None) or e.reason
            raise ConnectionError(f"cannot reach the REST API at {self.base_url} ({reason})") from None
        except (http.client.HTTPException, ConnectionError, socket.timeout) as e:
            raise ConnectionError(f"REST API at {self.base_url}: {type(e).__name__}: {e}") from None

    def status(self, model_name, version=None):
        """[(version, state name)] of the model's versions, e.g. [(2, "AVAILABLE")]."""
        answer = self._call("GET", self._path(model_name, version))
        return [(int(s["version"]), s["state"]) for s in answer.get("model_version_status", [])]

    def metadata(self, model_name, version=None):
        """The model's SignatureDefs: {signature name: `SignatureDef` proto}."""
        answer = self._call("GET", self._path(model_name, version) + "/metadata")
        signatures = answer["metadata"]["signature_def"].get("signature_def", {})
        out = {}
        for key, value in signatures.items():
            out[key] = json_format.ParseDict(value, meta_graph_pb2.SignatureDef(), ignore_unknown_fields=True)
        return out

    def _output_dtypes(self, model_name, signature_name, version):
        key = (model_name, signature_name, version)
        if key not in self._metadata:
            signature = self.metadata(model_name, version).get(signature_name or "serving_default")
            self._metadata[key] = {} if signature is None else {
                k: tf.dtypes.as_dtype(v.dtype) for k, v in signature.outputs.items()}
        return self._metadata[key]

    def predict(self, model_name, inputs, signature_name="serving_default", version=None, output_filter=None):
        """POSTs `:predict` in the columnar format; returns {output name: ndarray}.

        Output dtypes come from the signature (read once per model/signature/version);
        `output_filter` is applied here, as the REST API has no such field.
        """
        body = {"inputs": {k: _json_tensor(v) for k, v in inputs.items()}}
        if signature_name:
            body["signature_name"] = signature_name
        answer = self._call("POST", self._path(model_name, version) + ":predict", body)
        outputs = answer["outputs"]
        dtypes = self._output_dtypes(model_name, signature_name, version)
        if not isinstance(outputs, dict) or len(dtypes) == 1:
            outputs = {next(iter(dtypes)) if dtypes else "output": outputs}
        wanted = set(output_filter or outputs)
        return {k: _from_json_tensor(v, dtypes.get(k, tf.float32)) for k, v in outputs.items() if k in wanted}


# --- streams held by the server (tfvideo-serve with a streaming export) ------------------
@tf_export("tfvideo.serving.StreamSession")
class StreamSession:
    """One stream of a streaming export (`init_state` / `step`) whose state `tfvideo-serve` holds.

    Opened on the model's latest version (or `version`), to which it stays bound; `step`
    sends one frame or a few successive ones and returns their outputs; the state never
    crosses the wire. Works over gRPC (`Client`: Predict with signature `stream_open`,
    `step` + input `stream_id`, `stream_close`) and REST (`RestClient`: `:stream_open`,
    `:stream_step`, `:stream_close`). Server errors raise `grpc.RpcError` / `RestError`
    (NOT_FOUND / 404 for an expired or unknown stream).

    Example:
        with tfvideo.serving.StreamSession(client, "online") as stream:
            for frame in frames:  # float32 [H, W, 3], RGB 0..255, cropped as stream_config.json says.
                scores = stream.step(frame)["scores"][0]

    Attributes:
      stream_id, version, frame_shape (H, W, C), idle_timeout_s: as the server opened it.
    """

    def __init__(self, client, model_name, version=None):
        self.client = client
        self.model_name = model_name
        self._rest = isinstance(client, RestClient)
        if self._rest:
            answer = client._call("POST", client._path(model_name, version) + ":stream_open", {})
            self.stream_id = answer["stream_id"]
            self.version = int(answer["model_spec"]["version"])
            self.frame_shape = tuple(answer["frame_shape"])
            self.idle_timeout_s = float(answer["idle_timeout_s"])
        else:
            request = predict_pb2.PredictRequest(model_spec=_model_spec(model_name, version, "stream_open"))
            response = client._predictions.Predict(request, timeout=client.timeout)
            outputs = {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}
            self.stream_id = outputs["stream_id"].reshape(-1)[0].decode("utf-8")
            self.version = int(response.model_spec.version.value)
            self.frame_shape = tuple(int(d) for d in outputs["frame_shape"])
            self.idle_timeout_s = float(outputs["idle_timeout_s"])
        self.closed = False

    def step(self, frames):
        """frames float32 [H, W, C] or [N, H, W, C] (N successive frames) -> {"scores", "logits": [N, K],
        "frame_index": [N]} (each frame's position in the stream)."""
        frames = np.asarray(frames, np.float32)
        if frames.ndim == 3:
            frames = frames[None]
        if self._rest:
            path = self.client._path(self.model_name, self.version) + ":stream_step"
            answer = self.client._call("POST", path, {"stream_id": self.stream_id, "inputs": {"frame": frames.tolist()}})
            return {k: np.asarray(v, np.int64 if k == "frame_index" else np.float32)
                    for k, v in answer["outputs"].items()}
        return self.client.predict(self.model_name, {"stream_id": np.array(self.stream_id.encode(), dtype=object),
                                                     "frame": frames}, signature_name="step", version=self.version)

    def close(self):
        """Closes the stream on the server (once); returns how many frames it stepped."""
        if self.closed:
            return None
        self.closed = True
        if self._rest:
            path = self.client._path(self.model_name, self.version) + ":stream_close"
            return int(self.client._call("POST", path, {"stream_id": self.stream_id})["frames"])
        out = self.client.predict(self.model_name, {"stream_id": np.array(self.stream_id.encode(), dtype=object)},
                                  signature_name="stream_close", version=self.version)
        return int(out["frames"])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
