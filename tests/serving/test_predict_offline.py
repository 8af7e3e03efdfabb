"""tfvideo-predict without a server (--saved_model / --model_dir), bad inputs among good ones,
an unreachable server, and `tfvideo.serving.LocalPredictor`."""

import csv
import dataclasses
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import frame_code_frames
from tests.export.conftest import LABELS
from tests.serving.conftest import ROOT
from tfvideo import data as tfv_data
from tfvideo import export as tfv_export
from tfvideo import serving

pytestmark = pytest.mark.slow
DENSE = {"type": "dense", "clip_len": 8, "frame_interval": 2}


@pytest.fixture(scope="module")
def exports(tiny_model_dir, loaded, tmp_path_factory):
    """Base path "tiny": version 1 exported from the model_dir (segment sampler), version 2 the
    same weights exported with a dense sampler, so only the recorded sampler tells them apart."""
    root = str(tmp_path_factory.mktemp("offline_exports"))
    tfv_export.export_saved_model(root, model_dir=tiny_model_dir, model_name="tiny", input_types="jpeg_frames,frames",
                                  warmup=False)
    model, config = loaded
    dense = dataclasses.replace(config, clip=config.clip_spec.replace(sampler=DENSE))
    tfv_export.export_saved_model(root, model=model, config=dense, model_name="tiny",
                                  input_types="jpeg_frames,frames", warmup=False)
    return os.path.join(root, "tiny")


@pytest.fixture(scope="module")
def video_tree(tmp_path_factory):
    """videos/a/v0.mp4 (41 frames), videos/b/c/v1.mp4 (26), videos/b/broken.mp4 (not a video),
    videos/notes.txt (ignored)."""
    root = tmp_path_factory.mktemp("offline_videos") / "videos"
    (root / "a").mkdir(parents=True)
    (root / "b" / "c").mkdir(parents=True)
    good = []
    for i, (n, sub) in enumerate(((41, "a"), (26, "b/c"))):
        frames = frame_code_frames(n, height=40, width=52)
        frames[..., 1] = np.uint8(50 + 80 * i)
        path = str(root / sub / f"v{i}.mp4")
        tfv_data.write_video(path, frames, fps=10)
        good.append(path)
    (root / "b" / "broken.mp4").write_bytes(b"\x00\x01 this is not a video" * 10)
    (root / "notes.txt").write_text("not a video\n")
    return {"root": str(root), "good": good, "broken": str(root / "b" / "broken.mp4")}


