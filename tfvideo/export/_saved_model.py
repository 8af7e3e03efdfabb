"""`tfvideo.export.export_saved_model`: a trained model_dir -> a TF Serving version directory."""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tfvideo.api._export import export_constant, tf_export
from tfvideo.export import _signatures, _versions, _warmup

INPUT_TYPES = export_constant("tfvideo.export.INPUT_TYPES", _signatures.INPUT_TYPES)
LABELS_ASSET = "labels.txt"


@tf_export("tfvideo.export.ExportResult")
@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where an export went: `path` = `<export_dir>/<model_name>/<version>`."""

    path: str
    model_name: str
    version: int
    signatures: tuple
    models_config: str = None


def _find_model_dir(checkpoint):
    """The model_dir holding config.json above a checkpoint file."""
    from tfvideo import _experiment

    directory = os.path.dirname(os.path.abspath(checkpoint))
    for _ in range(3):
        if os.path.exists(os.path.join(directory, _experiment.CONFIG_FILE)):
            return directory
        directory = os.path.dirname(directory)
    raise FileNotFoundError(
        f"--checkpoint={checkpoint}: no {_experiment.CONFIG_FILE} beside or above it; pass --model_dir too"
    )


_CHECKPOINT_SUFFIXES = (".keras", ".weights.h5")


def _resolve_checkpoint(checkpoint):
    """A checkpoint file; a directory means its newest `.keras` / `.weights.h5` file."""
    if not os.path.exists(checkpoint):
        raise FileNotFoundError(f"--checkpoint={checkpoint} does not exist")
    if os.path.isdir(checkpoint):
        files = [os.path.join(checkpoint, n) for n in os.listdir(checkpoint) if n.endswith(_CHECKPOINT_SUFFIXES)]
        if not files:
            raise FileNotFoundError(f"--checkpoint={checkpoint} holds no {' or '.join(_CHECKPOINT_SUFFIXES)} file")
        return max(files, key=os.path.getmtime)
    if not checkpoint.endswith(_CHECKPOINT_SUFFIXES):
        raise ValueError(f"--checkpoint={checkpoint} must end with {' or '.join(_CHECKPOINT_SUFFIXES)}")
    return checkpoint


def _check_model_dir(model_dir):
    """Raises FileNotFoundError naming model_dir and what it lacks for an export."""
    from tfvideo import _experiment

    if not os.path.isdir(model_dir):
        what = "is not a directory" if os.path.exists(model_dir) else "does not exist"
        raise FileNotFoundError(f"--model_dir={model_dir} {what}")
    if not os.path.exists(os.path.join(model_dir, _experiment.CONFIG_FILE)):
        raise FileNotFoundError(
            f"--model_dir={model_dir} holds no {_experiment.CONFIG_FILE}: not a tfvideo-train model_dir"
        )
    if not os.path.exists(os.path.join(model_dir, _experiment.MODEL_FILE)):
        hint = "training has not finished"
        if os.path.isdir(os.path.join(model_dir, "checkpoints")):
            hint += " (it has checkpoints/: rerun the same tfvideo-train command to resume and finish it)"
        raise FileNotFoundError(
            f"--model_dir={model_dir} holds no trained model: {_experiment.MODEL_FILE} is missing; {hint}"
        )


@tf_export("tfvideo.export.load_for_export")
def load_for_export(model_dir=None, checkpoint=None):
    """(keras model, ExperimentConfig) from a model_dir's model.keras or from a checkpoint.

    A `.keras` checkpoint is loaded whole; a `.weights.h5` one is loaded into the model
    config.json describes; a directory means its newest such file.
    """

    from tfvideo import _experiment

    if model_dir is None and checkpoint is None:
        raise ValueError("export needs --model_dir or --checkpoint")
    if checkpoint is None:
        _check_model_dir(model_dir)
        return _experiment.load_trained_model(model_dir)
    checkpoint = _resolve_checkpoint(checkpoint)
    config = _experiment.ExperimentConfig.read(model_dir or _find_model_dir(checkpoint))
    if checkpoint.endswith(".keras"):
        return _experiment.load_model_file(checkpoint, config), config
    with _experiment.dtype_policy(config):
        model = config.build_model()
        size = config.build_preprocess().crop_size
        channels = 2 if config.clip_spec.modality == "flow" else 3
        model(np.zeros((1, config.build_sampler(training=False).clip_length, size, size, channels), np.float32))
    model.load_weights(checkpoint)
    return model, config


def _feature_layer(config, num_clips, num_crops):
    """The FeatureLayer of the config's feature spec (None without one), at the export's test-time views.

    Video columns get `num_clips` clips and `num_crops` crops, as the other signatures do.
    """
    spec = getattr(config, "feature_spec", None)
    if not spec:
        return None
    from tfvideo import feature_columns

    layer = feature_columns.FeatureLayer.from_spec(spec)
    trained = [c.name for c in layer.columns if type(c).__name__ == "EmbeddingColumn"]
    if trained:  # A spec holds no weights: a layer rebuilt from it would embed with fresh random ones.
        raise ValueError(
            f"--input_type=features: the config's feature spec has embedding columns {trained} whose trained "
            "weights a spec does not hold; export with feature_layer= (the trained FeatureLayer) instead."
        )
    spec = layer.to_spec()  # A validated copy.
    for column in spec["columns"]:
        if column["class_name"] == "VideoColumn":
            column["config"]["sampler"]["num_clips"] = int(num_clips)
            column["config"]["preprocess"]["num_crops"] = int(num_crops)
    return feature_columns.FeatureLayer.from_spec(spec)


@dataclasses.dataclass(frozen=True)
class _PythonModelSpec:
    """What an export of a model trained in Python reads where a model_dir's config would be."""

    model: str
    clip_spec: object
    num_classes: int
    labels: tuple
    task: str = "recognition"
    feature_spec: dict = None


