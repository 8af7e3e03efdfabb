"""Temporal Recurrent Network (TRN, Xu et al. ICCV 2019).

At chunk t a decoder LSTM, started from the encoder's previous state, rolls out
`decoder_steps` anticipated future steps (each fed the embedding of its own predicted
scores); the mean of its hidden states, projected, is the future representation fused
(concatenated) with the current chunk's embedding as the encoder LSTM's input. The encoder
hidden state classifies chunk t; the decoder's per-step scores are trained to anticipate
the labels of chunks t+1 .. t+decoder_steps. Constant cost per chunk.
"""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export
from tfvideo.online._base import OnlineDetector


@tf_export("tfvideo.online.TemporalRecurrentNetwork")
@keras.saving.register_keras_serializable(package="tfvideo")
class TemporalRecurrentNetwork(OnlineDetector):
    """TRN. State: encoder LSTM {"h", "c"}: [B, hidden_dim] each.

    `call` returns {"scores": [B, T, K], "anticipation": [B, T, decoder_steps, K]}.
    """

    anticipates = True

    def __init__(self, feature_dim, num_classes, embed_dim=512, hidden_dim=512, future_dim=256,
                 decoder_steps=8, dropout=0.1, **kwargs):
        super().__init__(feature_dim, num_classes, **kwargs)
        self.embed_dim, self.hidden_dim, self.future_dim = int(embed_dim), int(hidden_dim), int(future_dim)
        self.decoder_steps, self.dropout_rate = int(decoder_steps), float(dropout)
        self.embed = layers.Dense(embed_dim, activation="relu", name="embed")
        self.dropout = layers.Dropout(dropout, name="dropout")
        self.encoder = layers.LSTMCell(hidden_dim, name="encoder")
        self.decoder = layers.LSTMCell(hidden_dim, name="decoder")
        self.score_embed = layers.Dense(future_dim, activation="relu", name="score_embed")
        self.future = layers.Dense(future_dim, activation="relu", name="future")
        self.classifier = layers.Dense(num_classes, name="classifier")
        self.decoder_classifier = layers.Dense(num_classes, name="decoder_classifier")

    def build(self, input_shape=None):
        self.embed.build((None, self.feature_dim))
        self.encoder.build((None, self.embed_dim + self.future_dim))
        self.decoder.build((None, self.future_dim))
        self.score_embed.build((None, self.num_classes))
        self.future.build((None, self.hidden_dim))
        self.classifier.build((None, self.hidden_dim))
        self.decoder_classifier.build((None, self.hidden_dim))
        self.built = True

    def state_shapes(self):
        return {"h": (self.hidden_dim,), "c": (self.hidden_dim,)}

    def _cell(self, x, h, c, training):
        """x: embedded chunk [B, E]; (h, c) the encoder state after chunk t-1."""
        dec_h, dec_c = h, c
        dec_in = ops.zeros_like(h[:, :1]) * ops.zeros((1, self.future_dim), h.dtype)
        hidden_sum, dec_logits = 0.0, []
        for _ in range(self.decoder_steps):
            out, (dec_h, dec_c) = self.decoder(dec_in, [dec_h, dec_c], training=training)
            logits = self.decoder_classifier(out)
            dec_logits.append(logits)
            dec_in = self.score_embed(ops.softmax(logits, axis=-1))
            hidden_sum = hidden_sum + out
        future = self.future(hidden_sum / self.decoder_steps)
        out, (h, c) = self.encoder(ops.concatenate([x, future], axis=-1), [h, c], training=training)
        return h, c, ops.stack(dec_logits, axis=1)

    def step(self, chunk, state, training=False):
        x = self.dropout(self.embed(chunk), training=training)
        h, c, _ = self._cell(x, state["h"], state["c"], training)
        return self.classifier(h), {"h": h, "c": c}

    def call(self, features, training=None):
        self._check_features(features)
        x = self.dropout(self.embed(features), training=training)

        def scan_fn(carry, x_t):
            h, c, _ = carry
            carry = self._cell(x_t, h, c, training)
            return carry, carry  # Keras' TF scan needs the output to mirror the carry.

        zeros = ops.zeros_like(x[:, 0, :1])
        init = (zeros * ops.zeros((1, self.hidden_dim)), zeros * ops.zeros((1, self.hidden_dim)),
                zeros[:, :, None] * ops.zeros((1, self.decoder_steps, self.num_classes)))
        _, (hs, _, dec) = ops.scan(scan_fn, init, ops.transpose(x, (1, 0, 2)))
        return {
            "scores": self.classifier(ops.transpose(hs, (1, 0, 2))),
            "anticipation": ops.transpose(dec, (1, 0, 2, 3)),
        }

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "hidden_dim": self.hidden_dim,
            "future_dim": self.future_dim,
            "decoder_steps": self.decoder_steps,
            "dropout": self.dropout_rate,
        }
