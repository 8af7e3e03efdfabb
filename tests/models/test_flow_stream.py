"""The flow stream's clip: modality in the preset's clip spec, stacking and normalisation as MMAction2.

Reference: open-mmlab/mmaction2 v1.2.0 (the `mmaction2==1.2.0` wheel the conversion tests use):
`mmaction/datasets/transforms/formatting.py` `FormatShape(input_format='NCHW')` with
`modality='Flow'` (clip_len frames of (x, y) stacked on channels), the data preprocessor
`ActionDataPreprocessor(mean=[128, 128] * 5, std=[128, 128] * 5)` of
`configs/recognition/tsn/tsn_imagenet-pretrained-r50_8xb32_5x1x3-110e_kinetics400-flow.py`,
and `mmaction/datasets/transforms/processing.py` `Flip` (flow-x inverted, 255 - v).
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo import data as tfv_data
from tfvideo import models
from tfvideo.data import _preprocess
from tfvideo.models import _clip_specs


def test_flow_presets_clip_spec_is_flow_with_five_stacked_frames():
    for preset in ("tsn_r50_flow", "tsn_flow_tiny"):
        spec = models.default_clip_spec(preset)
        assert spec.modality == "flow", preset
        assert spec.sampler_config["new_length"] == 5 and spec.clip_length == 8 * 5
        assert spec.preprocess.mean == pytest.approx((128 / 255,) * 2) and spec.preprocess.std == pytest.approx((128 / 255,) * 2)
        model = models.get(preset, 3, num_segments=2) if preset.endswith("tiny") else None
        if model is not None:  # 2 segments x 5 frames x (x, y): the backbone's first conv reads 10 channels.
            out = model(np.zeros((1, 10, 32, 32, 2), np.float32))
            assert out.shape == (1, 3)
    assert models.default_clip_spec("tsn_tiny").modality == "rgb"
    diff = models.default_clip_spec("tsn_tiny", modality="rgb_diff")
    assert diff.modality == "rgb_diff" and diff.sampler_config["new_length"] == 2  # One difference per segment.


def test_modality_must_fit_the_preset():
    with pytest.raises(ValueError, match=r"modality='flow' gives 2-channel frames but preset 'tsn_tiny' reads "
                                         r"3-channel frames \(RGB\); use a flow preset \(tsn_flow_tiny, tsn_r50_flow\)"):
        models.default_clip_spec("tsn_tiny", modality="flow")
    with pytest.raises(ValueError, match=r"modality='rgb' gives 3-channel frames but preset 'tsn_flow_tiny' reads 2"):
        models.default_clip_spec("tsn_flow_tiny", modality="rgb")
    with pytest.raises(ValueError, match=r"modality='rgb_diff' is TSN's per-segment difference; preset 'i3d_tiny'"):
        models.default_clip_spec("i3d_tiny", modality="rgb_diff")
    with pytest.raises(ValueError, match=r"modality='depth' must be one of rgb, rgb_diff, flow"):
        _clip_specs.check_modality("tsn_tiny", "depth")


def _quantized_flow(rng, frames, h=12, w=16):
    return rng.integers(0, 256, (frames, h, w, 2), dtype=np.uint8)


def test_flow_normalisation_and_flip_match_the_reference_formulas():
    # MMAction2: (v - 128) / 128 per channel; Flip inverts flow-x (mmcv.iminvert: 255 - v) and mirrors.
    rng = np.random.default_rng(0)
    flow = _quantized_flow(rng, 5)
    config = models.default_clip_spec("tsn_flow_tiny").preprocess
    got = _preprocess.normalize_flow(tf.constant(flow), config).numpy()
    np.testing.assert_allclose(got, (flow.astype(np.float32) - 128) / 128, atol=1e-5)
    flipped = _preprocess.normalize_flow(tf.constant(flow), config, flipped=True).numpy()
    want = flow.astype(np.float32)
    want[..., 0] = 255 - want[..., 0]
    np.testing.assert_allclose(flipped, (want - 128) / 128, atol=1e-5)
    # RGB mean/std (a hand-made flow spec): flow / bound in [-1, 1], x negated when mirrored.
    rgb_config = tfv_data.PreprocessConfig()
    np.testing.assert_allclose(_preprocess.normalize_flow(tf.constant(flow), rgb_config, True).numpy(),
                               (flow / 127.5 - 1) * np.float32([-1, 1]), atol=1e-5)


def test_in_graph_flow_clip_equals_the_training_pipeline_eval_clip():
    # The exported signature (ClipSpec.preprocess_frames) and evaluation normalise flow alike.
    spec = models.default_clip_spec("tsn_flow_tiny", num_segments=2, crop_size=16, resize_short=0)
    rng = np.random.default_rng(1)
    flow = _quantized_flow(rng, 10, 20, 24)
    stored = np.concatenate([flow, np.zeros_like(flow[..., :1])], -1)  # Flow JPEGs hold x, y and a zero channel.
    served = spec.preprocess_frames(tf.constant(stored)).numpy()
    element = {"flow": tf.constant(flow[None]), "label": tf.constant(0), "media_id": tf.constant("a")}
    evaluated = _preprocess.element_preprocessor(spec.preprocess, training=False, modality="flow", snippet_length=5)(
        element, tf.constant([0, 0], tf.int32))["video"].numpy()
    assert served.shape == evaluated.shape == (1, 10, 16, 16, 2)
    np.testing.assert_allclose(served, evaluated, atol=1e-6)


def test_stacking_and_normalisation_match_mmaction2():
    pytest.importorskip("torch")
    pytest.importorskip("mmaction")
    import torch

    from tests.models.mmaction2_import import import_mmaction

    import_mmaction()
    from mmaction.datasets.transforms.formatting import FormatShape
    from mmaction.models.data_preprocessors import ActionDataPreprocessor

    rng = np.random.default_rng(2)
    segments, clip_len, h, w = 3, 5, 8, 12
    flow = _quantized_flow(rng, segments * clip_len, h, w)  # RawFrameDecode's Flow frames: [H, W, 2] (x, y) each.
    results = FormatShape(input_format="NCHW")({"imgs": flow, "modality": "Flow", "clip_len": clip_len,
                                                "num_clips": segments})
    reference = ActionDataPreprocessor(mean=[128, 128] * clip_len, std=[128, 128] * clip_len, format_shape="NCHW")
    ref = reference({"inputs": [torch.from_numpy(results["imgs"])], "data_samples": None})["inputs"][0].numpy()
    assert ref.shape == (segments, 2 * clip_len, h, w)

    spec = models.default_clip_spec("tsn_flow_tiny", num_segments=segments, crop_size=h, resize_short=0)
    spec = spec.replace(preprocess=dataclasses.replace(spec.preprocess, crop_size=h))
    clip = _preprocess.normalize_flow(tf.constant(flow[None]), spec.preprocess).numpy()  # [1, T * L, H, W, 2]
    model = models.get("tsn_flow_tiny", 3, num_segments=segments)
    stacked = keras.ops.convert_to_numpy(model._segment_frames(clip))  # [T, H, W, L * 2], as the backbone reads it.
    np.testing.assert_allclose(stacked.transpose(0, 3, 1, 2), ref, atol=1e-5)