def strip_clip_spec(version_dir):
    """Makes `version_dir` look like an export of the previous version: no `clip_spec`
    signature in saved_model.pb and no export records in assets.extra/."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(version_dir, "saved_model.pb")
    saved = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        saved.ParseFromString(f.read())
    graph = saved.meta_graphs[0]
    del graph.signature_def["clip_spec"]
    # TF2 loading takes `.signatures` from the object graph: drop the edge to the function too.
    nodes = graph.object_graph_def.nodes
    (holder,) = [c.node_id for c in nodes[0].children if c.local_name == "signatures"]
    children = nodes[holder].children
    (index,) = [i for i, c in enumerate(children) if c.local_name == "clip_spec"]
    del children[index]
    with open(path, "wb") as f:
        f.write(saved.SerializeToString())
    for name in ("clip_spec.json", "tfvideo_export.json"):
        os.remove(os.path.join(version_dir, "assets.extra", name))


def reference(model, config, path, sampler, jpeg_quality=95):
    """Probabilities [K] by the evaluation path: sampler, optional JPEG round trip, preprocess_eval, model."""
    frames = tfv_data.read_frames(path, sampler(tfv_data.probe_video(path).num_frames))  # [V, T, H, W, 3]
    if jpeg_quality:
        frames = np.stack([[tf.io.decode_jpeg(tf.io.encode_jpeg(f, quality=jpeg_quality)).numpy() for f in clip]
                           for clip in frames])
    video = tfv_data.preprocess_eval(tf.constant(frames), config.build_preprocess())
    return tf.nn.softmax(model(video[None], training=False), -1).numpy()[0]


def run_predict(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "export.predict", *args], check=False, capture_output=True, text=True, cwd=ROOT,
        timeout=timeout, env={**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def ours(stderr):
    """The binary's own stderr lines (TensorFlow's start-up logging left out)."""
    return [line for line in stderr.splitlines() if line.startswith("tfvideo-predict")]


def parse_lines(stdout):
    """{path: ([labels], [probabilities])} from `path<TAB>label:prob ...` lines."""
    out = {}
    for line in stdout.splitlines():
        path, pairs = line.split("\t")
        out[path] = ([p.rsplit(":", 1)[0] for p in pairs.split()], [float(p.rsplit(":", 1)[1]) for p in pairs.split()])
    return out


def test_saved_model_base_path_folder_csv_and_bad_files(exports, video_tree, loaded, tmp_path):
    model, config = loaded
    csv_path = str(tmp_path / "top.csv")
    missing = str(tmp_path / "missing.mp4")
    out = run_predict(f"--saved_model={exports}", video_tree["root"], missing, "--top_k=2",
                      f"--output_csv={csv_path}", "--progress=always")
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    errors = [line for line in ours(out.stderr) if line.startswith("tfvideo-predict: error:")]
    assert errors == [
        f"tfvideo-predict: error: {missing}: no such file or folder",
        errors[1],
    ] and errors[1].startswith(f"tfvideo-predict: error: {video_tree['broken']}: "), out.stderr
    assert "tfvideo-predict: 2 of 4 inputs failed" in out.stderr
    assert "3/3" in out.stderr  # The progress bar went over the three video files found.

    # The base path's highest version (2) samples densely, as its export record says.
    dense = tfv_data.sampler_from_config({**DENSE, "training": False})
    segment = config.build_sampler(training=False)
    printed = parse_lines(out.stdout)
    assert list(printed) == video_tree["good"]  # Sorted walk: a/v0.mp4, b/c/v1.mp4; broken skipped.
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "label_1", "probability_1", "label_2", "probability_2"]
    assert [r[0] for r in rows[1:]] == video_tree["good"]
    for path, row in zip(video_tree["good"], rows[1:]):
        expected = reference(model, config, path, dense)
        order = np.argsort(-expected)[:2]
        assert printed[path][0] == [LABELS[k] for k in order] == [row[1], row[3]]
        np.testing.assert_allclose(printed[path][1], expected[order], atol=1e-4)
        np.testing.assert_allclose([float(row[2]), float(row[4])], expected[order], atol=1e-5)
        assert not np.allclose(reference(model, config, path, segment)[order], expected[order], atol=1e-4)


def test_model_dir_prints_the_evaluation_path_numbers(tiny_model_dir, video_tree, loaded):
    model, config = loaded
    out = run_predict(f"--model_dir={tiny_model_dir}", *video_tree["good"])  # Default --top_k=5 > 4 classes: all 4.
    assert out.returncode == 0, out.stderr[-3000:]
    printed = parse_lines(out.stdout)
    for path in video_tree["good"]:
        expected = reference(model, config, path, config.build_sampler(training=False), jpeg_quality=None)
        order = np.argsort(-expected)
        assert printed[path][0] == [LABELS[k] for k in order]
        np.testing.assert_allclose(printed[path][1], expected[order], atol=1e-4)


def test_local_predictor_reads_the_export_record_and_falls_back_without_it(exports, video_tree, loaded, tmp_path):
    model, config = loaded
    path = video_tree["good"][1]
    dense = serving.LocalPredictor.from_saved_model(exports)  # The base path: version 2.
    assert dense.source == os.path.join(exports, "2") and dense.fallback_reason is None
    assert isinstance(dense.sampler, tfv_data.DenseSampler) and dense.labels == LABELS
    expected = reference(model, config, path, dense.sampler)
    got = dense.predict_video(path, top_k=4)
    np.testing.assert_allclose(got.probabilities, np.sort(expected)[::-1], atol=1e-6)
    assert got.indices == tuple(np.argsort(-expected))

    # Version 1 (segment sampler), the frames signature: no JPEG round trip.
    segment = serving.LocalPredictor.from_saved_model(os.path.join(exports, "1"), signature_name="frames")
    assert isinstance(segment.sampler, tfv_data.SegmentSampler) and segment.sampler.clip_length == 8
    expected = reference(model, config, path, config.build_sampler(training=False), jpeg_quality=None)
    np.testing.assert_allclose(segment.predict_video(path, top_k=1).probabilities, [expected.max()], atol=1e-6)

    # The clip_spec signature alone tells the sampler (an export record lost on the way).
    copy = str(tmp_path / "copy")
    shutil.copytree(os.path.join(exports, "2"), copy)
    os.remove(os.path.join(copy, "assets.extra", "tfvideo_export.json"))
    from_signature = serving.LocalPredictor.from_saved_model(copy)
    assert from_signature.sampler.get_config() == dense.sampler.get_config() and not from_signature.fallback_reason

    # An export made before the spec existed: the signature's frame count, said aloud.
    old = str(tmp_path / "old")
    shutil.copytree(os.path.join(exports, "2"), old)
    strip_clip_spec(old)
    fallback = serving.LocalPredictor.from_saved_model(old)
    assert isinstance(fallback.sampler, tfv_data.SegmentSampler)
    assert "records no clip spec" in fallback.fallback_reason and "signature's 8 frames" in fallback.fallback_reason

    with pytest.raises(ValueError, match=r"num_clips=2, but the export was made with 1 clip"):
        serving.LocalPredictor.from_saved_model(exports, num_clips=2)
    with pytest.raises(ValueError, match=r"has no signature 'sequence_example'|offline prediction uses"):
        serving.LocalPredictor.from_saved_model(exports, signature_name="sequence_example")
    with pytest.raises(FileNotFoundError, match=r"--saved_model=.*neither a SavedModel"):
        serving.LocalPredictor.from_saved_model(str(tmp_path))
    with pytest.raises(tfv_data.VideoDecodeError, match="broken.mp4"):
        dense.predict_video(video_tree["broken"])


def test_flag_errors_are_one_line_with_exit_2(exports, video_tree):
    out = run_predict(f"--saved_model={exports}", "--top_k=0", *video_tree["good"], timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert ours(out.stderr) == ["tfvideo-predict: error: --top_k=0 must be >= 1."]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_unreachable_server_is_one_line(video_tree, protocol):
    target = f"127.0.0.1:{_free_port()}"
    extra = ["--rest"] if protocol == "rest" else []
    out = run_predict(f"--server={target}", "--model=tiny", *extra, *video_tree["good"], timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    lines = ours(out.stderr)
    assert len(lines) == 1 and lines[0].startswith("tfvideo-predict: error: cannot reach the ") and target in lines[0], \
        out.stderr
    assert out.stdout == ""
