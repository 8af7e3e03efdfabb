"""`tfvideo.export.export_two_stream_saved_model`: an RGB run and a flow run -> one SavedModel
returning their fused scores (two-stream TSN's late fusion), for TF Serving.

Signatures (each stream samples and preprocesses with its own run's clip spec, as the
single-stream export does; V = num_clips, T = each stream's clip length):
  sequence_example  string [B]: SequenceExamples made with `tfvideo-prepare --flow`; the RGB
                    stream reads the record's frames, the flow stream its flow frames.
  frames            `rgb_frames` uint8 [B, V*T_rgb, H, W, 3] and `flow_frames` uint8
                    [B, V*T_flow, H, W, 3] (x, y in channels 0, 1), already sampled.
  jpeg_frames       `rgb_jpeg_frames` / `flow_jpeg_frames` string: the same, JPEG-encoded.
  clip_spec         no input: `clip_spec` string [], JSON {"two_stream": {modality: spec},
                    "fusion_weights": {modality: weight}, "prepare": {modality: settings}}
                    (also written to `assets.extra/clip_spec.json`).
Outputs as the single-stream signatures: `probabilities` = sum_s w_s softmax(logits_s) /
sum_s w_s (what `tfvideo-evaluate --model_dir=A,B --fusion_weights=...` scores), `logits` =
log(probabilities), `top_k_indices`, `top_k_labels`.

`prepare` records how each stream's frames were made before training (`tfvideo-prepare`:
`resize_short`, `fps`, `jpeg_quality`; the flow stream also `flow_method` and `flow_bound`),
read from the `<name>-manifest.json` beside each run's training shards (`flow_method` /
`flow_bound` given to the export take precedence). A client classifying a raw video
(`tfvideo.serving` clients, `tfvideo-predict`) makes both streams' frames from it as prepare
did: the same frames, resize, optical flow and quantisation, and JPEG encoding.
Warm-up requests (`assets.extra/tf_serving_warmup_requests`) cover every signature.
"""

import glob
import json
import os
import re

import tensorflow as tf
from absl import logging

from tfvideo.api._export import tf_export
from tfvideo.export import _saved_model, _signatures, _versions, _warmup

FUSED_INPUT_TYPES = ("sequence_example", "frames", "jpeg_frames")
_SHARD = re.compile(r"^(?P<name>.+)-\d{5}-of-\d{5}\.tfrecord$")
# What a client needs to make a stream's frames from a raw video (flow streams also FLOW_FIELDS).
FRAME_FIELDS = ("resize_short", "fps", "jpeg_quality")
FLOW_FIELDS = ("flow_method", "flow_bound")


def _training_manifest(config):
    """The `tfvideo-prepare` config (dict) of the run's training shards, or None (not prepared
    TFRecords, or their manifest is gone)."""
    from tfvideo.data import _prepare

    patterns = [p for p in str(config.train.train_data or "").split(",") if p]
    for pattern in patterns:
        for shard in sorted(glob.glob(pattern)):
            match = _SHARD.match(os.path.basename(shard))
            path = match and os.path.join(os.path.dirname(shard), match["name"] + _prepare.MANIFEST_SUFFIX)
            if path and os.path.exists(path):
                try:
                    with open(path) as f:
                        return json.load(f)["config"]
                except (OSError, ValueError, KeyError, TypeError) as e:
                    logging.warning("%s: unreadable prepare manifest (%s); its settings are not recorded", path, e)
    return None


def prepare_settings(config, modality, flow_method=None, flow_bound=None):
    """How a run's training frames were prepared: {resize_short, fps, jpeg_quality[, flow_method,
    flow_bound]} from its training shards' manifest, `flow_method` / `flow_bound` overriding;
    fields nobody recorded are left out (a client then says what is missing)."""
    manifest = _training_manifest(config) or {}
    settings = {k: manifest[k] for k in FRAME_FIELDS if k in manifest}
    if modality == "flow":
        if manifest.get("flow"):
            settings.update({k: manifest[k] for k in FLOW_FIELDS if k in manifest})
            settings.setdefault("flow_method", "tvl1")  # Sets prepared before --flow_method existed: TV-L1.
        if flow_method is not None:
            settings["flow_method"] = str(flow_method)
        if flow_bound is not None:
            settings["flow_bound"] = float(flow_bound)
    return settings


