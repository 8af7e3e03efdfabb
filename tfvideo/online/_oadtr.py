"""OadTR: online action detection with transformers (Wang et al. ICCV 2021).

The last `history` chunk embeddings plus a learned task token go through a transformer
encoder; a decoder with `decoder_queries` learned queries attends to the encoder output and
predicts the next chunks (anticipation); the current chunk is classified from
[task token ; mean of decoder outputs]. Defaults follow the paper: history 64, 3 encoder
and 5 decoder layers, 8 encoder and 4 decoder heads, 8 queries, width 1024, dropout 0.1.
Streaming keeps the window of the last `history` embeddings as state.
"""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export
from tfvideo.online._base import OnlineDetector, push, sliding_windows


class _Block(layers.Layer):
    """Pre-norm transformer block: self-attention, optional cross-attention, MLP."""

    def __init__(self, dim, heads, mlp_dim, dropout, cross, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.cross = dim, cross
        self.norm1 = layers.LayerNormalization(epsilon=1e-6, name="norm1")
        self.attn = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout, name="attn")
        if cross:
            self.norm_cross = layers.LayerNormalization(epsilon=1e-6, name="norm_cross")
            self.cross_attn = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout, name="cross_attn")
        self.norm2 = layers.LayerNormalization(epsilon=1e-6, name="norm2")
        self.mlp1 = layers.Dense(mlp_dim, activation="gelu", name="mlp1")
        self.mlp2 = layers.Dense(dim, name="mlp2")
        self.drop = layers.Dropout(dropout)

    def build(self, input_shape):
        shape = (None, None, self.dim)
        for norm in (self.norm1, self.norm2) + ((self.norm_cross,) if self.cross else ()):
            norm.build(shape)
        self.attn.build(shape, shape)
        if self.cross:
            self.cross_attn.build(shape, shape)
        self.mlp1.build(shape)
        self.mlp2.build(self.mlp1.compute_output_shape(shape))
        self.built = True

    def call(self, x, memory=None, training=None):
        y = self.norm1(x)
        x = x + self.drop(self.attn(y, y, training=training), training=training)
        if self.cross:
            x = x + self.drop(self.cross_attn(self.norm_cross(x), memory, training=training), training=training)
        y = self.mlp2(self.drop(self.mlp1(self.norm2(x)), training=training))
        return x + self.drop(y, training=training)


@tf_export("tfvideo.online.OadTR")
@keras.saving.register_keras_serializable(package="tfvideo")
class OadTR(OnlineDetector):
    """OadTR. State: {"window": [B, history, embed_dim]} (last embeddings, oldest first).

    `call` returns {"scores": [B, T, K], "anticipation": [B, T, decoder_queries, K]}.
    """

    anticipates = True

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
        self.encoder = [_Block(embed_dim, encoder_heads, mlp_dim, dropout, False, name=f"encoder_{i}")
                        for i in range(encoder_layers)]
        self.encoder_norm = layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")
        self.decoder = [_Block(embed_dim, decoder_heads, mlp_dim, dropout, True, name=f"decoder_{i}")
                        for i in range(decoder_layers)]
        self.decoder_norm = layers.LayerNormalization(epsilon=1e-6, name="decoder_norm")
        self.classifier = layers.Dense(num_classes, name="classifier")
        self.decoder_classifier = layers.Dense(num_classes, name="decoder_classifier")

    def build(self, input_shape=None):
        e = self.embed_dim
        self.task_token = self.add_weight(name="task_token", shape=(1, 1, e), initializer="zeros")
        self.position = self.add_weight(name="position", shape=(1, self.history_length + 1, e),
                                        initializer=keras.initializers.TruncatedNormal(stddev=0.02))
        self.queries = self.add_weight(name="queries", shape=(1, self.decoder_queries, e),
                                       initializer=keras.initializers.TruncatedNormal(stddev=0.02))
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
        q = self.decoder_norm(q)
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
