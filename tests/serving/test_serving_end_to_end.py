"""train tiny -> export -> tfvideo-serve (subprocess) -> Client / tfvideo-predict over gRPC."""

import os
import subprocess
import sys
import time

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

from tests.conftest import frame_code_frames
from tests.export.conftest import CLIP_LENGTH, LABELS, make_context_model
from tests.serving.conftest import ROOT, ServerProcess
from tfvideo import data as tfv_data
from tfvideo import export as tfv_export
from tfvideo import models as tfv_models
from tfvideo import serving

pytestmark = pytest.mark.slow
MAX_REQUEST_BYTES = 2_000_000


@pytest.fixture(scope="module")
def context_model():
    """(model, FeatureLayer, config) of a model taking a video and a side feature `gain`."""
    return make_context_model(seed=4)


@pytest.fixture(scope="module")
def served(tiny_model_dir, feature_spec_export, context_model, tmp_path_factory):
    """From models.config: "tiny" (version 1), "growing" (version 1, more added by a test; policy all),
    "featured" (the tfvideo-train --feature_spec run: features + frames signatures) and
    "context" (raw video + side feature through a FeatureLayer)."""
    root = str(tmp_path_factory.mktemp("serving_exports"))
    for name in ("tiny", "growing"):
        tfv_export.export_saved_model(root, model_dir=tiny_model_dir, model_name=name,
                                      input_types=["jpeg_frames", "frames", "sequence_example"])
    tfv_export.write_models_config(root, "featured", os.path.dirname(feature_spec_export.path))
    config = tfv_export.read_models_config(os.path.join(root, "models.config"))
    for entry in config.model_config_list.config:
        if entry.name == "growing":  # Keeps old versions reachable; the others serve the latest only.
            entry.model_version_policy.all.SetInParent()
    with open(os.path.join(root, "models.config"), "w") as f:
        f.write(text_format.MessageToString(config))
    model, layer, config = context_model
    tfv_export.export_saved_model(root, model=model, config=config, model_name="context", input_types="features",
                                  feature_layer=layer)
    server = ServerProcess(
        [f"--model_config_file={root}/models.config", f"--max_request_bytes={MAX_REQUEST_BYTES}",
         "--file_system_poll_wait_seconds=0.2", "--max_workers=4"],
        os.path.join(root, "server.log"),
    )
    client = serving.Client(server.target, timeout=60)
    yield root, server, client
    client.close()
    server.stop()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    paths = []
    for i, n in enumerate((20, 13)):
        frames = frame_code_frames(n, height=40, width=56)
        frames[..., 1] = np.uint8(60 * i)  # Different content per video.
        path = str(root / f"v{i}.mp4")
        tfv_data.write_video(path, frames, fps=10)
        paths.append(path)
    return paths


def _in_process(model, config, path, quality=95):
    """The evaluation path: test-time sampler, JPEG round trip, preprocess_eval, model."""
    sampler = config.build_sampler(training=False)
    frames = tfv_data.read_frames(path, sampler(tfv_data.probe_video(path).num_frames))  # [1, T, H, W, 3]
    decoded = np.stack([tf.io.decode_jpeg(tf.io.encode_jpeg(f, quality=quality)).numpy() for f in frames[0]])
    video = tfv_data.preprocess_eval(tf.constant(decoded[None]), config.build_preprocess())
    return tf.nn.softmax(model(video[None], training=False), -1).numpy()[0]


def test_ready_line_binds_localhost(served):
    _, server, _ = served
    assert server.ready_line == f"tfvideo-serve: serving context, featured, growing, tiny on 127.0.0.1:{server.port}"


def test_metadata_and_status(served):
    _, _, client = served
    signatures = client.metadata("tiny")
    assert set(signatures) == {"serving_default", "jpeg_frames", "frames", "sequence_example", "clip_spec"}
    assert set(signatures["jpeg_frames"].outputs) == {"logits", "probabilities", "top_k_indices", "top_k_labels"}
    assert client.clip_length("tiny") == CLIP_LENGTH
    assert client.status("tiny") == [(1, "AVAILABLE")]
    assert client.status("tiny", version=1) == [(1, "AVAILABLE")]


def test_served_probabilities_equal_in_process_model(served, loaded, videos):
    model, config = loaded
    _, _, client = served
    predictions = client.predict_videos(videos, "tiny", top_k=4)
    for path, prediction in zip(videos, predictions):
        expected = _in_process(model, config, path)
        order = np.argsort(-expected)
        assert prediction.path == path
        assert prediction.indices == tuple(order)
        assert prediction.labels == tuple(LABELS[k] for k in order)
        np.testing.assert_allclose(prediction.probabilities, expected[order], atol=1e-5)
    # The raw-frames signature over gRPC equals the model on the same uint8 clip.
    clip = frame_code_frames(CLIP_LENGTH, height=36, width=44)
    out = client.predict("tiny", {"frames": clip[None]}, signature_name="frames")
    video = tfv_data.preprocess_eval(tf.constant(clip[None]), config.build_preprocess())
    expected = tf.nn.softmax(model(video[None], training=False), -1).numpy()
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)