class TwoStreamServingModule(tf.Module):
    """One `ServingModule` per stream and the fused signature functions."""

    def __init__(self, streams, weights, labels_file, num_classes, top_k, prepare=None):
        super().__init__(name="tfvideo_two_stream_serving")
        self.streams = streams  # {modality: ServingModule}, RGB first.
        self.weights = dict(weights)
        self._prepare_json = json.dumps(prepare or {}, sort_keys=True)  # {modality: prepare settings}
        self.labels = streams[next(iter(streams))].labels
        self._top_k = max(1, min(int(top_k), int(num_classes)))

    def _fused(self, clips_by_stream):
        total = sum(self.weights.values())
        probabilities = 0.0
        for name, clips in clips_by_stream.items():
            logits = tf.cast(self.streams[name].model(clips, training=False), tf.float32)
            probabilities += (self.weights[name] / total) * tf.nn.softmax(logits, axis=-1)
        top = tf.math.top_k(probabilities, k=self._top_k)
        indices = tf.cast(top.indices, tf.int64)
        return {"logits": tf.math.log(tf.maximum(probabilities, 1e-30)), "probabilities": probabilities,
                "top_k_indices": indices, "top_k_labels": self.labels.lookup(indices)}

    def signature_function(self, input_type):
        if input_type == "sequence_example":
            spec = tf.TensorSpec([None], tf.string, name="sequence_example")

            @tf.function(input_signature=[spec])
            def serve_sequence_example(sequence_example):
                return self._fused({name: stream.clips("sequence_example", sequence_example)
                                    for name, stream in self.streams.items()})

            return serve_sequence_example
        if input_type in ("frames", "jpeg_frames"):
            specs = {}
            for name, stream in self.streams.items():
                length = stream._views * stream._clip_length
                key = f"{name}_{input_type}"
                specs[key] = (tf.TensorSpec([None, length, None, None, 3], tf.uint8, name=key) if input_type == "frames"
                              else tf.TensorSpec([None, length], tf.string, name=key))

            @tf.function(input_signature=[specs])
            def serve(inputs):
                return self._fused({name: stream.clips(input_type, inputs[f"{name}_{input_type}"])
                                    for name, stream in self.streams.items()})

            return serve
        raise ValueError(f"--input_type={input_type!r}: a two-stream export has {', '.join(FUSED_INPUT_TYPES)}.")

    def clip_spec_json(self):
        return json.dumps({"two_stream": {name: stream._spec.get_config() for name, stream in self.streams.items()},
                           "fusion_weights": {k: float(v) for k, v in self.weights.items()},
                           "prepare": json.loads(self._prepare_json)}, sort_keys=True)

    def warmup_requests(self, input_types):
        """[(signature name, inputs)] of one example request per signature."""
        requests = []
        for name in ["serving_default", *input_types]:
            kind = input_types[0] if name == "serving_default" else name
            if kind == "sequence_example":  # One record holds both streams' frames (RGB and flow).
                length = max(s._views * s._clip_length for s in self.streams.values())
                size = _warmup_size(next(iter(self.streams.values()))._spec)
                inputs = _warmup.warmup_inputs(kind, length, size, flow=True)
            else:
                inputs = {}
                for stream_name, stream in self.streams.items():
                    (value,) = _warmup.warmup_inputs(kind, stream._views * stream._clip_length,
                                                     _warmup_size(stream._spec)).values()
                    inputs[f"{stream_name}_{kind}"] = value
            requests.append((name, inputs))
        return requests

    def clip_spec_function(self):
        text = self.clip_spec_json()

        @tf.function(input_signature=[])
        def serve_clip_spec():
            return {_signatures.CLIP_SPEC_SIGNATURE: tf.constant(text)}

        return serve_clip_spec


def _warmup_size(spec):
    return spec.preprocess.resize_short or spec.crop_size


