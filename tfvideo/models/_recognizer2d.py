"""Recognizers over K segments with a shared 2D backbone: TSN, TSM, TRN, TDN, TANet."""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export
from tfvideo.layers._segment_consensus import SegmentConsensus
from tfvideo.layers._temporal_adaptive import TemporalAdaptive
from tfvideo.layers._temporal_difference import tdn_revision as _tdn_revision
from tfvideo.layers._temporal_relation import TemporalRelation
from tfvideo.layers._temporal_shift import TemporalShift
from tfvideo.models import _backbones, _tdn, _views
from tfvideo.models._tdn import SelectFrame  # noqa: F401 -- kept importable from here.

_TEMPORAL_MODULES = (None, "shift", "tam", "tdn")
_HEADS = ("consensus", "relation")


def _block_index(block):
    """`conv3_block4` -> 3 (0-based index of the block in its stage; 0 where not a ResNet block)."""
    _, _, index = block.rpartition("_block")
    return int(index) - 1 if index.isdigit() else 0


def _temporal_hooks(temporal_module, num_segments, frames_per_segment, channels, shift_every=1,
                    shift_mode="bidirectional"):
    """Backbone keyword arguments placing the temporal module."""
    if temporal_module is None:
        return {}
    if temporal_module == "shift":
        def shift(x, block):
            if _block_index(block) % shift_every:
                return x
            return TemporalShift(num_segments, mode=shift_mode, name=f"{block}_shift")(x)

        return {"residual_hook": shift}
    if temporal_module == "tam":
        return {"residual_hook": lambda x, block: TemporalAdaptive(num_segments, name=f"{block}_tam")(x),
                "hook_position": "after_first_conv"}
    raise ValueError(f"temporal_module={temporal_module!r} has no residual hook.")


