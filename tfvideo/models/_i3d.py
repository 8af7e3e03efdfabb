"""I3D (Carreira & Zisserman 2017): 2D backbones inflated to 3D, optional non-local blocks."""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export
from tfvideo.layers._non_local import NonLocalBlock
from tfvideo.models import _backbones, _inflate, _views

_I3D_BACKBONES = ("inception_v1", "resnet50", "resnet18", "resnet10", "resnet101")
# Non-local paper (Wang et al. 2018) and MMAction2's I3D-NL: 5 blocks, after blocks 2, 4 of res3 and
# 2, 4, 6 of res4 (non_local=((0, 0, 0), (0, 1, 0, 1), (0, 1, 0, 1, 0, 1), (0, 0, 0))).
_NON_LOCAL_R50 = ("conv3_block2_out", "conv3_block4_out", "conv4_block2_out", "conv4_block4_out", "conv4_block6_out")
_NON_LOCAL_INCEPTION = ("Mixed_3c_concat", "Mixed_4c_concat", "Mixed_4e_concat")


def inception_v1_inflation(model_2d):
    """I3D's temporal extents for Inception-v1: 7x7x7/2 stem, 3x3x3 convs, pools 3a/2a 1xkxk."""
    kernels = {"MaxPool_4a_3x3": 3, "MaxPool_5a_2x2": 2}
    kernels.update({layer.name: 3 for layer in model_2d.layers if layer.name.endswith("Branch_3_pool")})
    strides = {"Conv2d_1a_7x7_conv": 2, "MaxPool_4a_3x3": 2, "MaxPool_5a_2x2": 2}
    return kernels, strides, {}


def resnet_inflation(model_2d):
    """I3D ResNet (3x1x1 style, as the non-local paper's I3D baseline): 5x7x7/2 stem,
    1x3x3/2 pool, a 2x1x1/2 pool after res2, and the first 1x1 conv of every other
    block inflated to 3x1x1 (all blocks of res2, blocks 1, 3, ... of res3/res4, block 2
    of res5); 3x3 convs stay 1x3x3."""
    kernels, strides = {"conv1_conv": 5}, {"conv1_conv": 2, "pool1_pool": 2}
    for layer in model_2d.layers:
        n = layer.name
        if n.endswith("_2_conv") or (n.endswith("_conv") and "block" in n and not n.endswith("_1_conv")):
            kernels[n] = 1
        elif n.endswith("_1_conv"):
            stage, block = int(n[4]), int(n.split("_block")[1].split("_")[0])
            inflate = stage == 2 or (stage in (3, 4) and block % 2 == 1) or (stage == 5 and block == 2)
            kernels[n] = 3 if inflate else 1
    return kernels, strides, {"conv2_block3_out": (2, 2)}


@keras.saving.register_keras_serializable(package="tfvideo")
class WindowAveragePool3D(keras.layers.Layer):
    """`[N, T, H, W, C] -> [N, C]`: the mean over positions of a VALID, stride-1 average pool.

    DeepMind's I3D head averages Mixed_5c over [2, 7, 7] windows (VALID), applies a 1x1x1
    conv and averages the logits over the remaining positions; the conv being linear, that
    is the conv of this weighted mean (interior frames weigh twice the end ones). A window
    larger than the feature map is clipped to it (smaller inputs than 224 x 224).
    """

    def __init__(self, pool_size=(2, 7, 7), **kwargs):
        super().__init__(**kwargs)
        self.pool_size = tuple(int(k) for k in pool_size)

    def call(self, x):
        for axis, k in zip((1, 2, 3), self.pool_size):
            n = ops.shape(x)[axis]
            k = ops.minimum(k, n)
            i = ops.arange(n)
            # Windows (start s, 0 <= s <= n - k) covering position i, over all windows' cells.
            count = ops.minimum(i, n - k) - ops.maximum(i - k + 1, 0) + 1
            weight = ops.cast(count, x.dtype) / ops.cast((n - k + 1) * k, x.dtype)
            shape = [1, 1, 1, 1, 1]
            shape[axis] = -1
            x = ops.sum(x * ops.reshape(weight, shape), axis=axis, keepdims=True)
        return x[:, 0, 0, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package="tfvideo")