def _num_outputs(model, clip_spec):
    """The model's number of classes: its output's last dimension (built on one zero clip if unbuilt)."""
    shape = None
    try:
        shape = model.output_shape if getattr(model, "built", False) else None
    except (AttributeError, ValueError, RuntimeError):  # Subclassed models have no symbolic output.
        shape = None
    if shape is None:
        size = clip_spec.crop_size
        shape = model(np.zeros((1, clip_spec.clip_length, size, size, 3), np.float32), training=False).shape
    if isinstance(shape, list):
        raise ValueError(f"export_saved_model(model={model.name!r}): the model has {len(shape)} outputs; "
                         "a recognizer has one (scores [B, classes]).")
    return int(shape[-1])


def _python_model_spec(model, clip_spec, labels):
    """`_PythonModelSpec` of `model`, checking `clip_spec` and `labels` (one name per model output)."""
    from tfvideo import data as tfv_data

    if not isinstance(clip_spec, tfv_data.ClipSpec):
        raise TypeError(f"export_saved_model: clip_spec= must be a tfvideo.data.ClipSpec, got {type(clip_spec).__name__}.")
    if clip_spec.modality != "rgb":
        raise ValueError(f"export_saved_model: clip_spec.modality={clip_spec.modality!r}; the signatures take RGB "
                         "frames (modality 'rgb').")
    num_classes = _num_outputs(model, clip_spec)
    if labels is None:
        labels = [f"class_{k}" for k in range(num_classes)]
    if isinstance(labels, str) or not all(isinstance(label, str) and label and "\n" not in label for label in labels):
        raise ValueError("export_saved_model: labels= must be a list of non-empty class names without newlines.")
    labels = tuple(labels)
    if len(labels) != num_classes:
        raise ValueError(f"export_saved_model: labels= has {len(labels)} names; model {model.name!r} scores "
                         f"{num_classes} classes.")
    if len(set(labels)) != len(labels):
        raise ValueError(f"export_saved_model: labels= names a class twice: {labels}.")
    return _PythonModelSpec(model=model.name, clip_spec=clip_spec, num_classes=num_classes, labels=labels)


def _labels(config):
    labels = list(config.labels or [])
    if len(labels) < config.num_classes:
        labels += [f"class_{k}" for k in range(len(labels), config.num_classes)]
    return labels[: config.num_classes]


def _normalize_input_types(input_types):
    if isinstance(input_types, str):
        input_types = [t for t in input_types.split(",") if t]
    input_types = [t.strip() for t in input_types]
    if not input_types:
        raise ValueError("--input_type: at least one input type is needed")
    for t in input_types:
        if t not in INPUT_TYPES:
            raise ValueError(f"--input_type={t!r} is not one of {', '.join(INPUT_TYPES)}")
    if len(set(input_types)) != len(input_types):
        raise ValueError(f"--input_type={','.join(input_types)} names an input type twice")
    return input_types


EXPORT_RECORD = os.path.join("assets.extra", "tfvideo_export.json")
CLIP_SPEC_ASSET = os.path.join("assets.extra", "clip_spec.json")


