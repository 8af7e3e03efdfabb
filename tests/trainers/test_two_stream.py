"""Two-stream TSN through the binaries: prepare --flow -> train RGB and flow -> fused evaluate -> fused export."""

import glob
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tests.trainers import trainers_testlib as tl
from tfvideo import _experiment, models, serving
from tfvideo import data as tfv_data
from tfvideo import export as tfv_export
from tfvideo.export import _two_stream, _warmup
from tfvideo.serving import _fused
from trainers import _cli, _evaluation

SMALL = ["--num_segments=2", "--batch_size=4", "--epochs=1", "--verbose=0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_stream")
    lists = tfv_data.make_moving_shapes_dataset(str(root), videos_per_class=(2, 0), num_frames=12, size=48, seed=3)
    out = {"root": root, "lists": lists}
    # --resize_short=64 > the 48 px videos: kept at their size, said in the summary.
    proc = tl.run("prepare_data", [f"--annotations={lists['train']}", f"--label_map={lists['label_map']}",
                                   f"--output_dir={root}/tfr", "--name=train", "--flow", "--resize_short=64",
                                   "--noprogress"])
    assert proc.returncode == 0, proc.stderr
    out["prepare_train"] = proc.stdout
    tfr = f"{root}/tfr"
    for stream, model in (("rgb", "tsn_tiny"), ("flow", "tsn_flow_tiny")):
        proc = tl.run("train", [f"--model={model}", f"--train_data={tfr}/train-*", f"--label_map={lists['label_map']}",
                                f"--model_dir={root}/{stream}", *SMALL])
        assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_prepare_keeps_small_videos_and_says_so(runs):
    assert "8 videos kept at their size (shorter side already below --resize_short=64" in runs["prepare_train"]
    record = next(iter(tf.data.TFRecordDataset(sorted(glob.glob(f"{runs['root']}/tfr/train-*.tfrecord")))))
    parsed = tfv_data.parse_sequence_example(record, with_flow=True)
    assert tf.io.decode_jpeg(parsed["frames"][0]).shape == (48, 48, 3)  # Not upscaled to 64.
    assert tf.io.decode_jpeg(parsed["flow"][0]).shape == (48, 48, 3)
    with open(f"{runs['root']}/tfr/train-manifest.json") as f:
        assert json.load(f)["config"]["flow_method"] == "dis"


def test_flow_run_records_its_modality(runs):
    with open(f"{runs['root']}/flow/config.json") as f:
        clip = json.load(f)["clip"]
    assert clip["modality"] == "flow" and clip["sampler"]["new_length"] == 5
    assert clip["preprocess"]["mean"] == pytest.approx([128 / 255] * 2)
    with open(f"{runs['root']}/rgb/config.json") as f:
        assert json.load(f)["clip"]["modality"] == "rgb"


def test_modality_flag_is_checked_against_the_preset(runs, tmp_path):
    lists = runs["lists"]
    args = [f"--train_data={runs['root']}/tfr/train-*", f"--label_map={lists['label_map']}",
            f"--model_dir={tmp_path}/m", *SMALL]
    proc = tl.run("train", ["--model=tsn_tiny", "--modality=flow", *args])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "tfvideo-train: error: --modality=flow does not fit --model=tsn_tiny: 'flow' gives 2-channel frames but "
        "preset 'tsn_tiny' reads 3-channel frames (RGB); use a flow preset (tsn_flow_tiny, tsn_r50_flow).")
    assert not os.path.exists(f"{tmp_path}/m/config.json")


