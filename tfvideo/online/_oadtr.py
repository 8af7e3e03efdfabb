"""OadTR: online action detection with transformers (Wang et al. ICCV 2021), as the authors'.

Reference: wangxiang1230/OadTR `transformer_models/ViT.py` (`VisionTransformer_v3`),
`Transformer.py`, `decoder.py`, `attn.py`. The last `history` chunk embeddings plus a
task token (appended last, zero-initialised) with learned positions go through a pre-norm
transformer encoder and a final LayerNorm. A post-norm decoder of `decoder_queries`
zero-initialised queries (causal self-attention over the queries, cross-attention to the
encoder output, GELU feed-forward, final LayerNorm, dropout) anticipates the next chunks
(query s scores chunk t+1+s); the current chunk is classified from [task token ; mean of
the decoder outputs]. Defaults follow the paper: history 64, 3 encoder and 5 decoder
layers, 8 encoder and 4 decoder heads, 8 queries, width 1024, dropout 0.1.

The authors train on windows of `history` real chunks, scoring each window's last chunk;
`training_context` (history - 1) tells the trainers to give every training window that
much real history before the chunks it scores. Streaming keeps the window as state.
"""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export
from tfvideo.online._base import OnlineDetector, push, sliding_windows

_EPS = 1e-5  # torch.nn.LayerNorm's default, as the authors'


class _SelfAttention(layers.Layer):
    """The encoder's attention: one fused qkv projection without bias, an output projection."""

    def __init__(self, dim, heads, dropout, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.heads = dim, heads
        self.qkv = layers.Dense(3 * dim, use_bias=False, name="qkv")
        self.proj = layers.Dense(dim, name="proj")
        self.drop = layers.Dropout(dropout)

    def build(self, input_shape):
        self.qkv.build((None, None, self.dim))
        self.proj.build((None, None, self.dim))
        self.built = True

    def call(self, x, training=None):
        shape = ops.shape(x)
        d = self.dim // self.heads
        qkv = ops.transpose(ops.reshape(self.qkv(x), (shape[0], shape[1], 3, self.heads, d)), (2, 0, 3, 1, 4))
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, heads, N, d]
        weights = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / d**0.5, axis=-1)
        out = ops.matmul(self.drop(weights, training=training), v)
        return self.proj(ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (shape[0], shape[1], self.dim)))


class _EncoderBlock(layers.Layer):
    """Pre-norm: x + drop(attn(LN(x))); x + MLP(LN(x)) (Linear, GELU, dropout, Linear, dropout)."""

    def __init__(self, dim, heads, mlp_dim, dropout, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.norm1 = layers.LayerNormalization(epsilon=_EPS, name="norm1")
        self.attn = _SelfAttention(dim, heads, dropout, name="attn")
        self.norm2 = layers.LayerNormalization(epsilon=_EPS, name="norm2")
        self.mlp1 = layers.Dense(mlp_dim, activation="gelu", name="mlp1")
        self.mlp2 = layers.Dense(dim, name="mlp2")
        self.drop = layers.Dropout(dropout)

    def build(self, input_shape):
        shape = (None, None, self.dim)
        for layer in (self.norm1, self.attn, self.norm2, self.mlp1):
            layer.build(shape)
        self.mlp2.build(self.mlp1.compute_output_shape(shape))
        self.built = True

    def call(self, x, training=None):
        x = x + self.drop(self.attn(self.norm1(x), training=training), training=training)
        y = self.drop(self.mlp1(self.norm2(x)), training=training)
        return x + self.drop(self.mlp2(y), training=training)


class _DecoderBlock(layers.Layer):
    """Post-norm: LN(x + drop(causal self-attn)); LN(x + drop(cross-attn)); LN(x + FFN)."""

    def __init__(self, dim, heads, ff_dim, dropout, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.self_attn = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout, name="self_attn")
        self.norm1 = layers.LayerNormalization(epsilon=_EPS, name="norm1")
        self.cross_attn = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout, name="cross_attn")
        self.norm2 = layers.LayerNormalization(epsilon=_EPS, name="norm2")
        self.ff1 = layers.Dense(ff_dim, activation="gelu", name="ff1")
        self.ff2 = layers.Dense(dim, name="ff2")
        self.norm3 = layers.LayerNormalization(epsilon=_EPS, name="norm3")
        self.drop = layers.Dropout(dropout)

    def build(self, input_shape):
        shape = (None, None, self.dim)
        self.self_attn.build(shape, shape)
        self.cross_attn.build(shape, shape)
        for layer in (self.norm1, self.norm2, self.norm3, self.ff1):
            layer.build(shape)
        self.ff2.build(self.ff1.compute_output_shape(shape))
        self.built = True

    def call(self, x, memory, training=None):
        attended = self.self_attn(x, x, use_causal_mask=True, training=training)
        x = self.norm1(x + self.drop(attended, training=training))
        x = self.norm2(x + self.drop(self.cross_attn(x, memory, training=training), training=training))
        y = self.drop(self.ff2(self.drop(self.ff1(x), training=training)), training=training)
        return self.norm3(x + y)