@tf_export("tfvideo.export.export_two_stream_saved_model")
def export_two_stream_saved_model(export_dir, model_dirs, fusion_weights=(1.0, 1.5), model_name=None,
                                  input_types=FUSED_INPUT_TYPES, num_clips=None, num_crops=None, top_k=5,
                                  version=None, serving_base_path=None, warmup=True, flow_method=None,
                                  flow_bound=None):
    """Exports an RGB and a flow run as one SavedModel returning fused scores (see the module notes).

    Args:
      export_dir: the export root (`<export_dir>/<model_name>/<version>/`, `models.config`).
      model_dirs: two trained model_dirs of the same classes, one RGB (or rgb_diff), one flow.
      fusion_weights: the weight of each model_dir's probabilities (TSN: RGB 1, flow 1.5).
      model_name: the served name (default: "<first>_<second>" of the model_dirs' names).
      input_types: signatures to write, any of `sequence_example`, `frames`, `jpeg_frames`;
        the first is also `serving_default`.
      num_clips, num_crops: test-time views of both streams (None: each run's).
      top_k, version, serving_base_path, warmup: as `export_saved_model`.
      flow_method, flow_bound: how the flow run's training flow was computed
        (`tfvideo-prepare --flow_method/--flow_bound`), recorded for clients that compute flow
        from raw videos; None: read from its training shards' manifest.

    Returns:
      `tfvideo.export.ExportResult`.
    """
    model_dirs = list(model_dirs)
    weights = [float(w) for w in fusion_weights]
    if len(model_dirs) != 2 or len(weights) != 2:
        raise ValueError(f"a two-stream export takes two model_dirs and two fusion weights, got {len(model_dirs)} "
                         f"and {len(weights)}.")
    if min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"--fusion_weights={','.join(map(str, weights))}: must be >= 0 with a positive sum.")
    from tfvideo.data import _prepare

    if flow_method is not None and flow_method not in _prepare.FLOW_METHODS:
        raise ValueError(f"--flow_method={flow_method!r} must be one of {', '.join(_prepare.FLOW_METHODS)}.")
    if flow_bound is not None and (isinstance(flow_bound, bool) or not isinstance(flow_bound, (int, float))
                                   or not 0 < flow_bound < float("inf")):
        raise ValueError(f"--flow_bound={flow_bound!r} must be a number > 0.")
    loaded = [_saved_model.load_for_export(d) for d in model_dirs]
    (_, first), (_, second) = loaded
    if first.num_classes != second.num_classes or list(first.labels) != list(second.labels):
        raise ValueError(f"--model_dir={model_dirs[1]} has other classes than {model_dirs[0]}.")
    names = [config.clip_spec.modality for _, config in loaded]
    if len(set(names)) != 2:
        raise ValueError(f"--model_dir={','.join(model_dirs)}: both runs read {names[0]}; a two-stream export "
                         "takes two modalities (e.g. an rgb and a flow run).")
    if not input_types:
        raise ValueError("--input_type: at least one input type is needed")
    for t in input_types:
        if t not in FUSED_INPUT_TYPES:
            raise ValueError(f"--input_type={t!r}: a two-stream export has {', '.join(FUSED_INPUT_TYPES)}.")
    model_name = model_name or "_".join(os.path.basename(os.path.normpath(d)) for d in model_dirs)
    if "/" in model_name:
        raise ValueError(f"--model_name={model_name!r} must be a non-empty name without '/'")
    base_path = os.path.join(export_dir, model_name)
    with _versions.staged_version_dir(base_path, version) as (tmp, publish):
        labels_file = _saved_model.write_label_vocab(tmp, first)
        streams, prepare = {}, {}
        for (model, config), name in sorted(zip(loaded, names), key=lambda item: item[1] == "flow"):
            spec = config.clip_spec.replace(num_clips=num_clips, num_crops=num_crops)
            streams[name] = _signatures.ServingModule(model, labels_file, config.num_classes, spec, top_k)
            prepare[name] = prepare_settings(config, name, flow_method, flow_bound)
        missing = [k for k in FLOW_FIELDS if "flow" in prepare and k not in prepare["flow"]]
        if missing:
            logging.warning("two-stream export: the flow run's %s unknown (no prepare manifest beside its training "
                            "data; pass --flow_method/--flow_bound): clients cannot compute its flow from raw videos",
                            "/".join(missing))
        module = TwoStreamServingModule(streams, dict(zip(names, weights)), labels_file, first.num_classes, top_k,
                                        prepare)
        _saved_model.save_module(tmp, module, input_types, labels_file)
        if warmup:
            _warmup.write_warmup_requests(tmp, model_name, module.warmup_requests(list(input_types)))
        os.makedirs(os.path.join(tmp, os.path.dirname(_saved_model.CLIP_SPEC_ASSET)), exist_ok=True)
        with open(os.path.join(tmp, _saved_model.CLIP_SPEC_ASSET), "w") as f:
            f.write(module.clip_spec_json())
        path = publish()
    models_config = _versions.write_models_config(
        export_dir, model_name, serving_base_path and f"{serving_base_path.rstrip('/')}/{model_name}")
    logging.info("Exported two-stream %s to %s (signatures: %s)", model_name, path, input_types)
    return _saved_model.ExportResult(path, model_name, int(os.path.basename(path)),
                                     ("serving_default", *input_types, _signatures.CLIP_SPEC_SIGNATURE),
                                     models_config)
