"""Temporal Recurrent Network (TRN, Xu et al. ICCV 2019), as the authors' TRN.pytorch.

Reference: xumingze0308/TRN.pytorch `lib/models/generalized_trn.py` (`GeneralizedTRN`).
At chunk t the encoder LSTM reads [embedding of chunk t ; future representation of
chunk t-1] and its hidden state h(t) is classified: the score of chunk t. Then a decoder
LSTM starts from (ReLU(W h(t)), ReLU(W' c(t))) and rolls out `decoder_steps` steps, fed
zeros first and then the embedding of its previous step's scores; step s scores chunk
t+s (s = 1..S). The mean of the projected decoder states is the future representation
the encoder reads at t+1. One classifier serves encoder and decoder. Constant cost per chunk.
"""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export
from tfvideo.online._base import OnlineDetector


@tf_export("tfvideo.online.TemporalRecurrentNetwork")
@keras.saving.register_keras_serializable(package="tfvideo")
class TemporalRecurrentNetwork(OnlineDetector):
    """TRN. State: encoder LSTM {"h", "c"} [B, hidden_dim] and "future" [B, embed_dim].

    `call` returns {"scores": [B, T, K], "anticipation": [B, T, decoder_steps, K]}
    (anticipation[:, t, s] scores chunk t + 1 + s). Defaults are the authors' THUMOS'14
    configuration: embedding as wide as the input features (`embed_dim=None`), hidden
    size 4096, 8 decoder steps, dropout 0.1.
    """

    anticipates = True
    #: TRN.pytorch adds the encoder and decoder cross-entropies with equal weights.
    anticipation_weight = 1.0

    def __init__(self, feature_dim, num_classes, embed_dim=None, hidden_dim=4096, decoder_steps=8, dropout=0.1,
                 **kwargs):
        super().__init__(feature_dim, num_classes, **kwargs)
        self.embed_dim = self.feature_dim if embed_dim is None else int(embed_dim)
        self.hidden_dim, self.decoder_steps, self.dropout_rate = int(hidden_dim), int(decoder_steps), float(dropout)
        if min(self.embed_dim, self.hidden_dim, self.decoder_steps) < 1:
            raise ValueError(f"TemporalRecurrentNetwork: embed_dim={embed_dim}, hidden_dim={hidden_dim} and "
                             f"decoder_steps={decoder_steps} must be >= 1.")
        h = self.hidden_dim
        self.embed = layers.Dense(self.embed_dim, activation="relu", name="embed")
        self.dropout = layers.Dropout(dropout, name="dropout")
        self.encoder = layers.LSTMCell(h, name="encoder")
        self.decoder = layers.LSTMCell(h, name="decoder")
        self.hidden_transform = layers.Dense(h, activation="relu", name="hidden_transform")
        self.cell_transform = layers.Dense(h, activation="relu", name="cell_transform")
        self.score_embed = layers.Dense(h, activation="relu", name="score_embed")
        self.future = layers.Dense(self.embed_dim, activation="relu", name="future")
        self.classifier = layers.Dense(num_classes, name="classifier")

    def build(self, input_shape=None):
        h, e = self.hidden_dim, self.embed_dim
        self.embed.build((None, self.feature_dim))
        self.encoder.build((None, 2 * e))
        self.decoder.build((None, h))
        for layer in (self.hidden_transform, self.cell_transform, self.future, self.classifier):
            layer.build((None, h))
        self.score_embed.build((None, self.num_classes))
        self.built = True

    def state_shapes(self):
        return {"h": (self.hidden_dim,), "c": (self.hidden_dim,), "future": (self.embed_dim,)}

    def _cell(self, x, h, c, future, training):
        """x: embedded chunk t [B, E]; state after chunk t-1 -> (h, c, future, scores, anticipation)."""
        _, (h, c) = self.encoder(self.dropout(ops.concatenate([x, future], axis=-1), training=training), [h, c],
                                 training=training)
        scores = self.classifier(self.dropout(h, training=training))
        dec_h, dec_c = self.hidden_transform(h), self.cell_transform(c)
        dec_in = ops.zeros_like(h)
        future, anticipation = 0.0, []
        for _ in range(self.decoder_steps):
            _, (dec_h, dec_c) = self.decoder(self.dropout(dec_in, training=training), [dec_h, dec_c],
                                             training=training)
            logits = self.classifier(self.dropout(dec_h, training=training))
            anticipation.append(logits)
            dec_in = self.score_embed(logits)
            future = future + self.future(dec_h)
        return h, c, future / self.decoder_steps, scores, ops.stack(anticipation, axis=1)

    def step(self, chunk, state, training=False):
        h, c, future, scores, _ = self._cell(self.embed(chunk), state["h"], state["c"], state["future"], training)
        return scores, {"h": h, "c": c, "future": future}

    def call(self, features, training=None):
        self._check_features(features)
        x = self.embed(features)

        def scan_fn(carry, x_t):
            h, c, future, _, _ = carry
            carry = self._cell(x_t, h, c, future, training)
            return carry, carry  # Keras' TF scan needs the output to mirror the carry.

        zeros = ops.zeros_like(x[:, 0, :1])
        init = (zeros * ops.zeros((1, self.hidden_dim)), zeros * ops.zeros((1, self.hidden_dim)),
                zeros * ops.zeros((1, self.embed_dim)), zeros * ops.zeros((1, self.num_classes)),
                zeros[:, :, None] * ops.zeros((1, self.decoder_steps, self.num_classes)))
        _, (_, _, _, scores, anticipation) = ops.scan(scan_fn, init, ops.transpose(x, (1, 0, 2)))
        return {"scores": ops.transpose(scores, (1, 0, 2)), "anticipation": ops.transpose(anticipation, (1, 0, 2, 3))}

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "hidden_dim": self.hidden_dim,
            "decoder_steps": self.decoder_steps,
            "dropout": self.dropout_rate,
        }
