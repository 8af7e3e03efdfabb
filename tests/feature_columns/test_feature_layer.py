"""FeatureLayer: serialization, tf.data, Keras models, and a SavedModel serving raw features."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo import data as tfv_data
from tfvideo import feature_columns as fc


def log1p_duration(x):
    return tf.math.log1p(tf.cast(x, tf.float32))


def tabular_columns(vocab_path=None):
    camera = fc.categorical_column_with_hash_bucket("camera_id", 16)
    scene = fc.categorical_column_with_vocabulary_list("scene", ["indoor", "outdoor", "street"], num_oov_buckets=2)
    columns = [
        fc.numeric_column("duration", default_value=1.0, normalizer_fn=log1p_duration),
        fc.embedding_column(camera, 4, combiner="sqrtn"),
        fc.indicator_column(scene),
        fc.embedding_column(
            fc.weighted_categorical_column(fc.categorical_column_with_identity("tag", 5), "tag_weight"), 3
        ),
        fc.bucketized_column(fc.numeric_column("fps", dtype="int64"), [15.0, 30.0]),
        fc.indicator_column(fc.crossed_column(["scene", fc.categorical_column_with_identity("tag", 5)], 7)),
    ]
    if vocab_path:
        columns.append(
            fc.indicator_column(fc.categorical_column_with_vocabulary_file("lang", vocab_path, default_value=0))
        )
    return columns


def tabular_features(lang=False):
    features = {
        "duration": tf.constant([[2.0], [30.0], [0.5]]),
        "camera_id": tf.constant(["cam-1", "cam-7", "cam-1"]),
        "scene": tf.constant([["indoor", ""], ["street", "beach"], ["", ""]]),
        "tag": tf.constant([[1, 4], [0, -1], [2, 2]], tf.int64),
        "tag_weight": tf.constant([[1.0, 0.5], [2.0, 0.0], [1.0, 3.0]]),
        "fps": tf.constant([[10], [30], [60]], tf.int64),
    }
    if lang:
        features["lang"] = tf.constant(["en", "xx", "fr"])
    return features


@pytest.fixture
def vocab_path(tmp_path):
    path = tmp_path / "lang.txt"
    path.write_text("en\nfr\nde\n")
    return str(path)


def _copy_weights(src, dst):
    dst.set_weights(src.get_weights())
    return dst


def test_config_and_spec_round_trip(tmp_path, vocab_path):
    layer = fc.FeatureLayer(tabular_columns(vocab_path), multivalent_keys=["scene", "tag", "tag_weight"])
    features = tabular_features(lang=True)
    expected = layer(features).numpy()
    assert expected.shape == (3, layer.dense_size)

    clone = _copy_weights(layer, fc.FeatureLayer.from_config(json.loads(json.dumps(layer.get_config()))))
    np.testing.assert_array_equal(clone(features).numpy(), expected)

    path = layer.save_spec(tmp_path / "features.json")
    spec = json.loads(path.read_text())
    assert spec["format"] == "tfvideo.feature_spec" and len(spec["columns"]) == 7
    from_file = _copy_weights(layer, fc.FeatureLayer.from_spec(str(path)))
    np.testing.assert_array_equal(from_file(features).numpy(), expected)
    assert from_file.serving_input_signature() == layer.serving_input_signature()
    assert layer.serving_input_signature()["scene"].shape.as_list() == [None, None]
    assert layer.serving_input_signature()["camera_id"].shape.as_list() == [None]
    assert layer.serving_input_signature()["tag_weight"] == tf.TensorSpec([None, None], tf.float32, name="tag_weight")
    assert layer.serving_input_signature()["duration"] == tf.TensorSpec([None, 1], tf.float32, name="duration")


def test_from_spec_errors(tmp_path):
    with pytest.raises(ValueError, match="missing.json does not exist"):
        fc.FeatureLayer.from_spec(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "tfvideo.feature_spec",\n "version": 1,\n oops}')
    with pytest.raises(ValueError, match=r"bad.json:3: invalid JSON"):
        fc.FeatureLayer.from_spec(str(bad))
    with pytest.raises(ValueError, match="Unknown feature column class 'NoSuchColumn'"):
        fc.FeatureLayer.from_spec(
            {"format": "tfvideo.feature_spec", "version": 1, "columns": [{"class_name": "NoSuchColumn"}]}
        )


def test_in_tf_data_map_equals_eager():
    layer = fc.FeatureLayer(tabular_columns())
    features = tabular_features()
    expected = layer(features).numpy()
    ds = tf.data.Dataset.from_tensor_slices(features).batch(2).map(lambda f: layer(f))
    np.testing.assert_allclose(np.concatenate([b.numpy() for b in ds]), expected, atol=1e-6)


def test_functional_model_trains_and_saves(tmp_path):
    layer = fc.FeatureLayer(tabular_columns(), multivalent_keys=["scene", "tag", "tag_weight"], name="features")
    inputs = layer.keras_inputs()
    assert sorted(inputs) == sorted(layer.serving_input_signature())
    outputs = keras.layers.Dense(2, kernel_initializer=keras.initializers.GlorotUniform(seed=3))(layer(inputs))
    model = keras.Model(inputs, outputs)
    features = tabular_features()
    before = layer.get_weights()
    ds = tf.data.Dataset.from_tensor_slices((features, tf.constant([0, 1, 1]))).batch(3)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(ds, epochs=1, verbose=0)
    after = layer.get_weights()
    assert len(before) == 2  # The two embedding tables.
    assert all(not np.allclose(a, b) for a, b in zip(before, after))

    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(features).numpy(), model(features).numpy(), atol=1e-6)


def _jpeg_frames(num_frames, height=20, width=28, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(num_frames, height, width, 3), dtype=np.uint8)
    return [tf.io.encode_jpeg(f, quality=95).numpy() for f in frames]


def tiny_video_model(feature_layer):
    """A functional model on the raw inputs: the clip pooled to [B, C], joined to the dense part."""
    inputs = feature_layer.keras_inputs()
    feats = feature_layer(inputs)
    pooled = keras.ops.mean(feats["video"], axis=(1, 2, 3, 4))
    joined = keras.layers.Concatenate()([feats["dense"], pooled])
    outputs = keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(seed=1))(joined)
    return keras.Model(inputs, outputs)


def test_saved_model_serves_raw_features(tmp_path):
    columns = [
        fc.numeric_column("duration", default_value=0.0),
        fc.embedding_column(fc.categorical_column_with_hash_bucket("camera_id", 8), 2),
        fc.indicator_column(
            fc.categorical_column_with_vocabulary_list("scene", ["indoor", "outdoor"], num_oov_buckets=1)
        ),
        fc.indicator_column(fc.categorical_column_with_identity("fps_class", 3, default_value=0)),
        fc.video_column("video", tfv_data.SegmentSampler(4), size=16),
    ]
    layer = fc.FeatureLayer(columns)
    model = tiny_video_model(layer)
    frames = [_jpeg_frames(9, seed=1), _jpeg_frames(6, seed=2) + [b""] * 3]
    raw = {
        "duration": tf.constant([[3.5], [12.0]]),
        "camera_id": tf.constant(["cam-a", "cam-b"]),
        "scene": tf.constant(["outdoor", "moon"]),
        "fps_class": tf.constant([2, 9], tf.int64),
        "video": tf.constant(frames),
    }
    expected = model(raw).numpy()

    signature = layer.serving_input_signature()
    assert signature["video"] == tf.TensorSpec([None, None], tf.string, name="video")

    class Serving(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[signature])
        def serve(self, features):
            return {"logits": self.model(features)}

    module = Serving(model)
    export_dir = str(tmp_path / "export")
    tf.saved_model.save(module, export_dir, signatures={"serving_default": module.serve})
    del module

    loaded = tf.saved_model.load(export_dir)
    np.testing.assert_allclose(loaded.serve(raw)["logits"].numpy(), expected, atol=1e-5)
    by_signature = loaded.signatures["serving_default"](**raw)["logits"].numpy()
    np.testing.assert_allclose(by_signature, expected, atol=1e-5)
    # A different batch through the reloaded graph still matches the in-memory model.
    one = {k: v[1:] for k, v in raw.items()}
    np.testing.assert_allclose(loaded.serve(one)["logits"].numpy(), model(one).numpy(), atol=1e-5)


def test_mixed_precision_keeps_float32_features():
    features = tabular_features()
    reference = fc.FeatureLayer(tabular_columns())
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = fc.FeatureLayer(tabular_columns())
    finally:
        keras.config.set_dtype_policy("float32")
    layer.set_weights(reference.get_weights())
    out = layer(features)
    assert out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), reference(features).numpy())
