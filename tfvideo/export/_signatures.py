"""Serving signatures: raw inputs -> decode -> sample -> preprocess -> model -> outputs.

Every signature returns the same outputs:
  `logits` float32 [B, K], `probabilities` float32 [B, K] (softmax of the logits averaged
  over views), `top_k_indices` int64 [B, k] and `top_k_labels` string [B, k] (looked up in
  the label vocabulary stored as a SavedModel asset).

Inputs per type (V = num_clips test clips, T = the sampler's clip length):
  frames            uint8 [B, V*T, H, W, 3]: already sampled frames, clip-major; H, W free
                    (a flow model: flow frames, x and y in channels 0 and 1).
  jpeg_frames       string [B, V*T]: the same frames JPEG-encoded, decoded in the graph.
  sequence_example  string [B]: serialized SequenceExamples (tfvideo.data layout) of whole
                    videos; the test-time sampler picks the frames in the graph (a flow
                    model reads the records' flow frames).
  features          the raw feature dict of a FeatureLayer's serving input signature (a
                    video column: encoded JPEG frames string [B, N] of whole videos, padded
                    with "", sampled in the graph); the layer's output goes to the model.
Frames are taken as given: the graph applies no display rotation (a video file's display
matrix is applied where files are decoded, by `tfvideo.data.VideoReader` and so by
tfvideo-prepare, `video_dataset` and tfvideo-predict) and ignores JPEG EXIF orientation;
clients send frames upright.
Sampling and preprocessing are the run's `tfvideo.data.ClipSpec` (test-time sampler,
`tfvideo.data.preprocess_eval`: resize, num_crops crops, normalize), the spec evaluation
uses, so training and serving see identical pixels.

One more signature, `clip_spec`, takes no input and returns `clip_spec` string []: the
spec's JSON (`tfvideo.data.ClipSpec.from_json`), so clients sample as the export expects.
"""

import tensorflow as tf

from tfvideo.data import _decode, _tfrecord

INPUT_TYPES = ("frames", "jpeg_frames", "sequence_example", "features")
CLIP_SPEC_SIGNATURE = "clip_spec"
NEEDS_FEATURE_LAYER = (
    "--input_type=features needs a feature spec in the model_dir's config.json "
    "(train with tfvideo-train --feature_spec) or `feature_layer=` in export_saved_model."
)


class ServingModule(tf.Module):
    """Holds the model, the label table and the signature functions for `tf.saved_model.save`."""

    def __init__(self, model, labels_file, num_classes, clip_spec, top_k, feature_layer=None):
        super().__init__(name="tfvideo_serving")
        self.model = model
        self.labels = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                labels_file,
                key_dtype=tf.int64,
                key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                value_dtype=tf.string,
                value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            ),
            default_value="",
        )
        self.feature_layer = feature_layer
        self._spec = clip_spec
        self._views = clip_spec.num_clips
        self._clip_length = clip_spec.clip_length
        self._top_k = max(1, min(int(top_k), int(num_classes)))
        # Channels of the network input: flow clips keep x, y of the stored 3-channel flow JPEGs.
        self._channels = 2 if clip_spec.modality == "flow" else 3

    # --- the clip of each input type (also used by the two-stream export) -------------
    def clips(self, input_type, inputs):
        """The raw input of `input_type` -> float32 [B, views, T, S, S, C] (C: 3 RGB, 2 flow)."""
        if input_type == "frames":
            return self._per_video(self._spec.preprocess_frames, inputs)
        if input_type == "jpeg_frames":
            return self._per_video(lambda v: self._spec.preprocess_frames(_decode.decode_images(v)), inputs)
        if input_type == "sequence_example":
            flow = self._channels == 2

            def one(serialized):
                parsed = _tfrecord.parse_sequence_example(serialized, with_flow=flow)
                return self._spec.clip_from_encoded(parsed["flow" if flow else "frames"])

            return self._per_video(one, inputs)
        raise ValueError(f"input type {input_type!r} has no clip path ({', '.join(INPUT_TYPES[:3])}).")

    # --- shared tail -----------------------------------------------------------------
    def _outputs(self, video):
        """float32 [B, views, T, S, S, 3] -> the output dict."""
        logits = tf.cast(self.model(video, training=False), tf.float32)
        return self._outputs_from_logits(logits)

    def _outputs_from_logits(self, logits):
        probabilities = tf.nn.softmax(logits, axis=-1)
        top = tf.math.top_k(probabilities, k=self._top_k)
        indices = tf.cast(top.indices, tf.int64)
        return {
            "logits": logits,
            "probabilities": probabilities,
            "top_k_indices": indices,
            "top_k_labels": self.labels.lookup(indices),
        }

    def _per_video(self, fn, elements):
        """Maps `fn` over the batch so videos in one request may differ in size."""
        size = self._spec.crop_size
        spec = tf.TensorSpec([self._spec.num_views, self._clip_length, size, size, self._channels], tf.float32)
        return tf.map_fn(fn, elements, fn_output_signature=spec)

    # --- signatures ------------------------------------------------------------------
    def frames_function(self):
        spec = tf.TensorSpec([None, self._views * self._clip_length, None, None, 3], tf.uint8, name="frames")

        @tf.function(input_signature=[spec])
        def serve_frames(frames):
            return self._outputs(self.clips("frames", frames))

        return serve_frames

    def jpeg_frames_function(self):
        spec = tf.TensorSpec([None, self._views * self._clip_length], tf.string, name="jpeg_frames")

        @tf.function(input_signature=[spec])
        def serve_jpeg_frames(jpeg_frames):
            return self._outputs(self.clips("jpeg_frames", jpeg_frames))

        return serve_jpeg_frames

    def sequence_example_function(self):
        spec = tf.TensorSpec([None], tf.string, name="sequence_example")

        @tf.function(input_signature=[spec])
        def serve_sequence_example(sequence_example):
            return self._outputs(self.clips("sequence_example", sequence_example))

        return serve_sequence_example

    def features_function(self):
        if self.feature_layer is None:
            raise ValueError(NEEDS_FEATURE_LAYER)
        raw = self.feature_layer.serving_input_signature()
        spec = {k: tf.TensorSpec(s.shape, s.dtype, name=k) for k, s in raw.items()}

        @tf.function(input_signature=[spec])
        def serve_features(features):
            inputs = self.feature_layer(features)
            if isinstance(inputs, dict) and len(inputs) == 1:
                (inputs,) = inputs.values()  # A recognizer takes the one video column's clip.
            logits = tf.cast(self.model(inputs, training=False), tf.float32)
            return self._outputs_from_logits(logits)

        return serve_features

    def clip_spec_function(self):
        """The zero-input signature returning the spec's JSON: {"clip_spec": string []}."""
        text = self._spec.to_json()

        @tf.function(input_signature=[])
        def serve_clip_spec():
            return {CLIP_SPEC_SIGNATURE: tf.constant(text)}

        return serve_clip_spec

    def signature_function(self, input_type):
        if input_type not in INPUT_TYPES:
            raise ValueError(f"--input_type={input_type!r} is not one of {', '.join(INPUT_TYPES)}.")
        return getattr(self, f"{input_type}_function")()
