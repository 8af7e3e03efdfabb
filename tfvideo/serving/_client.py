"""`tfvideo.serving.Client`: TF Serving's Predict / GetModelMetadata / GetModelStatus over gRPC.

Works unchanged against `tensorflow_model_server` and `tfvideo-serve`.
"""

import dataclasses

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import wrappers_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfvideo.api._export import tf_export
from tfvideo.data import _samplers, _video_io

_CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


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


@tf_export("tfvideo.serving.Client")
class Client:
    """A gRPC client of a TF Serving model server at `target` ("host:port").

    Example:
        client = tfvideo.serving.Client("localhost:8500")
        print(client.predict_video("clip.mp4", "tsm").labels)
    """

    def __init__(self, target, timeout=30.0):
        self.target = target
        self.timeout = timeout
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

    def predict_videos(self, paths, model_name, top_k=5, signature_name="jpeg_frames", version=None, num_clips=1,
                       sampler=None, jpeg_quality=95):
        """Decodes, samples and JPEG-encodes video files locally, sends one Predict request.

        The frames are chosen by the test-time sampler used in training: `sampler`, or a
        `SegmentSampler` whose clip length comes from the signature's input shape
        (`num_clips` clips, matching the export's `--num_clips`). Returns one
        `VideoPrediction` per path.
        """
        paths = [str(p) for p in paths]
        if sampler is None:
            total = self.clip_length(model_name, signature_name, version)
            if total % num_clips:
                raise ValueError(f"num_clips={num_clips} does not divide the signature's {total} frames")
            sampler = _samplers.SegmentSampler(num_segments=total // num_clips, num_clips=num_clips)
        batch = []
        for path in paths:
            info = _video_io.probe_video(path)
            frames = _video_io.read_frames(path, sampler(info.num_frames).reshape(-1))
            batch.append(encode_jpeg_frames(frames, jpeg_quality))
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

    def predict_video(self, path, model_name, **kwargs):
        """`predict_videos` for one file; returns its `VideoPrediction`."""
        return self.predict_videos([path], model_name, **kwargs)[0]
