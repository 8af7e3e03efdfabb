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

from tests.conftest import frame_code_frames
from tests.export.conftest import CLIP_LENGTH, LABELS
from tests.serving.conftest import ROOT, ServerProcess
from tfvideo import data as tfv_data
from tfvideo import export as tfv_export
from tfvideo import models as tfv_models
from tfvideo import serving

pytestmark = pytest.mark.slow
MAX_REQUEST_BYTES = 2_000_000


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    """Models "tiny" (version 1) and "growing" (version 1, more added by a test) from models.config."""
    root = str(tmp_path_factory.mktemp("serving_exports"))
    for name in ("tiny", "growing"):
        tfv_export.export_saved_model(root, model_dir=tiny_model_dir, model_name=name,
                                      input_types=["jpeg_frames", "frames", "sequence_example"])
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
    assert server.ready_line == f"tfvideo-serve: serving growing, tiny on 127.0.0.1:{server.port}"


def test_metadata_and_status(served):
    _, _, client = served
    signatures = client.metadata("tiny")
    assert set(signatures) == {"serving_default", "jpeg_frames", "frames", "sequence_example"}
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
        (grpc.StatusCode.NOT_FOUND, "no signature 'nope'",
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
    assert set(client.metadata("growing")) == {"serving_default", "frames"}
