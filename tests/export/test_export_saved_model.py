"""export_saved_model: layout, signatures, parity with the evaluation pipeline, warm-up."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import CLIP_LENGTH, LABELS, SPEC_CLIP_LENGTH, make_context_model
from tfvideo import data as tfv_data
from tfvideo import export as tfv_export

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ramp_video(num_frames, height=40, width=48, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height, width, 3))
    return np.stack([(base + 7 * i) % 256 for i in range(num_frames)]).astype(np.uint8)


@pytest.fixture(scope="module")
def multiview_export(tiny_model_dir, tmp_path_factory):
    """num_clips=2, num_crops=3: 6 views averaged inside the graph."""
    root = str(tmp_path_factory.mktemp("exports"))
    result = tfv_export.export_saved_model(root, model_dir=tiny_model_dir, model_name="tiny", num_clips=2, num_crops=3,
                                           top_k=3)
    return result, tf.saved_model.load(result.path)


def _reference(model, config, clips_uint8, num_crops):
    """The evaluation path in-process: preprocess_eval + model, softmax. clips [V, T, H, W, 3]."""
    video = tfv_data.preprocess_eval(tf.constant(clips_uint8), config.build_preprocess(num_crops=num_crops))
    return tf.nn.softmax(model(video[None], training=False), -1).numpy()[0]


def test_layout_versions_and_models_config(tiny_model_dir, tmp_path):
    root = str(tmp_path)
    first = tfv_export.export_saved_model(root, model_dir=tiny_model_dir, input_types="frames", warmup=False)
    second = tfv_export.export_saved_model(root, model_dir=tiny_model_dir, input_types=["frames"])
    assert (first.model_name, first.version, second.version) == ("tiny", 1, 2)
    assert sorted(os.listdir(os.path.join(root, "tiny"))) == ["1", "2"]  # No temporary directory left.
    assert tfv_export.list_versions(os.path.join(root, "tiny")) == [1, 2]
    with open(os.path.join(second.path, "assets", "labels.txt")) as f:
        assert f.read().splitlines() == LABELS
    assert os.path.exists(os.path.join(second.path, "assets.extra", "tf_serving_warmup_requests"))
    assert not os.path.exists(os.path.join(first.path, "assets.extra", "tf_serving_warmup_requests"))
    with open(os.path.join(first.path, "assets.extra", "tfvideo_export.json")) as f:  # How the signatures sample.
        record = json.load(f)
    assert record["sampler"] == {"type": "segment", "num_segments": 8, "new_length": 1, "training": False,
                                 "num_clips": 1, "short_policy": "repeat_last"}
    assert record["input_types"] == ["frames"] and record["preprocess"]["crop_size"] == 32
    config = tfv_export.read_models_config(second.models_config)
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == ("tiny", os.path.join(root, "tiny"), "tensorflow")
    tfv_export.export_saved_model(root, model_dir=tiny_model_dir, model_name="other", input_types="frames",
                                  warmup=False, serving_base_path="/models")
    entries = {c.name: c.base_path for c in tfv_export.read_models_config(second.models_config).model_config_list.config}
    assert entries == {"tiny": os.path.join(root, "tiny"), "other": "/models/other"}


def test_bad_input_type_names_the_flag(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="--input_type='video'"):
        tfv_export.export_saved_model(str(tmp_path), model_dir=tiny_model_dir, input_types="frames,video")
    assert not os.path.exists(os.path.join(tmp_path, "tiny", "1"))


def test_frames_and_jpeg_signatures_match_in_process_model(multiview_export, loaded):
    model, config = loaded
    _, saved = multiview_export
    frames = _ramp_video(2 * CLIP_LENGTH)  # Two clips, clip-major.
    expected = _reference(model, config, frames.reshape(2, CLIP_LENGTH, *frames.shape[1:]), num_crops=3)
    out = saved.signatures["frames"](frames=tf.constant(frames[None]))
    np.testing.assert_allclose(out["probabilities"].numpy()[0], expected, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(), 1.0, atol=1e-5)
    order = np.argsort(-expected)[:3]
    np.testing.assert_array_equal(out["top_k_indices"].numpy()[0], order)
    assert [s.decode() for s in out["top_k_labels"].numpy()[0]] == [LABELS[k] for k in order]

    jpegs = [tf.io.encode_jpeg(f, quality=90).numpy() for f in frames]
    decoded = np.stack([tf.io.decode_jpeg(j, channels=3).numpy() for j in jpegs])
    expected_jpeg = _reference(model, config, decoded.reshape(2, CLIP_LENGTH, *decoded.shape[1:]), num_crops=3)
    out = saved.signatures["serving_default"](jpeg_frames=tf.constant([jpegs, jpegs[::-1]]))
    np.testing.assert_allclose(out["probabilities"].numpy()[0], expected_jpeg, atol=1e-5)
    assert not np.allclose(out["probabilities"].numpy()[1], expected_jpeg, atol=1e-4)  # Order matters.


def test_sequence_example_signature_matches_evaluation_pipeline(multiview_export, loaded, tmp_path):
    model, config = loaded
    _, saved = multiview_export
    frames = _ramp_video(21, seed=3)
    jpegs = [tf.io.encode_jpeg(f, quality=90).numpy() for f in frames]
    example = tfv_data.make_sequence_example(jpegs, label=1, media_id="v").SerializeToString()
    path = str(tmp_path / "eval.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(example)
    # The evaluation pipeline (NumPy sampler, tf.data decode) as the independent reference.
    ds = tfv_data.video_dataset(path, config.build_sampler(training=False, num_clips=2),
                                config.build_preprocess(num_crops=3), training=False)
    (element,) = list(ds)
    expected = tf.nn.softmax(model(element["video"][None], training=False), -1).numpy()[0]
    out = saved.signatures["sequence_example"](sequence_example=tf.constant([example]))
    np.testing.assert_allclose(out["probabilities"].numpy()[0], expected, atol=1e-5)


def test_warmup_requests_run_on_every_signature(multiview_export):
    from tfvideo.export import _warmup

    result, saved = multiview_export
    requests = _warmup.read_warmup_requests(result.path)
    # Every prediction signature is warmed up; `clip_spec` is a constant and needs none.
    assert sorted(r.model_spec.signature_name for r in requests) == sorted(set(result.signatures) - {"clip_spec"})
    for request in requests:
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        out = saved.signatures[request.model_spec.signature_name](**inputs)
        assert out["probabilities"].shape == (1, len(LABELS))
        np.testing.assert_allclose(out["probabilities"].numpy().sum(), 1.0, atol=1e-5)


def test_features_needs_a_feature_spec(loaded, tmp_path):
    model, config = loaded
    with pytest.raises(ValueError, match="--input_type=features needs a feature spec"):
        tfv_export.export_saved_model(str(tmp_path), model=model, config=config, model_name="f", input_types="features")
    assert not os.path.exists(os.path.join(tmp_path, "f"))  # Refused before anything is written.
    # A spec cannot carry trained embedding weights: rebuilding the layer from it is refused.
    import dataclasses

    from tfvideo import feature_columns as fc

    embedded = fc.FeatureLayer([fc.embedding_column(fc.categorical_column_with_hash_bucket("camera", 8), 2)])
    config = dataclasses.replace(config, feature_spec=embedded.to_spec())
    with pytest.raises(ValueError, match=r"embedding columns \['camera_embedding'\].*feature_layer="):
        tfv_export.export_saved_model(str(tmp_path), model=model, config=config, model_name="f", input_types="features")
    assert not os.path.exists(os.path.join(tmp_path, "f"))


def test_online_detection_dispatches_to_streaming_export(tmp_path, monkeypatch):
    import types

    from tfvideo import _experiment
    from tfvideo.export import _versions

    calls = []

    def export_from_model_dir(model_dir, export_base, model_name, version):
        calls.append((model_dir, export_base, model_name, version))
        with _versions.staged_version_dir(export_base, version) as (tmp, publish):
            os.makedirs(os.path.join(tmp, "variables"))
            open(os.path.join(tmp, "saved_model.pb"), "wb").close()
            return publish()

    fake = types.ModuleType("tfvideo.export._streaming")
    fake.export_from_model_dir = export_from_model_dir
    monkeypatch.setitem(sys.modules, "tfvideo.export._streaming", fake)
    monkeypatch.setattr(tfv_export, "_streaming", fake, raising=False)
    model_dir = str(tmp_path / "online")
    config = _experiment.ExperimentConfig(task="online_detection", num_classes=3)
    config.write(model_dir)
    root = str(tmp_path / "exports")
    result = tfv_export.export_saved_model(root, model_dir=model_dir, model=object(), config=config)
    second = tfv_export.export_saved_model(root, model_dir=model_dir, model=object(), config=config)
    # The base path already names the model; the version is allocated where the version directory is staged.
    assert calls == [(model_dir, os.path.join(root, "online"), None, None)] * 2
    assert (result.version, second.version) == (1, 2)
    assert result.path == os.path.join(root, "online", "1")
    assert os.path.exists(result.models_config)


@pytest.mark.slow
def test_binary_export_and_saved_model_cli(tiny_model_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run(
        [sys.executable, "-m", "export.export_saved_model", f"--model_dir={tiny_model_dir}",
         f"--export_dir={tmp_path}", "--model_name=clf", "--input_type=frames,jpeg_frames,sequence_example"],
        check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    version_dir = out.stdout.strip().splitlines()[-1]
    assert version_dir == os.path.join(str(tmp_path), "clf", "1")
    cli = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--all", "--dir", version_dir],
        check=False, capture_output=True, text=True, env=env, timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    text = cli.stdout
    blocks = {}
    for block in text.split("signature_def['")[1:]:
        blocks[block.split("'")[0]] = block
    assert set(blocks) >= {"serving_default", "frames", "jpeg_frames", "sequence_example"}
    assert "inputs['frames']" in blocks["serving_default"]  # The first input type is the default.
    assert "dtype: DT_UINT8" in blocks["frames"] and f"shape: (-1, {CLIP_LENGTH}, -1, -1, 3)" in blocks["frames"]
    assert "dtype: DT_STRING" in blocks["jpeg_frames"] and f"shape: (-1, {CLIP_LENGTH})" in blocks["jpeg_frames"]
    assert "shape: (-1)" in blocks["sequence_example"]
    for name in ("frames", "jpeg_frames", "sequence_example"):
        for output, dtype in [("probabilities", "DT_FLOAT"), ("logits", "DT_FLOAT"), ("top_k_indices", "DT_INT64"),
                              ("top_k_labels", "DT_STRING")]:
            assert f"outputs['{output}'] tensor_info:\n        dtype: {dtype}" in blocks[name]
        assert "Method name is: tensorflow/serving/predict" in blocks[name]


def test_checkpoint_weights_are_exported(tiny_model_dir, loaded, tmp_path):
    import shutil

    import keras

    from tfvideo import models as tfv_models

    model, config = loaded
    model_dir = str(tmp_path / "run")
    shutil.copytree(tiny_model_dir, model_dir)
    keras.utils.set_random_seed(5)
    other = tfv_models.get("tsm_tiny", num_classes=len(LABELS))
    clip = _ramp_video(CLIP_LENGTH)[None]
    video = tfv_data.preprocess_eval(tf.constant(clip), config.build_preprocess())[None]
    expected = tf.nn.softmax(other(video, training=False), -1).numpy()
    os.makedirs(os.path.join(model_dir, "checkpoints"))
    checkpoint = os.path.join(model_dir, "checkpoints", "ckpt-3.weights.h5")
    other.save_weights(checkpoint)
    with pytest.raises(ValueError, match="--checkpoint=.*must end with"):
        tfv_export.load_for_export(checkpoint=os.path.join(model_dir, "config.json"))
    # A directory means its newest checkpoint file.
    result = tfv_export.export_saved_model(str(tmp_path / "out"), checkpoint=os.path.dirname(checkpoint),
                                           input_types="frames", warmup=False)
    assert result.model_name == "run"  # The model_dir found above the checkpoint.
    out = tf.saved_model.load(result.path).signatures["frames"](frames=tf.constant(clip))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    trained = tf.nn.softmax(model(video, training=False), -1).numpy()
    assert not np.allclose(out["probabilities"].numpy(), trained, atol=1e-4)


# --- The `features` signature with real FeatureLayers. ---
def _padded_jpeg_batch(videos):
    """[N_i, H, W, 3] uint8 videos -> string [B, max N] of JPEG frames padded with "" (the serving layout)."""
    jpegs = [[tf.io.encode_jpeg(f, quality=90).numpy() for f in v] for v in videos]
    longest = max(len(j) for j in jpegs)
    return np.array([j + [b""] * (longest - len(j)) for j in jpegs], dtype=object), jpegs


def _sampled_decoded(config, jpegs, num_clips=1):
    """The test-time sampler (NumPy) picks frames; TF decodes them: uint8 [V, T, H, W, 3]."""
    indices = config.build_sampler(training=False, num_clips=num_clips)(len(jpegs))
    return np.stack([[tf.io.decode_jpeg(jpegs[i], channels=3).numpy() for i in row] for row in indices])


def _cli_blocks(version_dir):
    """`saved_model_cli show --all` of a version directory, split per signature."""
    cli = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--all", "--dir", version_dir],
        check=False, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT}, timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    return {block.split("'")[0]: block for block in cli.stdout.split("signature_def['")[1:]}


@pytest.mark.slow
def test_feature_spec_run_exports_a_features_signature(feature_spec_run, feature_spec_loaded, feature_spec_export):
    """tfvideo-train --feature_spec -> export (spec file gone): raw JPEG frames in, the model's numbers out."""
    from tfvideo import feature_columns as fc

    model, config = feature_spec_loaded
    result = feature_spec_export
    blocks = _cli_blocks(result.path)
    assert set(blocks) - {"__saved_model_init_op"} == {"serving_default", "features", "frames", "clip_spec"}
    assert "inputs['video'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1, -1)" in blocks["features"]
    assert blocks["features"].count("inputs['") == 1  # Only the spec's raw key.
    assert "inputs['video']" in blocks["serving_default"]  # features is the first input type.
    assert f"shape: (-1, {SPEC_CLIP_LENGTH}, -1, -1, 3)" in blocks["frames"]
    for output, dtype in [("probabilities", "DT_FLOAT"), ("logits", "DT_FLOAT"), ("top_k_indices", "DT_INT64"),
                          ("top_k_labels", "DT_STRING")]:
        assert f"outputs['{output}'] tensor_info:\n        dtype: {dtype}" in blocks["features"]

    saved = tf.saved_model.load(result.path)
    videos = [_ramp_video(11, 40, 48, seed=1), _ramp_video(6, 44, 36, seed=2)]
    batch, jpegs = _padded_jpeg_batch(videos)
    got = saved.signatures["features"](video=tf.constant(batch))["probabilities"].numpy()
    # In process: the recorded spec's FeatureLayer, then the trained model.
    layer = fc.FeatureLayer.from_spec(feature_spec_run["spec"])
    clips = layer({"video": tf.constant(batch)})["video"]
    expected = tf.nn.softmax(model(clips, training=False), -1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Independently: NumPy sampler + decode + preprocess_eval (the evaluation path), per video.
    for k, video_jpegs in enumerate(jpegs):
        clip = tfv_data.preprocess_eval(tf.constant(_sampled_decoded(config, video_jpegs)), config.build_preprocess())
        reference = tf.nn.softmax(model(clip[None], training=False), -1).numpy()[0]
        np.testing.assert_allclose(got[k], reference, atol=1e-5)
        frames = saved.signatures["frames"](frames=tf.constant(_sampled_decoded(config, video_jpegs)))
        np.testing.assert_allclose(frames["probabilities"].numpy()[0], reference, atol=1e-5)
    assert not np.allclose(got[0], got[1], atol=1e-4)  # The two videos differ.
    # Warm-up requests cover the features signature too (JPEG frames under 'video').
    from tfvideo.export import _warmup

    requests = {r.model_spec.signature_name: r for r in _warmup.read_warmup_requests(result.path)}
    assert sorted(requests) == ["features", "frames", "serving_default"]
    warm = tf.make_ndarray(requests["features"].inputs["video"])
    assert warm.dtype == object and warm.shape == (1, SPEC_CLIP_LENGTH)
    out = saved.signatures["features"](video=tf.constant(warm))["probabilities"].numpy()
    np.testing.assert_allclose(out.sum(), 1.0, atol=1e-5)


@pytest.mark.slow
def test_features_signature_uses_the_export_views(feature_spec_run, feature_spec_loaded, tmp_path):
    """--num_clips/--num_crops apply to the spec's video column as to the other signatures."""
    model, config = feature_spec_loaded
    result = tfv_export.export_saved_model(str(tmp_path), model_dir=feature_spec_run["model_dir"], num_clips=2,
                                           num_crops=3, input_types="features,frames", warmup=False)
    saved = tf.saved_model.load(result.path)
    batch, (jpegs,) = _padded_jpeg_batch([_ramp_video(13, 40, 48, seed=4)])
    got = saved.signatures["features"](video=tf.constant(batch))["probabilities"].numpy()[0]
    picked = _sampled_decoded(config, jpegs, num_clips=2)  # [2, T, H, W, 3]
    clips = tfv_data.preprocess_eval(tf.constant(picked), config.build_preprocess(num_crops=3))  # 6 views
    expected = tf.nn.softmax(model(clips[None], training=False), -1).numpy()[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    frames = saved.signatures["frames"](frames=tf.constant(picked.reshape(1, -1, *picked.shape[2:])))
    np.testing.assert_allclose(frames["probabilities"].numpy()[0], got, atol=1e-5)
    one_view = tf.nn.softmax(model(clips[None, :1], training=False), -1).numpy()[0]
    assert not np.allclose(got, one_view, atol=1e-5)  # The six views were averaged.


def test_features_signature_with_a_side_feature(tmp_path):
    """A model on {"dense", "video"}: both raw inputs in the signature, the layer's dict to the model."""
    from tfvideo.export import _warmup

    model, layer, config = make_context_model()
    result = tfv_export.export_saved_model(str(tmp_path), model=model, config=config, model_name="context",
                                           input_types="features", feature_layer=layer)
    saved = tf.saved_model.load(result.path)
    specs = saved.signatures["serving_default"].structured_input_signature[1]
    assert {k: (s.dtype, s.shape.as_list()) for k, s in specs.items()} == {
        "gain": (tf.float32, [None, 2]), "video": (tf.string, [None, None])}
    batch, _ = _padded_jpeg_batch([_ramp_video(9, seed=5), _ramp_video(5, seed=6)])
    gain = np.array([[0.5, -1.0], [2.0, 0.0]], np.float32)
    got = saved.signatures["features"](video=tf.constant(batch), gain=tf.constant(gain))["probabilities"].numpy()
    expected = tf.nn.softmax(model(layer({"video": tf.constant(batch), "gain": tf.constant(gain)})), -1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    other = saved.signatures["features"](video=tf.constant(batch), gain=tf.constant(-gain))["probabilities"].numpy()
    assert not np.allclose(got, other, atol=1e-4)  # The side feature reaches the model.
    (request,) = [r for r in _warmup.read_warmup_requests(result.path) if r.model_spec.signature_name == "features"]
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    assert sorted(inputs) == ["gain", "video"]
    np.testing.assert_allclose(saved.signatures["features"](**inputs)["probabilities"].numpy().sum(), 1.0, atol=1e-5)


def test_features_signature_with_tabular_columns_only(loaded, tmp_path):
    """A FeatureLayer returning the dense concat [B, D] (no video column) feeds the model that tensor."""
    import keras

    from tfvideo import feature_columns as fc
    from tfvideo.export import _warmup

    _, config = loaded
    layer = fc.FeatureLayer([
        fc.numeric_column("gain", shape=2),
        fc.indicator_column(fc.categorical_column_with_vocabulary_list("camera", ["a", "b"])),
    ])
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((layer.dense_size,)), keras.layers.Dense(len(LABELS))])
    result = tfv_export.export_saved_model(str(tmp_path), model=model, config=config, model_name="tabular",
                                           input_types="features", feature_layer=layer)
    saved = tf.saved_model.load(result.path)
    raw = {"gain": tf.constant([[1.0, 2.0], [0.0, -1.0]]), "camera": tf.constant(["b", "zzz"])}
    got = saved.signatures["features"](**raw)["probabilities"].numpy()
    # Columns by name: camera's one-hot ("zzz" is out of vocabulary: zeros), then gain.
    dense = np.array([[0.0, 1.0, 1.0, 2.0], [0.0, 0.0, 0.0, -1.0]], np.float32)
    np.testing.assert_allclose(layer(raw).numpy(), dense, atol=0)
    np.testing.assert_allclose(got, tf.nn.softmax(model(dense), -1).numpy(), atol=1e-5)
    # No made-up categorical warm-up value (one could fail a graph check): no warm-up request.
    assert _warmup.read_warmup_requests(result.path) == []


def test_model_trained_in_python_exports_with_public_clip_spec_and_labels(multiview_export, loaded, tmp_path):
    """export_saved_model(model=, clip_spec=, labels=): no model_dir, no private config; same scores as the model_dir's."""
    model, config = loaded
    spec = tfv_data.ClipSpec(tfv_data.SegmentSampler(num_segments=CLIP_LENGTH),
                             tfv_data.PreprocessConfig(crop_size=32, resize_short=36))
    assert spec == config.clip_spec  # What the model_dir export was made from.
    result = tfv_export.export_saved_model(str(tmp_path), model=model, clip_spec=spec, labels=LABELS, num_clips=2,
                                           num_crops=3, top_k=3, warmup=False)
    assert (result.model_name, result.version) == (model.name, 1)
    with open(os.path.join(result.path, "assets", "labels.txt")) as f:
        assert f.read().splitlines() == LABELS
    saved = tf.saved_model.load(result.path)
    exported = tfv_data.ClipSpec.from_json(saved.signatures["clip_spec"]()["clip_spec"].numpy().decode())
    assert exported == spec.replace(num_clips=2, num_crops=3)
    frames = tf.constant(_ramp_video(2 * CLIP_LENGTH, seed=3)[None])
    out = saved.signatures["frames"](frames=frames)
    reference = multiview_export[1].signatures["frames"](frames=frames)
    np.testing.assert_allclose(out["probabilities"].numpy(), reference["probabilities"].numpy(), atol=1e-6)
    assert [s.decode() for s in out["top_k_labels"].numpy()[0]] == [s.decode() for s in reference["top_k_labels"].numpy()[0]]


def test_model_trained_in_python_without_labels_gets_class_names(loaded, tmp_path):
    model, config = loaded
    result = tfv_export.export_saved_model(str(tmp_path), model=model, clip_spec=config.clip_spec, model_name="plain",
                                           input_types="frames", warmup=False)
    with open(os.path.join(result.path, "assets", "labels.txt")) as f:
        assert f.read().splitlines() == ["class_0", "class_1", "class_2", "class_3"]


@pytest.mark.parametrize("kwargs, error, message", [
    ({}, ValueError, r"needs clip_spec= \(the tfvideo.data.ClipSpec"),
    ({"labels": LABELS}, ValueError, "needs clip_spec= too"),
    ({"clip_spec": "tsm_tiny", "labels": LABELS}, TypeError, "must be a tfvideo.data.ClipSpec, got str"),
    ({"clip_spec": "spec", "labels": LABELS[:3]}, ValueError, "labels= has 3 names; model .* scores 4 classes"),
    ({"clip_spec": "spec", "labels": ["a", "b", "a", "c"]}, ValueError, "names a class twice"),
    ({"clip_spec": "spec", "labels": "left right up down"}, ValueError, "must be a list of non-empty class names"),
    ({"clip_spec": "spec", "config": "config"}, ValueError, "a model_dir, checkpoint or config carries its own"),
])
def test_model_trained_in_python_bad_arguments_name_them(loaded, tmp_path, kwargs, error, message):
    model, config = loaded
    kwargs = {k: {"spec": config.clip_spec, "config": config}.get(v, v) if isinstance(v, str) else v
              for k, v in kwargs.items()}
    with pytest.raises(error, match=message):
        tfv_export.export_saved_model(str(tmp_path), model=model, **kwargs)
    assert os.listdir(tmp_path) == []  # Nothing written.