def _write_export_record(version_dir, clip_spec, input_types, prepare=None):
    """`assets.extra/clip_spec.json` (the spec's JSON, as the `clip_spec` signature returns
    it) and `assets.extra/tfvideo_export.json`: how the signatures sample and preprocess
    (and, for a flow model, `prepare`: how its training flow was made, e.g. flow_method and
    flow_bound; see `tfvideo.export.export_two_stream_saved_model`).

    Read by offline prediction (`tfvideo-predict --saved_model`) to sample a video file the
    way the export's graph expects; TF Serving ignores them.
    """
    record = {
        "sampler": clip_spec.sampler(training=False).get_config() | {"type": clip_spec.sampler_config["type"]},
        "preprocess": dataclasses.asdict(clip_spec.preprocess),
        "clip_spec": clip_spec.get_config(),
        "input_types": list(input_types),
    }
    if prepare is not None:
        record["prepare"] = prepare
    path = os.path.join(version_dir, EXPORT_RECORD)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    with open(os.path.join(version_dir, CLIP_SPEC_ASSET), "w") as f:
        f.write(clip_spec.to_json())


def write_label_vocab(version_dir, config):
    """Writes the class names to a scratch file in `version_dir` (a SavedModel asset once saved); its path."""
    vocab_dir = os.path.join(version_dir, ".vocab")
    os.makedirs(vocab_dir)
    labels_file = os.path.join(vocab_dir, LABELS_ASSET)
    with open(labels_file, "w") as f:
        f.write("".join(label + "\n" for label in _labels(config)))
    return labels_file


def save_module(version_dir, module, input_types, labels_file):
    """Saves `module` with its `input_types` signatures (the first also `serving_default`) and
    `clip_spec` as the SavedModel in `version_dir` itself; removes the scratch label vocabulary."""
    functions = {t: module.signature_function(t) for t in input_types}
    signatures = {"serving_default": functions[input_types[0]], **functions,
                  _signatures.CLIP_SPEC_SIGNATURE: module.clip_spec_function()}
    saved = os.path.join(version_dir, "saved")
    tf.saved_model.save(module, saved, signatures=signatures)
    # Move the SavedModel's files up so the staging directory itself is the version directory.
    for name in os.listdir(saved):
        os.rename(os.path.join(saved, name), os.path.join(version_dir, name))
    os.rmdir(saved)
    os.remove(labels_file)
    os.rmdir(os.path.dirname(labels_file))


