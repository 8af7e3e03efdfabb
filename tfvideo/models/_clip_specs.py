"""The clip each preset is trained and served on: `tfvideo.models.default_clip_spec`.

2D recognizers (TSN, TSM, TRN, TDN, TAM) read TSN segments: `num_segments` segments
(the preset's, else 8) of `frames_per_segment` consecutive frames (TDN: 5, tiny 3; the
others 1), as in their papers.

I3D reads one dense clip of `num_frames` frames every `frame_interval` frames:
  * ResNet-50 I3D (`i3d_r50`, `i3d_r50_nl`): 32 frames every 2nd frame, MMAction2's
    I3D recipe (clip_len=32, frame_interval=2, the "32x2x1" configs).
  * Inception-v1 I3D (`i3d_inception_v1`): 64 consecutive frames (interval 1), the
    I3D paper's training snippets (Carreira & Zisserman 2017).
  * Tiny presets follow their family: `i3d_tiny` 8 frames every 2nd (a 15-frame span,
    which the few-second test videos hold), `i3d_inception_v1_tiny` 16 consecutive frames.

The modality is the preset's: a preset reading 2-channel frames (`input_channels=2`:
`tsn_r50_flow`, `tsn_flow_tiny`) is a flow stream: 5 stacked (x, y) flow frames per
segment, normalised as MMAction2's TSN flow config (`tsn_imagenet-pretrained-r50_8xb32_
5x1x3-110e_kinetics400-flow.py`: mean = std = 128 on 0..255 values), so the network
reads `2 x 5 = 10` channels per segment. The others read RGB; `modality="rgb_diff"`
(TSN's RGB difference) samples one frame more per segment and feeds the differences.
"""

from tfvideo.api._export import tf_export
from tfvideo.data import _clip_spec, _preprocess
from tfvideo.models import _presets


def _is_dense(config):
    """I3D-style presets: a `num_frames` clip and no segments."""
    return "num_frames" in config and "num_segments" not in config


def _frame_interval(config):
    return 1 if "inception" in str(config.get("backbone", "")) else 2


# Channels per frame a modality gives the network.
_CHANNELS = {"rgb": 3, "rgb_diff": 3, "flow": 2}


def preset_modality(preset):
    """"flow" for a preset reading 2-channel frames (stacked optical flow), else "rgb"."""
    return "flow" if int(_presets.preset_config(preset).get("input_channels", 3)) == 2 else "rgb"


def check_modality(preset, modality):
    """ValueError naming the modality and the preset when the preset's network cannot read it."""
    if modality not in _CHANNELS:
        raise ValueError(f"modality={modality!r} must be one of {', '.join(_CHANNELS)}.")
    channels = int(_presets.preset_config(preset).get("input_channels", 3))
    if _CHANNELS[modality] != channels:
        kind = "optical flow (x, y)" if channels == 2 else "RGB"
        flow_presets = [p for p in _presets.list_presets() if preset_modality(p) == "flow"]
        hint = (f"use a flow preset ({', '.join(flow_presets)})" if modality == "flow" else
                "use an RGB preset or modality=flow")
        raise ValueError(f"modality={modality!r} gives {_CHANNELS[modality]}-channel frames but preset {preset!r} "
                         f"reads {channels}-channel frames ({kind}); {hint}.")


def _check_count(name, value):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"default_clip_spec: {name}={value!r} must be an integer >= 1.")


@tf_export("tfvideo.models.default_clip_spec")
def default_clip_spec(preset, num_segments=None, num_clips=1, num_crops=1, modality=None, **preprocess):
    """The `tfvideo.data.ClipSpec` a preset trains and serves on (see the module notes).

    Args:
      preset: a preset name (`tfvideo.models.list_presets()`).
      num_segments: segments per clip; for I3D presets the clip length (`clip_len`).
        None: the preset's.
      num_clips, num_crops: test-time clips and crops per video.
      modality: "rgb", "rgb_diff" or "flow"; None: the preset's (flow for presets reading
        2-channel frames, else rgb). One the preset's network cannot read raises ValueError.
      **preprocess: `tfvideo.data.PreprocessConfig` fields (crop_size, resize_short, flip, ...).
        Flow presets default mean/std to `FLOW_MEAN` / `FLOW_STD` (MMAction2's 128 / 128).

    Returns:
      A `tfvideo.data.ClipSpec`.
    """
    config = _presets.preset_config(preset)
    _check_count("num_segments", num_segments)
    modality = preset_modality(preset) if modality is None else modality
    check_modality(preset, modality)
    if modality == "flow":
        preprocess = {"mean": _preprocess.FLOW_MEAN, "std": _preprocess.FLOW_STD, **preprocess}
    if _is_dense(config):
        if modality == "rgb_diff":
            raise ValueError(f"modality='rgb_diff' is TSN's per-segment difference; preset {preset!r} reads one "
                             "dense clip (use rgb).")
        sampler = {"type": "dense", "clip_len": int(num_segments or config["num_frames"]),
                   "frame_interval": _frame_interval(config), "num_clips": num_clips}
    else:
        new_length = int(config.get("frames_per_segment", 1)) + (modality == "rgb_diff")  # L differences: L + 1 frames.
        sampler = {"type": "segment", "num_segments": int(num_segments or config.get("num_segments", 8)),
                   "new_length": new_length, "num_clips": num_clips}
    return _clip_spec.ClipSpec(sampler, {**preprocess, "num_crops": num_crops}, modality)


def clip_model_kwargs(preset, num_segments=None):
    """The model keyword arguments matching `default_clip_spec(preset, num_segments)`.

    Empty unless `num_segments` is given (I3D: `num_frames`) or the preset has segments.
    """
    config = _presets.preset_config(preset)
    if _is_dense(config):
        return {"num_frames": int(num_segments)} if num_segments else {}
    if num_segments or "num_segments" in config:
        return {"num_segments": int(num_segments or config["num_segments"])}
    return {}