@tf_export("tfvideo.models.Recognizer2D")
@keras.saving.register_keras_serializable(package="tfvideo")
class Recognizer2D(keras.Model):
    """A 2D backbone applied to each of `num_segments` segments, a head, a consensus.

    Input `[B, T, H, W, C]` or `[B, V, T, H, W, C]` (V test views whose scores are
    averaged), with `T = num_segments * frames_per_segment`. Output: class logits
    `[B, num_classes]` (float32 also under mixed precision).

    Args:
      backbone: a name in `tfvideo.models.backbone`; `width` scales it (None: standard).
      temporal_module: None (TSN), "shift" (TSM), "tam" (TANet) or "tdn" (TDN as the
        authors' code: `tfvideo.models._tdn.tdn_resnet`; ResNets only).
      head: "consensus" (per-segment scores, then `consensus`) or "relation" (TRN:
        per-segment features of `relation_dim` into a multi-scale `TemporalRelation`).
      input_channels: channels per frame (3 for RGB, 2 for optical flow's x, y).
      frames_per_segment: L consecutive frames per segment: TDN's short-term module reads
        them; the other models stack them on channels (`L * input_channels` into the
        backbone: TSN's stacked flow, 5 x (x, y) = 10 channels, in MMAction2's order
        x1, y1, x2, y2, ...).
      backbone_style: "keras" or "torch" (MobileNetV2: torchvision's/MMAction2's BN epsilon and
        padding, which their checkpoints need; see `tfvideo.models.backbone`).
      shift_every: TSM shifts in blocks 0, n, 2n, ... of each ResNet stage. None: the
        TSM authors' rule (and MMAction2's): every other block for ResNet-101 (layer3
        of >= 23 blocks), every block otherwise.
      tdn_revision: TDN only: the authors' code its long-term modules follow, "2021" (their
        current code, commit bcf28d9; the default) or "2020" (their December 2020 release,
        which checkpoints trained with that code need). Recorded in `get_config`.
      shift_mode: TSM only: "bidirectional" (the default) or "left" (uni-directional, past ->
        present: online TSM, which `tfvideo.models.StreamingRecognizer` runs frame by frame).
    """

    def __init__(self, num_classes, num_segments=8, backbone="resnet50", width=None, temporal_module=None,
                 consensus="avg", dropout=0.5, input_channels=3, head="consensus", relation_dim=256,
                 frames_per_segment=1, shift_every=None, backbone_style="keras", tdn_revision=None,
                 shift_mode="bidirectional", **kwargs):
        super().__init__(**kwargs)
        if temporal_module not in _TEMPORAL_MODULES:
            raise ValueError(f"temporal_module={temporal_module!r} must be one of {_TEMPORAL_MODULES}.")
        if head not in _HEADS:
            raise ValueError(f"head={head!r} must be one of {_HEADS}.")
        if temporal_module == "tdn" and not backbone.startswith("resnet"):
            raise ValueError(f"temporal_module='tdn' needs a ResNet backbone (the authors'), got {backbone!r}.")
        if temporal_module and not _backbones.supports_hooks(backbone):
            raise ValueError(f"temporal_module={temporal_module!r} needs a ResNet or MobileNetV2 backbone, got {backbone!r}.")
        if int(frames_per_segment) < 1:
            raise ValueError(f"frames_per_segment={frames_per_segment} must be >= 1.")
        self.num_classes = int(num_classes)
        self.num_segments = int(num_segments)
        self.backbone_name = backbone
        self.width = None if width is None else int(width)
        self.temporal_module = temporal_module
        self.consensus_mode = consensus
        self.dropout_rate = float(dropout)
        self.input_channels = int(input_channels)
        self.head = head
        self.relation_dim = int(relation_dim)
        self.frames_per_segment = int(frames_per_segment)
        if tdn_revision is not None and temporal_module != "tdn":
            raise ValueError(f"tdn_revision={tdn_revision!r} applies to TDN (temporal_module='tdn') only.")
        self.tdn_revision = _tdn_revision(tdn_revision or "2021") if temporal_module == "tdn" else None
        if shift_every is None:
            shift_every = 2 if backbone == "resnet101" else 1
        if int(shift_every) < 1:
            raise ValueError(f"shift_every={shift_every} must be >= 1.")
        self.shift_every = int(shift_every)
        if shift_mode not in ("bidirectional", "left"):
            raise ValueError(f"shift_mode={shift_mode!r} must be 'bidirectional' or 'left'.")
        if shift_mode != "bidirectional" and temporal_module != "shift":
            raise ValueError(f"shift_mode={shift_mode!r} applies to TSM (temporal_module='shift') only.")
        self.shift_mode = shift_mode
        self.backbone_style = backbone_style
        if backbone_style != "keras":
            hooks_style = {"style": backbone_style}
            if backbone != "mobilenetv2":
                raise ValueError(f"backbone_style={backbone_style!r} applies to mobilenetv2 only, got {backbone!r}.")
        else:
            hooks_style = {}
        if temporal_module == "tdn":
            self.backbone = _tdn.tdn_resnet(int(backbone[len("resnet"):]), self.width or 64, self.num_segments,
                                            self.frames_per_segment, self.input_channels, revision=self.tdn_revision)
        else:
            hooks = _temporal_hooks(temporal_module, self.num_segments, self.frames_per_segment, self.input_channels,
                                    self.shift_every, self.shift_mode)
            self.backbone = _backbones.backbone(backbone, self.width, self.input_channels * self.frames_per_segment,
                                                **hooks, **hooks_style)
        self.pool = layers.GlobalAveragePooling2D(name="pool")
        self.dropout = layers.Dropout(dropout, name="dropout")
        if head == "consensus":
            self.classifier = layers.Dense(num_classes, name="classifier", dtype="float32")
            self.consensus = SegmentConsensus(consensus, name="consensus", dtype="float32")
        else:
            self.classifier = layers.Dense(self.relation_dim, name="relation_features")
            self.consensus = TemporalRelation(self.num_segments, num_classes, name="relation", dtype="float32")

    @property
    def clip_length(self):
        """Frames per view the model reads: `num_segments * frames_per_segment`."""
        return self.num_segments * self.frames_per_segment

    def build(self, input_shape):
        channels = self.input_channels * self.frames_per_segment
        frame_shape = (None,) + tuple(input_shape[-3:-1]) + (channels,)
        self.backbone.build(frame_shape)
        features = self.backbone.output.shape[-1]
        self.classifier.build((None, features))
        units = self.num_classes if self.head == "consensus" else self.relation_dim
        self.consensus.build((None, self.num_segments, units))
        self.built = True

    def _segment_frames(self, video):
        """`[..., T * L, H, W, C]` -> `[B' * T, H, W, L * C]` (frames of a segment on channels)."""
        shape = ops.shape(video)
        h, w, c = shape[-3], shape[-2], shape[-1]
        lps = self.frames_per_segment
        if lps == 1:
            return ops.reshape(video, (-1, h, w, c))
        x = ops.reshape(video, (-1, lps, h, w, c))
        return ops.reshape(ops.transpose(x, (0, 2, 3, 1, 4)), (-1, h, w, lps * c))

    def call(self, video, training=None):
        _views.check_clip(self.name, video, self.clip_length,
                          f" (num_segments={self.num_segments} x frames_per_segment={self.frames_per_segment})")
        x = self.backbone(self._segment_frames(video), training=training)
        x = self.dropout(self.pool(x), training=training)
        units = self.num_classes if self.head == "consensus" else self.relation_dim
        per_segment = ops.reshape(self.classifier(x), (-1, self.num_segments, units))
        return _views.average_views(self.consensus(per_segment, training=training), video)

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
            "head": self.head,
            "relation_dim": self.relation_dim,
            "frames_per_segment": self.frames_per_segment,
            "shift_every": self.shift_every,
            "backbone_style": self.backbone_style,
            "tdn_revision": self.tdn_revision,
            "shift_mode": self.shift_mode,
        }

    @classmethod
    def from_config(cls, config):
        # A TDN saved before `tdn_revision` existed was built as the authors' 2020 code.
        if config.get("temporal_module") == "tdn":
            config = {"tdn_revision": "2020", **config}
        return cls(**config)