def test_predict_binary_prints_top_k_labels(served, loaded, videos):
    model, config = loaded
    _, server, _ = served
    out = subprocess.run(
        [sys.executable, "-m", "export.predict", f"--server={server.target}", "--model=tiny", "--top_k=2", *videos],
        check=False, capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(videos)
    for path, line in zip(videos, lines):
        expected = _in_process(model, config, path)
        got_path, pairs = line.split("\t")
        labels = [p.split(":")[0] for p in pairs.split()]
        probs = [float(p.split(":")[1]) for p in pairs.split()]
        assert got_path == path
        assert labels == [LABELS[k] for k in np.argsort(-expected)[:2]]
        np.testing.assert_allclose(probs, np.sort(expected)[::-1][:2], atol=1e-4)


def _expect_error(code, fragment, call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == code, info.value.details()
    assert fragment in info.value.details(), info.value.details()


def test_bad_requests_get_status_codes_and_server_keeps_serving(served):
    _, _, client = served
    good_clip = frame_code_frames(CLIP_LENGTH, height=32, width=32)
    jpegs = [tf.io.encode_jpeg(f).numpy() for f in good_clip]
    bad = [
        (grpc.StatusCode.NOT_FOUND, "model 'nope'", lambda: client.predict("nope", {"frames": good_clip[None]})),
        (grpc.StatusCode.NOT_FOUND, "no version 99",
         lambda: client.predict("tiny", {"frames": good_clip[None]}, signature_name="frames", version=99)),
        (grpc.StatusCode.FAILED_PRECONDITION, "no signature 'nope'",  # TF Serving's code for an unknown signature.
         lambda: client.predict("tiny", {"frames": good_clip[None]}, signature_name="nope")),
        (grpc.StatusCode.INVALID_ARGUMENT, "input 'frames' has dtype float32",
         lambda: client.predict("tiny", {"frames": good_clip[None].astype(np.float32)}, signature_name="frames")),
        (grpc.StatusCode.INVALID_ARGUMENT, "input 'frames' has shape [8, 32, 32, 3]",
         lambda: client.predict("tiny", {"frames": good_clip}, signature_name="frames")),
        (grpc.StatusCode.INVALID_ARGUMENT, "input 'jpeg_frames' has 20 frames per video",
         lambda: client.predict("tiny", {"jpeg_frames": np.array([jpegs * 2 + jpegs[:4]], object)})),
        (grpc.StatusCode.INVALID_ARGUMENT, "rejected input 'jpeg_frames': Unknown image file format",
         lambda: client.predict("tiny", {"jpeg_frames": np.array([[b"not a jpeg"] * CLIP_LENGTH], object)})),
        (grpc.StatusCode.INVALID_ARGUMENT, "rejected input 'sequence_example': Invalid protocol message",
         lambda: client.predict("tiny", {"sequence_example": np.array([b"\x01garbage"], object)},
                                signature_name="sequence_example")),
        (grpc.StatusCode.INVALID_ARGUMENT, "input 'video' is not an input of signature 'frames'",
         lambda: client.predict("tiny", {"video": good_clip[None]}, signature_name="frames")),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "largest input: 'frames'",
         lambda: client.predict("tiny", {"frames": np.zeros((1, CLIP_LENGTH, 300, 300, 3), np.uint8)},
                                signature_name="frames")),
    ]
    expected = client.predict("tiny", {"frames": good_clip[None]}, signature_name="frames")["probabilities"]
    for code, fragment, call in bad:
        _expect_error(code, fragment, call)
        out = client.predict("tiny", {"frames": good_clip[None]}, signature_name="frames")
        np.testing.assert_allclose(out["probabilities"], expected, atol=1e-6)
    _expect_error(grpc.StatusCode.NOT_FOUND, "model 'nope'", lambda: client.status("nope"))
    _expect_error(grpc.StatusCode.NOT_FOUND, "no version 7", lambda: client.metadata("tiny", version=7))


def test_new_version_is_picked_up_and_old_one_stays_reachable(served, loaded):
    model, config = loaded
    root, _, client = served
    keras.utils.set_random_seed(1)
    other = tfv_models.get("tsm_tiny", num_classes=len(LABELS))
    clip = frame_code_frames(CLIP_LENGTH, height=36, width=36)
    video = tfv_data.preprocess_eval(tf.constant(clip[None]), config.build_preprocess())[None]
    expected_v1 = tf.nn.softmax(model(video, training=False), -1).numpy()
    expected_v2 = tf.nn.softmax(other(video, training=False), -1).numpy()
    assert not np.allclose(expected_v1, expected_v2, atol=1e-3)
    result = tfv_export.export_saved_model(root, model=other, config=config, model_name="growing", input_types="frames")
    assert result.version == 2
    deadline = time.monotonic() + 120
    while (2, "AVAILABLE") not in client.status("growing"):
        assert time.monotonic() < deadline, "version 2 was not picked up"
        time.sleep(0.2)
    latest = client.predict("growing", {"frames": clip[None]}, signature_name="frames")
    pinned = client.predict("growing", {"frames": clip[None]}, signature_name="frames", version=1)
    np.testing.assert_allclose(latest["probabilities"], expected_v2, atol=1e-5)
    np.testing.assert_allclose(pinned["probabilities"], expected_v1, atol=1e-5)
    # Version 2 only has the frames signature: the default signature now takes frames.
    assert set(client.metadata("growing")) == {"serving_default", "frames", "clip_spec"}


# --- The `features` signature: raw feature dicts through the FeatureLayer over gRPC. ---
def _jpeg_videos(lengths, height=40, width=48):
    """Encoded frames of different videos, string [B, max N] padded with "" (the features layout)."""
    videos = []
    for i, n in enumerate(lengths):
        frames = frame_code_frames(n, height=height, width=width)
        frames[..., 2] = np.uint8(90 * i)
        videos.append([tf.io.encode_jpeg(f, quality=90).numpy() for f in frames])
    longest = max(lengths)
    return np.array([v + [b""] * (longest - len(v)) for v in videos], dtype=object)


def test_features_signature_over_grpc_equals_in_process(served, feature_spec_loaded, context_model):
    from tfvideo import feature_columns as fc

    _, _, client = served
    model, config = feature_spec_loaded
    signatures = client.metadata("featured")
    assert set(signatures) == {"serving_default", "features", "frames", "clip_spec"}
    (name, info), = signatures["features"].inputs.items()
    assert (name, info.dtype, [d.size for d in info.tensor_shape.dim]) == ("video", tf.string.as_datatype_enum, [-1, -1])
    videos = _jpeg_videos((12, 7))
    out = client.predict("featured", {"video": videos}, signature_name="features")
    layer = fc.FeatureLayer.from_spec(config.feature_spec)  # The spec train recorded in config.json.
    expected = tf.nn.softmax(model(layer({"video": tf.constant(videos)})["video"], training=False), -1).numpy()
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    assert not np.allclose(expected[0], expected[1], atol=1e-4)
    assert [[s.decode() for s in row] for row in out["top_k_labels"]] == [
        [config.labels[k] for k in np.argsort(-row)] for row in expected]  # top_k=5 > 4 classes: all, sorted.
    default = client.predict("featured", {"video": videos})  # serving_default is the first input type: features.
    np.testing.assert_allclose(default["probabilities"], expected, atol=1e-5)

    model, layer, _ = context_model
    gain = np.array([[1.5, -0.5], [0.0, 2.0]], np.float32)
    out = client.predict("context", {"video": videos, "gain": gain}, signature_name="features")
    raw = {"video": tf.constant(videos), "gain": tf.constant(gain)}
    np.testing.assert_allclose(out["probabilities"], tf.nn.softmax(model(layer(raw)), -1).numpy(), atol=1e-5)


def test_bad_feature_requests_name_the_input_and_server_keeps_serving(served):
    _, _, client = served
    videos = _jpeg_videos((9,))
    gain = np.array([[1.0, 1.0]], np.float32)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    bad = [
        (invalid, "input 'gain' of signature 'features' is missing",
         lambda: client.predict("context", {"video": videos}, signature_name="features")),
        (invalid, "input 'gain' has dtype int64; signature 'features' expects float32",
         lambda: client.predict("context", {"video": videos, "gain": gain.astype(np.int64)}, signature_name="features")),
        (invalid, "input 'gain' has 3 axis 1 (shape [1, 3]); signature 'features' expects 2",
         lambda: client.predict("context", {"video": videos, "gain": np.ones((1, 3), np.float32)},
                                signature_name="features")),
        (invalid, "input 'video' of signature 'features' is missing",
         lambda: client.predict("featured", {}, signature_name="features")),
        (invalid, "input 'video' has dtype uint8; signature 'features' expects string",
         lambda: client.predict("featured", {"video": frame_code_frames(4, 32, 32)[None]}, signature_name="features")),
        (invalid, "input 'video' has shape [9]; signature 'features' expects [-1, -1]",
         lambda: client.predict("featured", {"video": videos[0]}, signature_name="features")),
        (invalid, "signature 'features' rejected input 'video': assertion failed: [SegmentSampler: video has no frames",
         lambda: client.predict("featured", {"video": np.array([[b"", b""]], object)}, signature_name="features")),
        (invalid, "signature 'features' rejected input 'video': Unknown image file format",
         lambda: client.predict("featured", {"video": np.array([[b"not a jpeg"]], object)}, signature_name="features")),
    ]
    expected = {m: client.predict(m, inputs, signature_name="features")["probabilities"]
                for m, inputs in (("featured", {"video": videos}), ("context", {"video": videos, "gain": gain}))}
    for code, fragment, call in bad:
        _expect_error(code, fragment, call)
        for m, inputs in (("featured", {"video": videos}), ("context", {"video": videos, "gain": gain})):
            out = client.predict(m, inputs, signature_name="features")
            np.testing.assert_allclose(out["probabilities"], expected[m], atol=1e-6)