def test_fused_evaluate_reports_streams_and_fusion(runs):
    root = runs["root"]
    proc = tl.run("evaluate", [f"--model_dir={root}/rgb,{root}/flow", "--fusion_weights=1,1.5",
                               f"--eval_data={root}/tfr/train-*", f"--output_dir={root}/fused"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"stream {root}/rgb (rgb, weight 1): top-1" in proc.stdout
    assert f"stream {root}/flow (flow, weight 1.5): top-1" in proc.stdout
    assert "fused (2 streams, 8 videos):" in proc.stdout and "per-class accuracy" in proc.stdout
    with open(f"{root}/fused/metrics.json") as f:
        metrics = json.load(f)
    assert metrics["fusion_weights"] == [1.0, 1.5] and [s["modality"] for s in metrics["streams"]] == ["rgb", "flow"]
    assert metrics["average_clips"] == "prob"  # The streams' probabilities fused (the default).
    assert np.asarray(metrics["confusion_matrix"]).sum() == 8
    assert os.path.exists(f"{root}/fused/confusion_matrix.png")
    proc = tl.run("evaluate", [f"--model_dir={root}/rgb,{root}/flow", "--fusion_weights=1"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "tfvideo-evaluate: error: --fusion_weights=1: 1 weights for 2 --model_dir entries.")


def test_fuse_predictions_weights_and_matches_videos_by_media_id():
    p_rgb = np.array([[0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    p_flow = np.array([[0.1, 0.9], [0.7, 0.3]])  # Videos b, a (another order); c not scored.
    labels, fused, ids, per_stream = _evaluation.fuse_predictions(
        [("rgb", np.array([1, 0, 1]), p_rgb, ["a", "b", "c"]), ("flow", np.array([0, 1]), p_flow, ["b", "a"])],
        [1.0, 1.5])
    assert ids == ["a", "b"] and labels.tolist() == [1, 0]
    np.testing.assert_allclose(fused, (p_rgb[:2] + 1.5 * p_flow[::-1]) / 2.5)
    with pytest.raises(ValueError, match=r"video 'a' is labelled 0 in flow's evaluation data and 1 in rgb's"):
        _evaluation.fuse_predictions([("rgb", np.array([1]), p_rgb[:1], ["a"]), ("flow", np.array([0]), p_flow[:1], ["a"])],
                                     [1, 1])


def test_two_stream_export_returns_the_fused_scores(runs):
    root = runs["root"]
    proc = subprocess.run([sys.executable, "-m", "export.export_saved_model", f"--model_dir={root}/rgb,{root}/flow",
                           "--fusion_weights=1,1.5", f"--export_dir={root}/export", "--model_name=two"],
                          cwd=tl.REPO, env=tl.env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = tf.saved_model.load(proc.stdout.strip().splitlines()[-1])
    assert set(loaded.signatures) == {"serving_default", "sequence_example", "frames", "jpeg_frames", "clip_spec"}
    records = list(tf.data.TFRecordDataset(sorted(glob.glob(f"{root}/tfr/train-*.tfrecord"))).take(2))
    served = loaded.signatures["sequence_example"](sequence_example=tf.stack(records))["probabilities"].numpy()
    want = 0.0
    for stream, weight in (("rgb", 1.0), ("flow", 1.5)):
        model, config = _experiment.load_trained_model(f"{root}/{stream}")
        spec = config.clip_spec
        clips = [spec.clip_from_encoded(tfv_data.parse_sequence_example(r, with_flow=True)[
            "flow" if stream == "flow" else "frames"]) for r in records]
        logits = keras.ops.convert_to_numpy(model(tf.stack(clips), training=False))
        want = want + weight * tf.nn.softmax(logits).numpy() / 2.5
    np.testing.assert_allclose(served, want, atol=1e-5)
    spec = json.loads(loaded.signatures["clip_spec"]()["clip_spec"].numpy())
    assert spec["fusion_weights"] == {"rgb": 1.0, "flow": 1.5} and spec["two_stream"]["flow"]["modality"] == "flow"


def _prepared_record(root, path):
    """The `tfvideo-prepare --flow` record of one of the fixture's videos (by media_id)."""
    for record in tf.data.TFRecordDataset(sorted(glob.glob(f"{root}/tfr/train-*.tfrecord"))):
        parsed = tfv_data.parse_sequence_example(record, with_flow=True)
        if path.endswith(parsed["media_id"].numpy().decode() + ".mp4"):
            return record, parsed
    raise AssertionError(f"no record of {path}")


def test_fused_export_classifies_raw_videos_as_evaluation_fuses_them(runs, tmp_path):
    """A raw video -> tfvideo-predict / the clients: both clips made as prepare made the training
    records (flow computed on the client), scores = the fused scores of the video's record."""
    root, lists = runs["root"], runs["lists"]
    result = tfv_export.export_two_stream_saved_model(str(tmp_path), [f"{root}/rgb", f"{root}/flow"], (1, 1.5),
                                                      model_name="two")
    with open(f"{result.path}/assets.extra/clip_spec.json") as f:
        text = f.read()
    loaded = tf.saved_model.load(result.path)
    assert loaded.signatures["clip_spec"]()["clip_spec"].numpy().decode() == text
    assert json.loads(text)["prepare"] == {"rgb": {"fps": 0.0, "jpeg_quality": 90, "resize_short": 64},
                                           "flow": {"fps": 0.0, "jpeg_quality": 90, "resize_short": 64,
                                                    "flow_method": "dis", "flow_bound": 20.0}}
    # Warm-up: one PredictionLog per signature, each runs through the SavedModel.
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in
            tf.data.TFRecordDataset(f"{result.path}/assets.extra/tf_serving_warmup_requests")]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [
        "serving_default", "sequence_example", "frames", "jpeg_frames"]
    for log in logs:
        request = log.predict_log.request
        out = loaded.signatures[request.model_spec.signature_name](
            **{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
        np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), [1.0], atol=1e-5)
    assert sorted(logs[3].predict_log.request.inputs) == ["flow_jpeg_frames", "rgb_jpeg_frames"]

    videos = [f"{root}/{line.split()[0]}" for line in open(lists["train"]).read().splitlines()[::5]]  # noqa: SIM115
    local = serving.LocalPredictor.from_saved_model(result.path)
    fused = local.fused
    server = serving.ModelServer({"two": os.path.dirname(result.path)})
    server.start(port=0)  # Loading the version replays its warm-up requests.
    try:
        with serving.Client(f"127.0.0.1:{server.port}") as client:
            served = client.predict_videos(videos, "two", top_k=4)
        for path, from_server in zip(videos, served):
            record, parsed = _prepared_record(root, path)
            # The flow JPEGs made from the video are the prepared record's, byte for byte.
            indices = fused.specs["flow"].sampler(training=False)(len(parsed["flow"])).reshape(-1)
            made = _fused.video_inputs(path, fused)["flow_jpeg_frames"][0]
            assert list(made) == [parsed["flow"][i].numpy() for i in indices]
            # The fused scores of the video's record (test_two_stream_export_returns_the_fused_scores:
            # the weighted softmax average of both runs, as tfvideo-evaluate fuses them).
            want = loaded.signatures["sequence_example"](sequence_example=tf.stack([record]))["probabilities"][0]
            for prediction in (local.predict_video(path, top_k=4), from_server):
                got = np.zeros(4)
                got[list(prediction.indices)] = prediction.probabilities
                np.testing.assert_allclose(got, want, atol=1e-5)
        proc = subprocess.run([sys.executable, "-m", "export.predict", f"--server=127.0.0.1:{server.port}",
                               "--model=two", videos[0]], cwd=tl.REPO, env=tl.env(), capture_output=True, text=True,
                              timeout=300, check=False)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"{videos[0]}\t" + " ".join(
        f"{label}:{p:.4f}" for label, p in zip(served[0].labels, served[0].probabilities))


def test_fused_export_without_flow_settings_names_them(runs, tmp_path, monkeypatch):
    """An export whose clip spec lacks the flow stream's flow_method/flow_bound (made before they
    were recorded, or from runs without a prepare manifest): a one-line error saying what is missing."""
    root = runs["root"]
    monkeypatch.setattr(_two_stream, "_training_manifest", lambda config: None)
    result = tfv_export.export_two_stream_saved_model(str(tmp_path), [f"{root}/rgb", f"{root}/flow"],
                                                      input_types=["jpeg_frames"], model_name="old", warmup=False)
    assert not os.path.exists(f"{result.path}/assets.extra/tf_serving_warmup_requests")
    with pytest.raises(ValueError) as caught:
        serving.LocalPredictor.from_saved_model(result.path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{result.path}: signature 'clip_spec': the clip spec lacks "
                                                       "the flow stream's flow_method and flow_bound")
    with pytest.raises(ValueError, match="lacks the flow stream's flow_bound "):  # One given at export.
        _fused.parse({**json.loads(open(f"{result.path}/assets.extra/clip_spec.json").read()),  # noqa: SIM115
                      "prepare": {"flow": {"flow_method": "dis"}}}, "old")
    assert _warmup.read_warmup_requests(result.path) == []


def test_errors_inside_traced_functions_become_one_line():
    model = models.get("tsn_flow_tiny", 3, num_segments=2)
    model.build((None, 10, 32, 32, 2))

    @tf.function
    def step(video):
        return model(video)

    with pytest.raises(Exception) as caught:
        step(tf.zeros((1, 10, 32, 32, 3)))  # RGB frames into the flow network.
    line = _cli.message(caught.value)
    assert line.startswith("ValueError: Exception encountered when calling TSN.call(): ") and "\n" not in line
    assert "is incompatible with the layer: expected shape=(None, None, None, 10)" in line and "\x1b" not in line, line