def _fixed(kwargs, **fixed):
    """`kwargs` with `fixed` forced (a subclass's defining options win over a saved config)."""
    return {**kwargs, **fixed}


@tf_export("tfvideo.models.TSN")
@keras.saving.register_keras_serializable(package="tfvideo")
class TSN(Recognizer2D):
    """Temporal Segment Network (Wang et al. 2016): segment scores averaged."""

    def __init__(self, num_classes, num_segments=8, backbone="resnet50", **kwargs):
        super().__init__(num_classes, num_segments, backbone, **_fixed(kwargs, temporal_module=None, head="consensus"))


@tf_export("tfvideo.models.TSM")
@keras.saving.register_keras_serializable(package="tfvideo")
class TSM(Recognizer2D):
    """Temporal Shift Module network (Lin et al. 2019): residual shift in every block."""

    def __init__(self, num_classes, num_segments=8, backbone="resnet50", **kwargs):
        super().__init__(num_classes, num_segments, backbone, **_fixed(kwargs, temporal_module="shift", head="consensus"))


@tf_export("tfvideo.models.TRN")
@keras.saving.register_keras_serializable(package="tfvideo")
class TRN(Recognizer2D):
    """Temporal Relation Network (Zhou et al. 2018): multi-scale relations of segment features."""

    def __init__(self, num_classes, num_segments=8, backbone="bninception", **kwargs):
        super().__init__(num_classes, num_segments, backbone, **_fixed(kwargs, temporal_module=None, head="relation"))


@tf_export("tfvideo.models.TDN")
@keras.saving.register_keras_serializable(package="tfvideo")
class TDN(Recognizer2D):
    """Temporal Difference Network (Wang et al. 2021), as the authors' code (MCG-NJU/TDN).

    Reads `frames_per_segment` (default 5) consecutive frames per segment: input
    `[B, num_segments * frames_per_segment, H, W, C]`. ResNet backbones only; the centre
    frame feeds the RGB stem, the short-term module the frame differences (fused 0.5/0.5
    at 8 segments, 0.75/0.25 otherwise), the long-term module and a learnable shift sit
    in every block of stages 3-5 (see `tfvideo.models._tdn`). Their checkpoints convert
    with the `tdn` format.

    `revision` (alias of `tdn_revision`): "2021", the authors' current code (commit
    bcf28d9, the default), or "2020", their December 2020 release, whose long-term module
    re-reads the forward branch in the backward one (see docs/notes/models.md for which
    checkpoints need it).
    """

    def __init__(self, num_classes, num_segments=8, backbone="resnet50", frames_per_segment=5, revision=None,
                 **kwargs):
        if revision is not None:
            if kwargs.get("tdn_revision") not in (None, revision):
                raise ValueError(f"TDN: revision={revision!r} and tdn_revision={kwargs['tdn_revision']!r} disagree.")
            kwargs["tdn_revision"] = revision
        super().__init__(num_classes, num_segments, backbone, frames_per_segment=frames_per_segment,
                         **_fixed(kwargs, temporal_module="tdn", head="consensus"))


@tf_export("tfvideo.models.TANet")
@keras.saving.register_keras_serializable(package="tfvideo")
class TANet(Recognizer2D):
    """Temporal Adaptive Network (Liu et al. 2021): a TAM in every residual branch."""

    def __init__(self, num_classes, num_segments=8, backbone="resnet50", **kwargs):
        super().__init__(num_classes, num_segments, backbone, **_fixed(kwargs, temporal_module="tam", head="consensus"))
