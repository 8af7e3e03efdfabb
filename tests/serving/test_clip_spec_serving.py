"""The clip spec travels inside the export: tfvideo-predict (gRPC, REST, offline) reads how to
sample from the `clip_spec` signature instead of guessing from the signature's frame count; an
export made before the signature existed falls back to the guess with one warning."""

import dataclasses
import json
import os
import shutil
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import frame_code_frames
from tests.export.conftest import LABELS
from tests.serving.conftest import ServerProcess
from tests.serving.test_predict_offline import ours, parse_lines, reference, run_predict, strip_clip_spec
from tests.serving.test_rest_api import free_port
from tfvideo import data as tfv_data
from tfvideo import export as tfv_export
from tfvideo import serving

pytestmark = pytest.mark.slow
# Two dense clips of 8 frames every 2nd frame: the signature takes 16 frames, which the old
# shape guess reads as one SegmentSampler(16) clip.
DENSE = {"type": "dense", "clip_len": 8, "frame_interval": 2, "num_clips": 2}
GUESS = tfv_data.SegmentSampler(num_segments=16)


def _as_sent(n):
    """The guess's 16 frames as the graph reads them: reshaped into the export's 2 clips of 8."""
    return GUESS(n).reshape(2, 8)


@pytest.fixture(scope="module")
def spec_served(loaded, tmp_path_factory):
    """tfvideo-serve (gRPC + REST) with model "dense" (2 dense clips) and "old" (the same export
    without its clip spec), and a 40-frame frame-coded video."""
    model, config = loaded
    root = str(tmp_path_factory.mktemp("spec_exports"))
    dense = dataclasses.replace(config, clip=config.clip_spec.replace(sampler=DENSE))
    result = tfv_export.export_saved_model(root, model=model, config=dense, model_name="dense",
                                           input_types="jpeg_frames", warmup=False)
    old = os.path.join(root, "old", "1")
    shutil.copytree(result.path, old)
    strip_clip_spec(old)
    video = str(tmp_path_factory.mktemp("spec_videos") / "v.mp4")
    frames = frame_code_frames(40, height=40, width=52)
    frames[..., 1] = np.uint8(90)
    tfv_data.write_video(video, frames, fps=10)
    port = free_port()
    server = ServerProcess([f"--model_config_file={_models_config(root)}", f"--rest_api_port={port}",
                            "--max_workers=2"], os.path.join(root, "server.log"))
    server.lines.get(timeout=60)  # The REST API's ready line.
    yield {"root": root, "server": server, "rest": f"127.0.0.1:{port}", "video": video, "spec": dense.clip_spec,
           "model": model, "config": config, "path": result.path}
    server.stop()


def _models_config(root):
    """A models.config serving "dense" and "old" (written here: the export wrote only "dense")."""
    path = os.path.join(root, "both.config")
    entries = "".join(f'  config {{ name: "{name}" base_path: "{os.path.join(root, name)}" '
                      'model_platform: "tensorflow" }\n' for name in ("dense", "old"))
    with open(path, "w") as f:
        f.write("model_config_list {\n" + entries + "}\n")
    return path


def test_export_records_the_spec_as_signature_and_asset(spec_served):
    spec = spec_served["spec"].replace(num_clips=2)
    assert spec.num_clips == 2 and spec.clip_length == 8
    loaded = tf.saved_model.load(spec_served["path"])
    text = loaded.signatures["clip_spec"]()["clip_spec"].numpy().decode()
    assert tfv_data.ClipSpec.from_json(text) == spec
    with open(os.path.join(spec_served["path"], "assets.extra", "clip_spec.json")) as f:
        assert tfv_data.ClipSpec.from_json(f.read()) == spec
    assert loaded.signatures["jpeg_frames"].structured_input_signature[1]["jpeg_frames"].shape[1] == 16


def test_clients_read_the_spec_over_grpc_and_rest(spec_served):
    spec = spec_served["spec"]
    with serving.Client(spec_served["server"].target, timeout=60) as grpc_client:
        assert grpc_client.clip_spec("dense") == spec
        assert grpc_client.clip_spec("old") is None
        sampler, fallback = grpc_client.sampler_and_fallback("dense")
        assert sampler.get_config() == spec.sampler(training=False).get_config() and fallback is None
        with pytest.raises(ValueError, match=r"num_clips=1, but model 'dense' was exported with 2 clip\(s\)"):
            grpc_client.sampler_and_fallback("dense", num_clips=1)
        raw = grpc_client.predict("dense", {}, signature_name="clip_spec")  # Predict with an empty inputs map.
        assert raw["clip_spec"].shape == () and tfv_data.ClipSpec.from_json(raw["clip_spec"].item().decode()) == spec
    with serving.RestClient(spec_served["rest"], timeout=60) as rest_client:
        assert rest_client.clip_spec("dense") == spec and rest_client.clip_spec("old") is None
    body = json.dumps({"signature_name": "clip_spec", "inputs": {}}).encode()
    request = urllib.request.Request(f"http://{spec_served['rest']}/v1/models/dense:predict", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert tfv_data.ClipSpec.from_json(json.loads(answer.read())["outputs"]) == spec


def _check_printed(out, expected, guessed):
    assert out.returncode == 0, out.stderr[-3000:]
    (labels, probabilities), = parse_lines(out.stdout).values()
    order = np.argsort(-expected)
    assert labels == [LABELS[k] for k in order]
    np.testing.assert_allclose(probabilities, expected[order], atol=1e-4)
    assert not np.allclose(guessed[order], expected[order], atol=1e-3)  # The spec, not the guess, chose the frames.


def test_predict_samples_as_the_export_says_over_grpc_rest_and_offline(spec_served):
    model, config, video = spec_served["model"], spec_served["config"], spec_served["video"]
    expected = reference(model, config, video, spec_served["spec"].sampler(training=False))
    guessed = reference(model, config, video, _as_sent)
    for args in ([f"--server={spec_served['server'].target}", "--model=dense"],
                 ["--rest", f"--server={spec_served['rest']}", "--model=dense"],
                 [f"--saved_model={os.path.join(spec_served['root'], 'dense')}"]):
        out = run_predict(*args, "--top_k=4", video)
        _check_printed(out, expected, guessed)
        assert not [line for line in ours(out.stderr) if "warning" in line], out.stderr


def test_export_without_a_spec_falls_back_to_the_guess_with_one_warning(spec_served):
    model, config, video = spec_served["model"], spec_served["config"], spec_served["video"]
    guessed = reference(model, config, video, _as_sent)
    dense = reference(model, config, video, spec_served["spec"].sampler(training=False))
    out = run_predict(f"--server={spec_served['server'].target}", "--model=old", "--top_k=4", video, video)
    assert out.returncode == 0, out.stderr[-3000:]
    warnings = [line for line in ours(out.stderr) if "warning" in line]
    assert warnings == [f"tfvideo-predict: warning: model 'old' at {spec_served['server'].target} has no 'clip_spec' "
                        f"signature (exported before it was recorded); using {GUESS!r} from the signature's 16 frames"]
    _check_printed(out, guessed, dense)
    offline = serving.LocalPredictor.from_saved_model(os.path.join(spec_served["root"], "old"))
    assert "records no clip spec" in offline.fallback_reason and offline.sampler.get_config() == GUESS.get_config()
