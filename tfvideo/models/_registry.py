"""Presets of the models in this package.

Standard configurations follow the papers (224x224 inputs, 8 segments for the 2D
recognizers, 32 or 64 frames for I3D); `*_tiny` presets train on a CPU in a minute
(ResNet-10 of width 16 on 56x56 inputs).
"""

from tfvideo.models._i3d import I3D
from tfvideo.models._presets import register_preset
from tfvideo.models._recognizer2d import TDN, TRN, TSM, TSN, TANet

_TINY = {"backbone": "resnet10", "width": 16, "dropout": 0.2}

for _depth in (18, 50, 101):
    register_preset(f"tsn_r{_depth}", TSN, f"TSN, ResNet-{_depth}, 8 segments, 224x224", num_segments=8,
                    backbone=f"resnet{_depth}")
    _every_other = " (shift in every other block, as the authors)" if _depth == 101 else ""
    register_preset(f"tsm_r{_depth}", TSM, f"TSM, ResNet-{_depth}, 8 segments, 224x224{_every_other}", num_segments=8,
                    backbone=f"resnet{_depth}")
register_preset("tsn_bninception", TSN, "TSN, BN-Inception, 3 segments (the TSN paper)", num_segments=3,
                backbone="bninception", dropout=0.8)
register_preset("tsn_r50_flow", TSN, "TSN flow stream, ResNet-50, 8 segments of 5 stacked (x, y) flow frames",
                num_segments=8, backbone="resnet50", input_channels=2, frames_per_segment=5, dropout=0.7)
register_preset("tsn_mobilenetv2", TSN, "TSN, MobileNetV2, 8 segments", num_segments=8, backbone="mobilenetv2")
register_preset("tsm_mobilenetv2", TSM, "TSM, MobileNetV2, 8 segments (online TSM's backbone)", num_segments=8,
                backbone="mobilenetv2")
register_preset("trn_bninception", TRN, "Multi-scale TRN, BN-Inception, 8 segments (the TRN paper)", num_segments=8,
                backbone="bninception", dropout=0.8)
register_preset("trn_r50", TRN, "Multi-scale TRN, ResNet-50, 8 segments", num_segments=8, backbone="resnet50")
register_preset("tdn_r50", TDN, "TDN, ResNet-50, 8 segments x 5 frames", num_segments=8, backbone="resnet50",
                frames_per_segment=5)
register_preset("tam_r50", TANet, "TANet (TAM), ResNet-50, 8 segments", num_segments=8, backbone="resnet50")
register_preset("i3d_inception_v1", I3D, "I3D, Inception-v1, 64 frames, 224x224 (the I3D paper)", num_frames=64,
                backbone="inception_v1")
register_preset("i3d_r50", I3D, "I3D ResNet-50 (3x1x1), 32 frames, 224x224", num_frames=32, backbone="resnet50")
register_preset("i3d_r50_nl", I3D, "I3D ResNet-50 with 5 non-local blocks, 32 frames", num_frames=32,
                backbone="resnet50", non_local=True)

register_preset("tsn_tiny", TSN, "TSN, ResNet-10 width 16: trains on a CPU", num_segments=8, **_TINY)
register_preset("tsn_flow_tiny", TSN, "TSN flow stream, ResNet-10 width 16, 8 segments of 5 stacked (x, y) flow "
                "frames: trains on a CPU", num_segments=8, input_channels=2, frames_per_segment=5, **_TINY)
register_preset("tsm_tiny", TSM, "TSM, ResNet-10 width 16: trains on a CPU", num_segments=8, **_TINY)
register_preset("trn_tiny", TRN, "TRN, ResNet-10 width 16: trains on a CPU", num_segments=8, relation_dim=64,
                **_TINY)
register_preset("tdn_tiny", TDN, "TDN, ResNet-10 width 16, 8 segments x 3 frames: trains on a CPU", num_segments=8,
                frames_per_segment=3, **_TINY)
register_preset("tam_tiny", TANet, "TANet, ResNet-10 width 16: trains on a CPU", num_segments=8, **_TINY)
register_preset("i3d_tiny", I3D, "I3D ResNet-10 width 16, 8 frames: trains on a CPU", num_frames=8, **_TINY)
register_preset("i3d_inception_v1_tiny", I3D, "I3D Inception-v1 width 16, 16 frames", num_frames=16,
                backbone="inception_v1", width=16, dropout=0.2)