@tf_export("tfvideo.online.OadTR")
@keras.saving.register_keras_serializable(package="tfvideo")
class OadTR(OnlineDetector):
    """OadTR. State: {"window": [B, history, embed_dim]} (last embeddings, oldest first).

    `call` returns {"scores": [B, T, K], "anticipation": [B, T, decoder_queries, K]}.
    `mlp_dim` is the width of both the encoder MLP and the decoder feed-forward (1024 each
    in the authors' configuration).
    """

    anticipates = True
    #: The authors' `classification_pred_loss_coef`.
    anticipation_weight = 0.5

    def __init__(self, feature_dim, num_classes, history=64, embed_dim=1024, encoder_layers=3, decoder_layers=5,
                 encoder_heads=8, decoder_heads=4, decoder_queries=8, mlp_dim=1024, dropout=0.1, **kwargs):
        super().__init__(feature_dim, num_classes, **kwargs)
        self.history_length, self.embed_dim = int(history), int(embed_dim)
        self.encoder_layers, self.decoder_layers = int(encoder_layers), int(decoder_layers)
        self.encoder_heads, self.decoder_heads = int(encoder_heads), int(decoder_heads)
        self.decoder_queries, self.mlp_dim, self.dropout_rate = int(decoder_queries), int(mlp_dim), float(dropout)
        for heads, what in ((encoder_heads, "encoder_heads"), (decoder_heads, "decoder_heads")):
            if embed_dim % heads:
                raise ValueError(f"OadTR: embed_dim={embed_dim} must be divisible by {what}={heads}.")
        self.embed = layers.Dense(embed_dim, name="embed")
        self.dropout = layers.Dropout(dropout, name="dropout")
        self.encoder = [_EncoderBlock(embed_dim, encoder_heads, mlp_dim, dropout, name=f"encoder_{i}")
                        for i in range(encoder_layers)]
        self.encoder_norm = layers.LayerNormalization(epsilon=_EPS, name="encoder_norm")
        self.decoder = [_DecoderBlock(embed_dim, decoder_heads, mlp_dim, dropout, name=f"decoder_{i}")
                        for i in range(decoder_layers)]
        self.decoder_norm = layers.LayerNormalization(epsilon=_EPS, name="decoder_norm")
        self.decoder_dropout = layers.Dropout(dropout, name="decoder_dropout")
        self.classifier = layers.Dense(num_classes, name="classifier")
        self.decoder_classifier = layers.Dense(num_classes, name="decoder_classifier")

    @property
    def training_context(self):
        """Chunks of real history each training window needs before the chunks it scores."""
        return self.history_length - 1

    def build(self, input_shape=None):
        e = self.embed_dim
        self.task_token = self.add_weight(name="task_token", shape=(1, 1, e), initializer="zeros")
        self.position = self.add_weight(name="position", shape=(1, self.history_length + 1, e),
                                        initializer=keras.initializers.TruncatedNormal(stddev=0.02))
        self.queries = self.add_weight(name="queries", shape=(1, self.decoder_queries, e), initializer="zeros")
        self.embed.build((None, self.feature_dim))
        for block in self.encoder + self.decoder:
            block.build((None, None, e))
        self.encoder_norm.build((None, None, e))
        self.decoder_norm.build((None, None, e))
        self.classifier.build((None, 2 * e))
        self.decoder_classifier.build((None, None, e))
        self.built = True

    def state_shapes(self):
        return {"window": (self.history_length, self.embed_dim)}

    def _read_window(self, window, training):
        """window [N, H, E] -> (logits [N, K], anticipation [N, Q, K])."""
        ones = ops.ones_like(window[:, :1, :1])
        tokens = ops.concatenate([window, ones * self.task_token], axis=1) + self.position
        x = self.dropout(tokens, training=training)
        for block in self.encoder:
            x = block(x, training=training)
        memory = self.encoder_norm(x)
        q = ones * self.queries
        for block in self.decoder:
            q = block(q, memory, training=training)
        q = self.decoder_dropout(self.decoder_norm(q), training=training)
        fused = ops.concatenate([memory[:, -1], ops.mean(q, axis=1)], axis=-1)
        return self.classifier(fused), self.decoder_classifier(q)

    def step(self, chunk, state, training=False):
        window = push(state["window"], self.embed(chunk))
        logits, _ = self._read_window(window, training)
        return logits, {"window": window}

    def call(self, features, training=None):
        self._check_features(features)
        x = self.embed(features)
        shape = ops.shape(x)
        windows = ops.reshape(sliding_windows(x, self.history_length), (-1, self.history_length, self.embed_dim))
        logits, future = self._read_window(windows, training)
        return {
            "scores": ops.reshape(logits, (shape[0], shape[1], self.num_classes)),
            "anticipation": ops.reshape(future, (shape[0], shape[1], self.decoder_queries, self.num_classes)),
        }

    @property
    def decoder_steps(self):
        return self.decoder_queries

    def get_config(self):
        return {
            **super().get_config(),
            "history": self.history_length,
            "embed_dim": self.embed_dim,
            "encoder_layers": self.encoder_layers,
            "decoder_layers": self.decoder_layers,
            "encoder_heads": self.encoder_heads,
            "decoder_heads": self.decoder_heads,
            "decoder_queries": self.decoder_queries,
            "mlp_dim": self.mlp_dim,
            "dropout": self.dropout_rate,
        }