class InputAffine(keras.layers.Layer):
    """`x * scale + offset` per channel, with fixed (non-trainable) `scale` and `offset` `[C]`.

    DeepMind's I3D was trained on RGB in [-1, 1]; tfvideo's clips are ImageNet mean/std
    normalised. The `kinetics_i3d` conversion sets scale 2 std, offset 2 mean - 1, which maps
    tfvideo's input to theirs before the stem's zero padding: exact everywhere. (Folding it
    into the stem conv instead would not be: SAME padding then pads the normalised input's
    zeros, which are not [-1, 1]'s zeros.) Identity unless a conversion sets it; as weights,
    it travels with the model through `--init_checkpoint`, export and serving.
    """

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.scale = self.add_weight(shape=(channels,), initializer="ones", trainable=False, name="scale")
        self.offset = self.add_weight(shape=(channels,), initializer="zeros", trainable=False, name="offset")

    def call(self, x):
        return x * ops.cast(self.scale, x.dtype) + ops.cast(self.offset, x.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@tf_export("tfvideo.models.I3D")
@keras.saving.register_keras_serializable(package="tfvideo")
class I3D(keras.Model):
    """Inflated 3D ConvNet: `[B, T, H, W, C]` or `[B, V, T, H, W, C]` -> logits `[B, K]`.

    The backbone is the 2D network (`inception_v1` as in the paper, or a ResNet)
    inflated by `tfvideo.models.inflate`; `load_2d_weights` starts it from a 2D model's
    weights (e.g. ImageNet). `non_local=True` inserts `NonLocalBlock`s (5 in res3/res4
    for ResNets; after Mixed_3c/4c/4e for Inception-v1).

    With `inception_v1` the network is DeepMind's (kinetics-i3d `i3d.py`): BN without
    scale, TF SAME padding, and the head averages the logits of [2, 7, 7] VALID windows
    (`WindowAveragePool3D`), so their checkpoints load (`kinetics_i3d` format); an
    `InputAffine` ("input_range") before the backbone maps tfvideo's normalised clips to
    the [-1, 1] their weights expect once converted (identity otherwise).
    ResNet backbones pool globally.
    """

    def __init__(self, num_classes, num_frames=32, backbone="inception_v1", width=None, dropout=0.5, input_channels=3,
                 time_padding=None, non_local=False, non_local_mode="embedded_gaussian", **kwargs):
        super().__init__(**kwargs)
        if backbone not in _I3D_BACKBONES:
            raise ValueError(f"I3D: backbone={backbone!r} must be one of {_I3D_BACKBONES}.")
        self.num_classes = int(num_classes)
        self.num_frames = int(num_frames)
        self.backbone_name = backbone
        self.width = None if width is None else int(width)
        self.dropout_rate = float(dropout)
        self.input_channels = int(input_channels)
        if time_padding is None:  # The references: TF "same" (DeepMind's I3D), PyTorch's (MMAction2's ResNets).
            time_padding = "zeros" if backbone == "inception_v1" else "symmetric"
        self.time_padding = time_padding
        self.non_local = bool(non_local)
        self.non_local_mode = non_local_mode
        # The 2D network is only the template of the inflation; it is not kept.
        self.backbone = self._inflated(self.backbone_2d())
        self.pool = layers.GlobalAveragePooling3D(name="pool")
        self.logits_pool = (WindowAveragePool3D((2, 7, 7), name="logits_pool") if backbone == "inception_v1"
                            else self.pool)
        self.dropout = layers.Dropout(self.dropout_rate, name="dropout")
        self.classifier = layers.Dense(self.num_classes, name="classifier", dtype="float32")
        self.input_range = InputAffine(name="input_range") if backbone == "inception_v1" else None

    def _inflated(self, model_2d):
        spec = inception_v1_inflation if self.backbone_name == "inception_v1" else resnet_inflation
        kernels, strides, extra_pools = spec(model_2d)
        nl_after = set()
        if self.non_local:
            nl_after = set(_NON_LOCAL_INCEPTION if self.backbone_name == "inception_v1" else _NON_LOCAL_R50)
            nl_after &= {layer.name for layer in model_2d.layers}

        def after_layer(name, x):
            if name in extra_pools:
                t, s = extra_pools[name]
                x = layers.MaxPooling3D((t, 1, 1), strides=(s, 1, 1), padding="same", name=f"{name}_time_pool")(x)
            if name in nl_after:
                x = NonLocalBlock(self.non_local_mode, name=f"{name}_non_local")(x)
            return x

        # Trained from scratch, the 3D layers keep their own initialization; `load_2d_weights`
        # inflates pretrained 2D weights into them.
        return _inflate.inflate(model_2d, self.num_frames, kernels, strides, self.time_padding, after_layer,
                                copy_weights=False, name=f"i3d_{self.backbone_name}")

    def backbone_2d(self):
        """A fresh 2D backbone with this model's configuration (the inflation's template)."""
        return _backbones.backbone(self.backbone_name, self.width, self.input_channels)

    def load_2d_weights(self, model_2d):
        """Inflates the weights of a 2D backbone with this backbone's layer names."""
        return _inflate.copy_inflated_weights(model_2d, self.backbone)

    def build(self, input_shape):
        clip_shape = (None,) + tuple(input_shape[-4:])
        if self.input_range is not None:
            self.input_range.build(clip_shape)
        self.backbone.build(clip_shape)
        self.classifier.build((None, self.backbone.output.shape[-1]))
        self.built = True

    def features(self, video, training=None):
        """Globally pooled features `[N, F]` of clips `[N, T, H, W, C]`."""
        return self.pool(self.backbone(self._input(video), training=training))

    def _input(self, clips):
        return clips if self.input_range is None else self.input_range(clips)

    def call(self, video, training=None):
        _views.check_clip(self.name, video, self.num_frames, " (num_frames)")
        x = self.logits_pool(self.backbone(self._input(_views.flatten_views(video)), training=training))
        return _views.average_views(self.classifier(self.dropout(x, training=training)), video)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "num_frames": self.num_frames,
            "backbone": self.backbone_name,
            "width": self.width,
            "dropout": self.dropout_rate,
            "input_channels": self.input_channels,
            "time_padding": self.time_padding,
            "non_local": self.non_local,
            "non_local_mode": self.non_local_mode,
        }