@tf_export("tfvideo.export.export_saved_model")
def export_saved_model(
    export_dir,
    model_dir=None,
    checkpoint=None,
    model_name=None,
    input_types=("jpeg_frames", "frames", "sequence_example"),
    num_clips=None,
    num_crops=None,
    top_k=5,
    version=None,
    model=None,
    config=None,
    feature_layer=None,
    warmup=True,
    serving_base_path=None,
    clip_spec=None,
    labels=None,
):
    """Exports a trained model as `<export_dir>/<model_name>/<version>/` for TF Serving.

    From a `tfvideo-train` model_dir, or from a Keras model trained in Python with the
    `tfvideo.data.ClipSpec` it was trained on and its class names:

        export_saved_model("exports", model=model, clip_spec=spec, labels=["walk", "run"])

    Args:
      export_dir: the export root (one sub-directory per model, plus `models.config`).
      model_dir: a trained model_dir (config.json, labels.txt, model.keras).
      checkpoint: a checkpoint to export instead of model_dir's model.keras.
      model_name: the served name (default: the model_dir's base name; for `model=` with
        `clip_spec=`, the model's name).
      input_types: signatures to write (see `tfvideo.export.INPUT_TYPES`); the first is
        also `serving_default`.
      num_clips, num_crops: test-time views averaged inside the graph (None: the config's
        clip spec's, 1 for a trained model_dir). The export's clip spec (with these views)
        is returned by its `clip_spec` signature and written to `assets.extra/clip_spec.json`.
      top_k: length of `top_k_indices` / `top_k_labels`.
      version: the version number (default: one above the highest present).
      model: an in-memory Keras recognizer (scores [B, classes] for clips [B, views, T, S, S, 3])
        instead of model_dir's; with `clip_spec` (and `labels`), or with `model_dir` for the rest.
      config: the model_dir's configuration object, instead of reading it from model_dir.
      feature_layer: a FeatureLayer for `features` (default: the config's feature spec with its
        video columns set to `num_clips` x `num_crops` views). A FeatureLayer output dict with
        one entry (a recognizer's clip) is passed to the model as that tensor, a larger dict as is.
      warmup: write `assets.extra/tf_serving_warmup_requests`.
      serving_base_path: base_path written to models.config (default: the local path).
      clip_spec: with `model`: the `tfvideo.data.ClipSpec` the model was trained on (how
        the signatures sample and preprocess; `num_clips`/`num_crops` override its views).
      labels: with `clip_spec`: the class names, one per model output (default: class_0, ...).

    Returns:
      `ExportResult`.
    """
    if (clip_spec is not None or labels is not None) and (model is None or config is not None or model_dir is not None
                                                           or checkpoint is not None):
        raise ValueError("export_saved_model: clip_spec= and labels= describe model= (a model trained in Python); "
                         "a model_dir, checkpoint or config carries its own.")
    if model is None:
        model, config = load_for_export(model_dir, checkpoint)
    elif clip_spec is not None:
        config = _python_model_spec(model, clip_spec, labels)
    elif labels is not None:
        raise ValueError("export_saved_model(model=..., labels=...) needs clip_spec= too: the tfvideo.data.ClipSpec "
                         "the model was trained on.")
    elif config is None:
        from tfvideo import _experiment

        if model_dir is None:
            raise ValueError("export_saved_model(model=...) needs clip_spec= (the tfvideo.data.ClipSpec the model was "
                             "trained on) and labels=, or model_dir= (a tfvideo-train model_dir).")
        config = _experiment.ExperimentConfig.read(model_dir)
    if model_name is None:
        source = model_dir or (checkpoint and _find_model_dir(checkpoint))
        model_name = os.path.basename(os.path.normpath(source)) if source else config.model
    if not model_name or "/" in model_name:
        raise ValueError(f"--model_name={model_name!r} must be a non-empty name without '/'")
    base_path = os.path.join(export_dir, model_name)
    if config.task == "online_detection":
        return _export_streaming(model_dir, export_dir, base_path, model_name, version, serving_base_path)

    input_types = _normalize_input_types(input_types)
    clip_spec = config.clip_spec.replace(num_clips=num_clips, num_crops=num_crops)
    if "features" in input_types and feature_layer is None:
        feature_layer = _feature_layer(config, clip_spec.num_clips, clip_spec.num_crops)
        if feature_layer is None:
            raise ValueError(_signatures.NEEDS_FEATURE_LAYER)

    with _versions.staged_version_dir(base_path, version) as (tmp, publish):
        labels_file = write_label_vocab(tmp, config)
        module = _signatures.ServingModule(model, labels_file, config.num_classes, clip_spec, top_k, feature_layer)
        save_module(tmp, module, input_types, labels_file)
        if warmup:
            size = clip_spec.preprocess.resize_short or clip_spec.crop_size
            requests = []
            for name in ["serving_default", *input_types]:
                kind = input_types[0] if name == "serving_default" else name
                if kind == "features":
                    inputs = _warmup.feature_warmup_inputs(feature_layer)
                else:
                    inputs = _warmup.warmup_inputs(kind, clip_spec.num_clips * clip_spec.clip_length, size,
                                                   flow=clip_spec.modality == "flow")
                if inputs is not None:
                    requests.append((name, inputs))
            _warmup.write_warmup_requests(tmp, model_name, requests)
        prepare = None
        if clip_spec.modality == "flow" and getattr(config, "train", None) is not None:
            from tfvideo.export import _two_stream

            prepare = _two_stream.prepare_settings(config, "flow")
        _write_export_record(tmp, clip_spec, input_types, prepare)
        path = publish()
    version_number = int(os.path.basename(path))
    models_config = _versions.write_models_config(
        export_dir, model_name, serving_base_path and f"{serving_base_path.rstrip('/')}/{model_name}"
    )
    logging.info("Exported %s version %d to %s (signatures: %s)", model_name, version_number, path, input_types)
    return ExportResult(path, model_name, version_number,
                        ("serving_default", *input_types, _signatures.CLIP_SPEC_SIGNATURE), models_config)


def _export_streaming(model_dir, export_dir, base_path, model_name, version, serving_base_path):
    """Online detectors: the streaming signature, written by `tfvideo.export._streaming`.

    `tfvideo.export._streaming` belongs to the online-detection work and is imported on demand.
    """
    from tfvideo.export import _streaming

    if model_dir is None:
        raise ValueError("exporting an online detector needs --model_dir")
    path = _streaming.export_from_model_dir(model_dir, base_path, None, version)
    models_config = _versions.write_models_config(
        export_dir, model_name, serving_base_path and f"{serving_base_path.rstrip('/')}/{model_name}"
    )
    return ExportResult(str(path), model_name, int(os.path.basename(path)), ("serving_default",), models_config)
