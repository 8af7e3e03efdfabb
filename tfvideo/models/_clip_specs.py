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
"""

from tfvideo.api._export import tf_export
from tfvideo.data import _clip_spec
from tfvideo.models import _presets


def _is_dense(config):
    """I3D-style presets: a `num_frames` clip and no segments."""
    return "num_frames" in config and "num_segments" not in config


def _frame_interval(config):
    return 1 if "inception" in str(config.get("backbone", "")) else 2


def _check_count(name, value):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"default_clip_spec: {name}={value!r} must be an integer >= 1.")


@tf_export("tfvideo.models.default_clip_spec")
def default_clip_spec(preset, num_segments=None, num_clips=1, num_crops=1, **preprocess):
    """The `tfvideo.data.ClipSpec` a preset trains and serves on (see the module notes).

    Args:
      preset: a preset name (`tfvideo.models.list_presets()`).
      num_segments: segments per clip; for I3D presets the clip length (`clip_len`).
        None: the preset's.
      num_clips, num_crops: test-time clips and crops per video.
      **preprocess: `tfvideo.data.PreprocessConfig` fields (crop_size, resize_short, flip, ...).

    Returns:
      A `tfvideo.data.ClipSpec` with modality "rgb".
    """
    config = _presets.preset_config(preset)
    _check_count("num_segments", num_segments)
    if _is_dense(config):
        sampler = {"type": "dense", "clip_len": int(num_segments or config["num_frames"]),
                   "frame_interval": _frame_interval(config), "num_clips": num_clips}
    else:
        sampler = {"type": "segment", "num_segments": int(num_segments or config.get("num_segments", 8)),
                   "new_length": int(config.get("frames_per_segment", 1)), "num_clips": num_clips}
    return _clip_spec.ClipSpec(sampler, {**preprocess, "num_crops": num_crops})


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
