"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests`.

A TFRecord file of `PredictionLog` protos; TF Serving (and tfvideo-serve) replays them when
a version loads so the first real request does not pay for graph tracing and allocation.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from tfvideo.data import _tfrecord

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


def _gray_frames(num_frames, height, width):
    """A deterministic uint8 [N, H, W, 3] ramp: not constant, so every op does real work."""
    ramp = np.linspace(0, 255, height * width * 3, dtype=np.float64).reshape(height, width, 3)
    return np.stack([np.roll(ramp, i, axis=1) for i in range(num_frames)]).astype(np.uint8)


def _jpegs(frames):
    return [tf.io.encode_jpeg(f, quality=90).numpy() for f in frames]


def warmup_inputs(input_type, num_frames, size, flow=False):
    """One example request's inputs for a signature (dict name -> numpy array), or None.

    flow: the model reads flow; a SequenceExample request then also holds flow frames.
    """
    frames = _gray_frames(num_frames, size, size)
    if input_type == "frames":
        return {"frames": frames[None]}
    if input_type == "jpeg_frames":
        return {"jpeg_frames": np.array([_jpegs(frames)], dtype=object)}
    if input_type == "sequence_example":
        ex = _tfrecord.make_sequence_example(_jpegs(frames), media_id="warmup",
                                             flow_frames=_jpegs(frames) if flow else None)
        return {"sequence_example": np.array([ex.SerializeToString()], dtype=object)}
    return None  # Feature dicts have no generic example.


def feature_warmup_inputs(feature_layer):
    """An example raw feature dict for a `FeatureLayer`'s signature, or None.

    Only for layers whose raw inputs all come from video columns (JPEG frames, one clip's
    worth at the column's resize size), numeric columns (zeros) or frame-feature columns
    (zeros): a made-up categorical value could fail a graph check (e.g. an identity id
    out of range), and TF Serving refuses to load a version whose warm-up request fails.
    """
    from feature_columns import _numeric
    from tfvideo.feature_columns import _video

    columns = getattr(feature_layer, "columns", None)
    if not columns:
        return None
    inputs = {}
    for column in columns:
        if isinstance(column, _video.VideoColumn):
            size = column.preprocess.resize_short or column.size
            frames = _gray_frames(column.sampler.num_views * column.sampler.clip_length, size, size)
            inputs[column.key] = np.array([_jpegs(frames)], dtype=object)
        elif isinstance(column, _numeric.NumericColumn):
            inputs[column.key] = np.zeros((1, *column.shape), tf.as_dtype(column.dtype).as_numpy_dtype)
        elif isinstance(column, _video.FrameFeatureColumn):
            inputs[column.key] = np.zeros((1, 1, column.dim), tf.as_dtype(column.dtype).as_numpy_dtype)
        else:
            return None
    if set(inputs) != set(feature_layer.serving_input_signature()):
        return None
    return inputs


def write_warmup_requests(saved_model_dir, model_name, requests):
    """Writes `requests` [(signature_name, inputs dict)] as PredictionLogs; returns the path."""
    directory = os.path.join(saved_model_dir, WARMUP_DIR)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(saved_model_dir):
    """The `PredictRequest`s of a version's warm-up file (empty list if it has none)."""
    path = os.path.join(saved_model_dir, WARMUP_DIR, WARMUP_FILE)
    if not os.path.exists(path):
        return []
    requests = []
    for record in _tfrecord.shard_records([path]).as_numpy_iterator():  # A damaged file: VideoDecodeError naming it.
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") == "predict_log":
            requests.append(log.predict_log.request)
    return requests
