"""tfvideo.models.default_clip_spec: each preset's clip (I3D dense, 2D recognizers segments)."""

import pytest

from tfvideo import data as tfv_data
from tfvideo import models
from tfvideo.models import _clip_specs


@pytest.mark.parametrize("preset, sampler", [
    ("i3d_r50", {"type": "dense", "clip_len": 32, "frame_interval": 2}),  # MMAction2's 32x2x1.
    ("i3d_r50_nl", {"type": "dense", "clip_len": 32, "frame_interval": 2}),
    ("i3d_inception_v1", {"type": "dense", "clip_len": 64, "frame_interval": 1}),  # The I3D paper's 64 frames.
    ("i3d_tiny", {"type": "dense", "clip_len": 8, "frame_interval": 2}),
    ("i3d_inception_v1_tiny", {"type": "dense", "clip_len": 16, "frame_interval": 1}),
    ("tsm_r50", {"type": "segment", "num_segments": 8, "new_length": 1}),
    ("tsn_bninception", {"type": "segment", "num_segments": 3, "new_length": 1}),
    ("tdn_r50", {"type": "segment", "num_segments": 8, "new_length": 5}),
    ("tdn_tiny", {"type": "segment", "num_segments": 8, "new_length": 3}),
    ("tam_tiny", {"type": "segment", "num_segments": 8, "new_length": 1}),
    ("trn_tiny", {"type": "segment", "num_segments": 8, "new_length": 1}),
])
def test_preset_default_clips(preset, sampler):
    spec = models.default_clip_spec(preset)
    assert isinstance(spec, tfv_data.ClipSpec) and spec.modality == "rgb"
    assert {k: spec.sampler_config[k] for k in sampler} == sampler
    assert spec.num_clips == 1 and spec.num_crops == 1 and spec.crop_size == 224


def test_every_preset_has_a_spec_matching_its_model():
    for preset in models.list_presets():
        spec = models.default_clip_spec(preset)
        config = models.preset_config(preset)
        frames = config.get("num_frames") or config["num_segments"] * config.get("frames_per_segment", 1)
        assert spec.clip_length == frames, preset
        assert (spec.sampler_config["type"] == "dense") == preset.startswith("i3d"), preset


def test_num_segments_sets_the_clip_and_the_model():
    spec = models.default_clip_spec("i3d_tiny", num_segments=16, crop_size=112, resize_short=128, num_clips=3)
    assert spec.sampler_config["clip_len"] == 16 and spec.num_clips == 3 and spec.crop_size == 112
    assert _clip_specs.clip_model_kwargs("i3d_tiny", 16) == {"num_frames": 16}
    assert _clip_specs.clip_model_kwargs("i3d_r50") == {}
    spec = models.default_clip_spec("tsm_tiny", num_segments=4)
    assert spec.sampler_config["num_segments"] == 4 and spec.clip_length == 4
    assert _clip_specs.clip_model_kwargs("tsm_tiny", 4) == {"num_segments": 4}
    assert _clip_specs.clip_model_kwargs("tdn_tiny") == {"num_segments": 8}


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match=r"default_clip_spec: num_segments=0 must be an integer >= 1"):
        models.default_clip_spec("tsm_tiny", num_segments=0)
    with pytest.raises(ValueError, match=r"Unknown model preset 'nope'"):
        models.default_clip_spec("nope")
    with pytest.raises(ValueError, match=r"PreprocessConfig\.crop_size=0"):
        models.default_clip_spec("tsm_tiny", crop_size=0)
    with pytest.raises(ValueError, match=r"ClipSpec\.sampler: DenseSampler: .*num_clips=0"):
        models.default_clip_spec("i3d_tiny", num_clips=0)
