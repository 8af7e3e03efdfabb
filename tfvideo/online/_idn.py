"""Information Discrimination Network (IDN, Eun et al. CVPR 2020).

An information discrimination unit (IDU) is a GRU-like cell whose gates compare each past
chunk with the *current* chunk x0: the reset gate r = s(W_hr h + W_0r x0) decides how much
of the accumulated state is relevant to x0, the update gate z = s(W_xz x + W_0z x0) how
much the past chunk x is, then h' = (1 - z) h + z tanh(W_xh x + W_hh (r h)). Because the
gates depend on the current chunk, the IDU re-reads the window of the last `history`
chunk embeddings at every step (a ring of embeddings is the streaming state).
"""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export
from tfvideo.online._base import OnlineDetector, push, sliding_windows


@tf_export("tfvideo.online.InformationDiscriminationUnit")
@keras.saving.register_keras_serializable(package="tfvideo")
class InformationDiscriminationUnit(layers.Layer):
    """The IDU cell: (x [B, E], h [B, U], x0 [B, E]) -> h' [B, U]."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        e, u = int(input_shape[-1]), self.units
        self.hidden_gate = self.add_weight(name="hidden_gate", shape=(u, u), initializer="orthogonal")
        self.current_gates = self.add_weight(name="current_gates", shape=(e, 2 * u), initializer="glorot_uniform")
        self.input_kernel = self.add_weight(name="input_kernel", shape=(e, 2 * u), initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(u, u), initializer="orthogonal")
        self.bias = self.add_weight(name="bias", shape=(3 * u,), initializer="zeros")
        self.built = True

    def call(self, x, h, x0):
        u = self.units
        gate_x0 = ops.matmul(x0, self.current_gates)
        gate_x = ops.matmul(x, self.input_kernel)
        reset = ops.sigmoid(ops.matmul(h, self.hidden_gate) + gate_x0[:, :u] + self.bias[:u])
        update = ops.sigmoid(gate_x[:, :u] + gate_x0[:, u:] + self.bias[u : 2 * u])
        candidate = ops.tanh(gate_x[:, u:] + ops.matmul(reset * h, self.recurrent_kernel) + self.bias[2 * u :])
        return (1.0 - update) * h + update * candidate

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@tf_export("tfvideo.online.IDN")
@keras.saving.register_keras_serializable(package="tfvideo")
class IDN(OnlineDetector):
    """Early embedding -> IDU over the last `history` chunks (gated by the current one) -> classifier.

    State: {"window": [B, history, embed_dim]} (the last embeddings, oldest first).
    """

    def __init__(self, feature_dim, num_classes, history=16, embed_dim=512, units=512, dropout=0.1, **kwargs):
        super().__init__(feature_dim, num_classes, **kwargs)
        self.history_length, self.embed_dim, self.units = int(history), int(embed_dim), int(units)
        self.dropout_rate = float(dropout)
        self.embed = layers.Dense(embed_dim, activation="relu", name="embed")
        self.dropout = layers.Dropout(dropout, name="dropout")
        self.idu = InformationDiscriminationUnit(units, name="idu")
        self.classifier = layers.Dense(num_classes, name="classifier")

    def build(self, input_shape=None):
        self.embed.build((None, self.feature_dim))
        self.idu.build((None, self.embed_dim))
        self.classifier.build((None, self.units))
        self.built = True

    def state_shapes(self):
        return {"window": (self.history_length, self.embed_dim)}

    def _read_window(self, window, current):
        """window [N, H, E] (oldest first, current last), current [N, E] -> logits [N, K]."""

        def scan_fn(h, x_t):
            h = self.idu(x_t, h, current)
            return h, h  # Keras' TF scan needs the output to mirror the carry.

        h0 = ops.zeros_like(current[:, :1]) * ops.zeros((1, self.units), current.dtype)
        h, _ = ops.scan(scan_fn, h0, ops.transpose(window, (1, 0, 2)))
        return self.classifier(h)

    def step(self, chunk, state, training=False):
        x = self.dropout(self.embed(chunk), training=training)
        window = push(state["window"], x)
        return self._read_window(window, x), {"window": window}

    def call(self, features, training=None):
        self._check_features(features)
        x = self.dropout(self.embed(features), training=training)
        shape = ops.shape(x)
        windows = ops.reshape(sliding_windows(x, self.history_length), (-1, self.history_length, self.embed_dim))
        logits = self._read_window(windows, ops.reshape(x, (-1, self.embed_dim)))
        return {"scores": ops.reshape(logits, (shape[0], shape[1], self.num_classes))}

    def get_config(self):
        return {
            **super().get_config(),
            "history": self.history_length,
            "embed_dim": self.embed_dim,
            "units": self.units,
            "dropout": self.dropout_rate,
        }
