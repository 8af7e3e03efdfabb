"""The docs/notes/feature_columns.md example, end to end on a tiny generated TFRecord."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo import data
from tfvideo import feature_columns as fc


def write_records(path, num_videos=8, seed=0):
    """Class 0: dark videos, class 1: bright ones; camera id and duration in the context."""
    rng = np.random.default_rng(seed)
    labels = []
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(num_videos):
            label = i % 2
            n = int(rng.integers(5, 9))
            base = 60 if label == 0 else 190
            frames = np.clip(rng.normal(base, 20, size=(n, 24, 32, 3)), 0, 255).astype(np.uint8)
            jpegs = [tf.io.encode_jpeg(f).numpy() for f in frames]
            ex = data.make_sequence_example(jpegs, label=label, media_id=f"v{i}")
            if i != 3:  # One video without a camera id: its embedding is zeros.
                ex.context.feature["camera_id"].bytes_list.value.append(f"cam-{i % 3}".encode())
            if i != 5:  # One without a duration: the numeric default applies.
                ex.context.feature["duration"].float_list.value.append(float(n) / 4)
            writer.write(ex.SerializeToString())
            labels.append(label)
    return labels


@pytest.mark.slow
def test_video_classifier_with_tabular_context(tmp_path):
    path = str(tmp_path / "train-00000.tfrecord")
    labels = write_records(path)
    num_classes = 2
    keras.utils.set_random_seed(0)

    # --- The example, as in the notes (size 16 instead of 112, 2 epochs). ---
    layer = fc.FeatureLayer(
        [
            fc.numeric_column("duration", default_value=0.0),
            fc.embedding_column(fc.categorical_column_with_hash_bucket("camera_id", 64), 4),
            fc.video_column("video", data.SegmentSampler(4), size=16),
        ],
        multivalent_keys=["camera_id"],
    )
    context_spec = fc.make_parse_example_spec(layer.columns)

    def parse(serialized):
        context, sequences = tf.io.parse_single_sequence_example(
            serialized,
            context_features={**context_spec, data.LABEL_INDEX_KEY: tf.io.FixedLenFeature([], tf.int64)},
            sequence_features={data.IMAGE_KEY: tf.io.FixedLenSequenceFeature([], tf.string)},
        )
        features = {
            "video": sequences[data.IMAGE_KEY],
            "duration": context["duration"],
            "camera_id": tf.sparse.to_dense(context["camera_id"]),
        }
        return features, context[data.LABEL_INDEX_KEY]

    train = tf.data.TFRecordDataset(tf.io.gfile.glob(path)).map(parse).shuffle(8, seed=0).padded_batch(4)

    inputs = layer.keras_inputs()
    feats = layer(inputs)
    clip = keras.ops.mean(feats["video"], axis=1)
    x = keras.layers.TimeDistributed(keras.layers.Conv2D(4, 3, strides=2, activation="relu"))(clip)
    x = keras.layers.GlobalAveragePooling3D()(x)
    x = keras.layers.Concatenate()([x, feats["dense"]])
    model = keras.Model(inputs, keras.layers.Dense(num_classes)(x))
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    history = model.fit(train, epochs=2, verbose=0)

    class Serving(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[layer.serving_input_signature()])
        def serve(self, features):
            return {"logits": self.model(features)}

    serving = Serving(model)
    export_dir = str(tmp_path / "export" / "1")
    tf.saved_model.save(serving, export_dir, signatures={"serving_default": serving.serve})
    # --- End of the example. ---

    assert np.isfinite(history.history["loss"]).all()
    features, got_labels = next(iter(tf.data.TFRecordDataset(path).map(parse).padded_batch(8)))
    assert got_labels.numpy().tolist() == labels
    np.testing.assert_allclose(features["duration"].numpy()[5], [0.0])  # Missing -> default.
    loaded = tf.saved_model.load(export_dir)
    served = loaded.signatures["serving_default"](**features)["logits"].numpy()
    np.testing.assert_allclose(served, model(features).numpy(), atol=1e-5)
    # Video 3 has no camera id: its camera embedding (columns sorted: camera_id_embedding first) is 0.
    np.testing.assert_array_equal(layer(features)["dense"].numpy()[3, :4], 0.0)
