"""Recognizers over K segments with a shared 2D backbone: TSN and TSM."""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export
from tfvideo.layers._segment_consensus import SegmentConsensus
from tfvideo.layers._temporal_shift import TemporalShift
from tfvideo.models import _resnet

_TEMPORAL_MODULES = (None, "shift")


def _backbone(name, temporal_module, num_segments, width, input_channels):
    if not name.startswith("resnet"):
        raise ValueError(f"Unknown backbone {name!r}; expected resnet10/18/34/50/101.")
    hook = None
    if temporal_module == "shift":

        def hook(x, block_name):
            return TemporalShift(num_segments, name=f"{block_name}_shift")(x)

    return _resnet.resnet(int(name[len("resnet"):]), width, input_channels, hook)


@tf_export("tfvideo.models.Recognizer2D")
@keras.saving.register_keras_serializable(package="tfvideo")
class Recognizer2D(keras.Model):
    """A 2D backbone applied to each of `num_segments` frames, a classifier, consensus.

    Input `[B, T, H, W, C]` or `[B, V, T, H, W, C]` (V test views whose scores are
    averaged). Output: class logits `[B, num_classes]`.
    """

    def __init__(self, num_classes, num_segments=8, backbone="resnet50", width=64, temporal_module=None,
                 consensus="avg", dropout=0.5, input_channels=3, **kwargs):
        super().__init__(**kwargs)
        if temporal_module not in _TEMPORAL_MODULES:
            raise ValueError(f"temporal_module={temporal_module!r} must be one of {_TEMPORAL_MODULES}.")
        self.num_classes = int(num_classes)
        self.num_segments = int(num_segments)
        self.backbone_name = backbone
        self.width = int(width)
        self.temporal_module = temporal_module
        self.consensus_mode = consensus
        self.dropout_rate = float(dropout)
        self.input_channels = int(input_channels)
        self.backbone = _backbone(backbone, temporal_module, num_segments, width, input_channels)
        self.pool = layers.GlobalAveragePooling2D(name="pool")
        self.dropout = layers.Dropout(dropout, name="dropout")
        self.classifier = layers.Dense(num_classes, name="classifier")
        self.consensus = SegmentConsensus(consensus, name="consensus")

    def build(self, input_shape):
        frame_shape = (None,) + tuple(input_shape[-3:])
        self.backbone.build(frame_shape)
        features = self.backbone.compute_output_shape(frame_shape)[-1]
        self.classifier.build((None, features))
        self.consensus.build((None, self.num_segments, self.num_classes))
        self.built = True

    def call(self, video, training=None):
        shape = ops.shape(video)
        if len(video.shape) not in (5, 6):
            raise ValueError(f"{self.name}: input must be [B, T, H, W, C] or [B, V, T, H, W, C], got {video.shape}.")
        frames = ops.reshape(video, (-1,) + tuple(shape[-3:]))
        x = self.backbone(frames, training=training)
        x = self.dropout(self.pool(x), training=training)
        logits = ops.reshape(self.classifier(x), (-1, self.num_segments, self.num_classes))
        scores = self.consensus(logits)
        if len(video.shape) == 6:
            scores = ops.mean(ops.reshape(scores, (-1, shape[1], self.num_classes)), axis=1)
        return scores

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "num_segments": self.num_segments,
            "backbone": self.backbone_name,
            "width": self.width,
            "temporal_module": self.temporal_module,
            "consensus": self.consensus_mode,
            "dropout": self.dropout_rate,
            "input_channels": self.input_channels,
        }


@tf_export("tfvideo.models.TSN")
@keras.saving.register_keras_serializable(package="tfvideo")
class TSN(Recognizer2D):
    """Temporal Segment Network (Wang et al. 2016): segment scores averaged."""

    def __init__(self, num_classes, num_segments=8, backbone="resnet50", **kwargs):
        kwargs.pop("temporal_module", None)
        super().__init__(num_classes, num_segments, backbone, temporal_module=None, **kwargs)


@tf_export("tfvideo.models.TSM")
@keras.saving.register_keras_serializable(package="tfvideo")
class TSM(Recognizer2D):
    """Temporal Shift Module network (Lin et al. 2019): residual shift in every block."""

    def __init__(self, num_classes, num_segments=8, backbone="resnet50", **kwargs):
        kwargs.pop("temporal_module", None)
        super().__init__(num_classes, num_segments, backbone, temporal_module="shift", **kwargs)
