"""Presets of the models in this package."""

from tfvideo.models._presets import register_preset
from tfvideo.models._recognizer2d import TSM, TSN

register_preset("tsn_r50", TSN, "TSN, ResNet-50, 8 segments, 224x224", num_segments=8, backbone="resnet50")
register_preset("tsm_r50", TSM, "TSM, ResNet-50, 8 segments, 224x224", num_segments=8, backbone="resnet50")
register_preset("tsn_r18", TSN, "TSN, ResNet-18, 8 segments", num_segments=8, backbone="resnet18")
register_preset("tsm_r18", TSM, "TSM, ResNet-18, 8 segments", num_segments=8, backbone="resnet18")
register_preset("tsn_tiny", TSN, "TSN, ResNet-10 width 16: trains on a CPU", num_segments=8, backbone="resnet10", width=16, dropout=0.2)
register_preset("tsm_tiny", TSM, "TSM, ResNet-10 width 16: trains on a CPU", num_segments=8, backbone="resnet10", width=16, dropout=0.2)
