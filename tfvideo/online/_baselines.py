"""Baselines: a GRU over chunk features (O(1) per chunk) and a memoryless chunk classifier."""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export
from tfvideo.online._base import OnlineDetector


@tf_export("tfvideo.online.GRUDetector")
@keras.saving.register_keras_serializable(package="tfvideo")
class GRUDetector(OnlineDetector):
    """Chunk embedding -> GRU cell -> classifier. State: {"h": [B, units]}."""

    def __init__(self, feature_dim, num_classes, embed_dim=512, units=512, dropout=0.1, **kwargs):
        super().__init__(feature_dim, num_classes, **kwargs)
        self.embed_dim, self.units, self.dropout_rate = int(embed_dim), int(units), float(dropout)
        self.embed = layers.Dense(embed_dim, activation="relu", name="embed")
        self.dropout = layers.Dropout(dropout, name="dropout")
        self.cell = layers.GRUCell(units, name="gru")
        self.classifier = layers.Dense(num_classes, name="classifier")

    def build(self, input_shape=None):
        self.embed.build((None, self.feature_dim))
        self.cell.build((None, self.embed_dim))
        self.classifier.build((None, self.units))
        self.built = True

    def state_shapes(self):
        return {"h": (self.units,)}

    def step(self, chunk, state, training=False):
        x = self.dropout(self.embed(chunk), training=training)
        h, _ = self.cell(x, [state["h"]], training=training)
        return self.classifier(h), {"h": h}

    def call(self, features, training=None):
        self._check_features(features)
        x = self.dropout(self.embed(features), training=training)

        def scan_fn(h, x_t):
            h, _ = self.cell(x_t, [h], training=training)
            return h, h  # Keras' TF scan needs the output to mirror the carry.

        h0 = ops.zeros_like(x[:, 0, :1]) * ops.zeros((1, self.units), x.dtype)
        _, hs = ops.scan(scan_fn, h0, ops.transpose(x, (1, 0, 2)))
        return {"scores": self.classifier(ops.transpose(hs, (1, 0, 2)))}

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "units": self.units, "dropout": self.dropout_rate}


@tf_export("tfvideo.online.ChunkClassifier")
@keras.saving.register_keras_serializable(package="tfvideo")
class ChunkClassifier(OnlineDetector):
    """A memoryless MLP on each chunk alone: the no-history baseline. Its state is empty."""

    def __init__(self, feature_dim, num_classes, hidden_dim=512, dropout=0.1, **kwargs):
        super().__init__(feature_dim, num_classes, **kwargs)
        self.hidden_dim, self.dropout_rate = int(hidden_dim), float(dropout)
        self.hidden = layers.Dense(hidden_dim, activation="relu", name="hidden")
        self.dropout = layers.Dropout(dropout, name="dropout")
        self.classifier = layers.Dense(num_classes, name="classifier")

    def build(self, input_shape=None):
        self.hidden.build((None, self.feature_dim))
        self.classifier.build((None, self.hidden_dim))
        self.built = True

    def state_shapes(self):
        return {}

    def step(self, chunk, state, training=False):
        return self.classifier(self.dropout(self.hidden(chunk), training=training)), dict(state)

    def call(self, features, training=None):
        self._check_features(features)
        return {"scores": self.classifier(self.dropout(self.hidden(features), training=training))}

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "dropout": self.dropout_rate}
