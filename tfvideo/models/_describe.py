"""What a preset is, in one record: `tfvideo.models.describe_preset` (the `tfvideo-models` listing).

For each preset: its task, the clip it reads (`default_clip_spec`: sampling, frames, crop,
modality), the checkpoint formats that convert into its architecture, and on request its
parameter count and its forward FLOPs per clip. Counting builds the model (variables made
without drawing initial values) and, for FLOPs, traces one clip's forward pass: a few
seconds per ResNet-50 preset on a CPU (over a minute for every preset), so both are opt-in.

FLOPs are TensorFlow's profiler count of the traced forward graph at the preset's crop size
(a multiply-add counts 2; the papers' "FLOPs" are usually multiply-adds, half this figure).
"""

from tfvideo.api._export import tf_export
from tfvideo.models import _clip_specs, _convert, _presets

# Backbone depths torchvision, MMAction2 and the TSM authors publish ResNet weights for.
_PUBLISHED_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def _family(name):
    builder = _presets.preset_builder(name)
    return builder.__name__ if isinstance(builder, type) else getattr(builder, "__name__", str(builder))


def _fits(fmt, family, config):
    """Whether the built-in checkpoint format `fmt` converts into a preset of `family` / `config`
    (the architectures its mapper covers; a width-reduced preset has no published weights)."""
    backbone = str(config.get("backbone", ""))
    rgb = int(config.get("input_channels", 3)) == 3
    published_resnet = backbone in _PUBLISHED_RESNETS and "width" not in config
    if fmt == "torchvision":  # ImageNet ResNet: backbone (inflated into I3D, TDN's short-term path) and fc.
        return published_resnet and rgb and family in ("TSN", "TSM", "TDN", "I3D") and not config.get("non_local")
    if fmt == "mmaction2":  # RGB recognizers (its flow TSN's stacking order is not mapped).
        if backbone == "mobilenetv2":
            return rgb and family in ("TSN", "TSM")
        return published_resnet and rgb and family in ("TSN", "TSM", "TANet", "TRN", "I3D")
    if fmt == "tsm":
        return published_resnet and rgb and family in ("TSN", "TSM")
    if fmt == "tdn":
        return published_resnet and family == "TDN"
    if fmt == "kinetics_i3d":
        return backbone == "inception_v1" and family == "I3D" and "width" not in config
    return False


def checkpoint_formats_for(name):
    """Sorted registered checkpoint formats (`list_checkpoint_formats()`) that convert into preset `name`."""
    family, config = _family(name), _presets.preset_config(name)
    return [fmt for fmt in _convert.list_checkpoint_formats() if _fits(fmt, family, config)]


def _clip(spec):
    sampler = spec.sampler(False)
    if hasattr(sampler, "clip_len"):
        sampling = f"dense {sampler.clip_len} frames, every {sampler.frame_interval}"
        frames = int(sampler.clip_len)
    else:
        per = int(sampler.new_length)
        sampling = f"{sampler.num_segments} segments" + (f" x {per} frames" if per > 1 else "")
        frames = int(sampler.num_segments) * per
    return {"sampling": sampling, "frames": frames, "crop_size": int(spec.preprocess.crop_size),
            "resize_short": int(spec.preprocess.resize_short), "modality": spec.modality}


def _build(name, num_classes):
    model = _convert.build_for_conversion(name, num_classes)  # Zero-initialised: only shapes are wanted.
    frames = getattr(model, "clip_length", None) or getattr(model, "num_frames", 8)
    return model, (frames, getattr(model, "input_channels", 3))


def forward_flops(model, frames, size, channels):
    """FLOPs of one clip's forward pass `[1, frames, size, size, channels]` (TensorFlow's profiler
    count of the traced graph; TensorFlow backend)."""
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"FLOPs are counted on the TensorFlow graph; the Keras backend is {keras.backend.backend()}.")
    spec = tf.TensorSpec((1, frames, size, size, channels), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # The v1 profiler's deprecation notices say nothing to a caller.
    try:
        return int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)
    finally:
        logger.setLevel(level)


@tf_export("tfvideo.models.describe_preset")
def describe_preset(name, params=False, flops=False, num_classes=400):
    """A preset in one dict: what `tfvideo-models` prints.

    Args:
      name: a preset (`list_presets()`).
      params: also count the parameters (builds the model: about a second for ResNet-50).
      flops: also count the forward FLOPs of one clip at the crop size (traces the model:
        seconds; TensorFlow backend).
      num_classes: classifier outputs the counts assume (Kinetics-400's 400).

    Returns:
      {"name", "task", "family", "description", "clip": {"sampling", "frames", "crop_size",
      "resize_short", "modality"}, "checkpoint_formats": [...], "defaults": {...}} plus
      "params" (int) and "gflops" (float, 1e9 FLOPs per clip; a multiply-add counts 2) when asked.
    """
    meta = _presets.preset_meta(name)
    clip = _clip(_clip_specs.default_clip_spec(name))
    out = {"name": name, "task": "recognition", "family": _family(name), "description": meta["description"],
           "clip": clip, "checkpoint_formats": checkpoint_formats_for(name), "defaults": dict(meta["defaults"])}
    if params or flops:
        model, (frames, channels) = _build(name, num_classes)
        out["params"] = int(model.count_params())
        out["num_classes"] = int(num_classes)
        if flops:
            out["gflops"] = forward_flops(model, frames, clip["crop_size"], channels) / 1e9
    return out
