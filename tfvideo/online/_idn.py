"""Information Discrimination Network (IDN, Eun et al. CVPR 2020).

An information discrimination unit (IDU) is a GRU-like cell whose gates compare each past
chunk with the *current* chunk x0: the reset gate r = s(W_hr h + W_0r x0) decides how much
of the accumulated state is relevant to x0, the update gate z = s(W_xz x + W_0z x0) how
much the past chunk x is, then h' = (1 - z) h + z tanh(W_xh x + W_hh (r h)). Because the
gates depend on the current chunk, the IDU re-reads the window of the last `history`
chunk embeddings at every step (a ring of embeddings is the streaming state).

Training adds the paper's two losses on the early embedding module (the shared ReLU
embedding x -> x^e that feeds the IDU): a cross-entropy of a linear classifier on each
chunk's embedding (every chunk is the current information x0 of its own window), and a
contrastive loss between x0^e and each past x_t^e of the window (same action label: pulled
together; different: pushed `contrastive_margin` apart; `relevance_contrastive_loss`).
They enter through `compute_loss`, so `call`, `step` and the streaming state are those of
inference; weights 0 switch them off.
"""

import keras
from keras import layers, ops

from tfvideo.api._export import tf_export
from tfvideo.online._base import OnlineDetector, push, sliding_windows
from tfvideo.online._losses import SoftTargetCrossEntropy, relevance_contrastive_loss


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

    Training loss (`compute_loss`): the compiled loss plus
    `embedding_loss_weight` * cross-entropy of `embedding_classifier(embed(x))` against each
    chunk's target, plus `contrastive_loss_weight` * `relevance_contrastive_loss` of the
    embeddings with `contrastive_margin`. `ambiguous_index` is the target column both leave
    out (as the compiled `SoftTargetCrossEntropy` does). The embeddings are taken before
    dropout.
    """

    def __init__(self, feature_dim, num_classes, history=16, embed_dim=512, units=512, dropout=0.1,
                 embedding_loss_weight=1.0, contrastive_loss_weight=1.0, contrastive_margin=1.0,
                 ambiguous_index=None, **kwargs):
        super().__init__(feature_dim, num_classes, **kwargs)
        self.history_length, self.embed_dim, self.units = int(history), int(embed_dim), int(units)
        self.dropout_rate = float(dropout)
        self.embedding_loss_weight = float(embedding_loss_weight)
        self.contrastive_loss_weight = float(contrastive_loss_weight)
        self.contrastive_margin = float(contrastive_margin)
        self.ambiguous_index = None if ambiguous_index is None else int(ambiguous_index)
        for name in ("embedding_loss_weight", "contrastive_loss_weight", "contrastive_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"IDN: {name} must be >= 0, got {getattr(self, name)}.")
        self.embed = layers.Dense(embed_dim, activation="relu", name="embed")
        self.dropout = layers.Dropout(dropout, name="dropout")
        self.idu = InformationDiscriminationUnit(units, name="idu")
        self.classifier = layers.Dense(num_classes, name="classifier")
        # Training only: classifies the early embedding of each chunk (not used by call/step);
        # absent when its loss is off.
        self.embedding_classifier = (layers.Dense(num_classes, name="embedding_classifier")
                                     if self.embedding_loss_weight else None)

    def build(self, input_shape=None):
        self.embed.build((None, self.feature_dim))
        self.idu.build((None, self.embed_dim))
        self.classifier.build((None, self.units))
        if self.embedding_classifier is not None:
            self.embedding_classifier.build((None, self.embed_dim))
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

    def auxiliary_losses(self, features, targets, names=("embedding", "contrastive")):
        """Unweighted early-embedding losses of a batch: {"embedding": scalar, "contrastive": scalar}.

        features [B, T, D] (windows starting at stream start, as in `call`), targets [B, T, K];
        `names` picks which of the two to compute.
        """
        features = ops.convert_to_tensor(features)
        self._check_features(features)
        embedded = self.embed(features)
        losses = {}
        if "embedding" in names:
            if self.embedding_classifier is None:
                raise ValueError(f"{self.name}: no early-embedding classifier (embedding_loss_weight=0).")
            cross_entropy = SoftTargetCrossEntropy(ignore_index=self.ambiguous_index)
            losses["embedding"] = cross_entropy(targets, self.embedding_classifier(embedded))
        if "contrastive" in names:
            losses["contrastive"] = relevance_contrastive_loss(targets, embedded, self.history_length,
                                                               self.contrastive_margin, self.ambiguous_index)
        return losses

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss plus the weighted early-embedding losses (the paper's training loss)."""
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        weights = {"embedding": self.embedding_loss_weight, "contrastive": self.contrastive_loss_weight}
        names = [name for name, weight in weights.items() if weight]
        if x is None or y is None or not names:
            return loss
        targets = y["scores"] if isinstance(y, dict) else y
        for name, value in self.auxiliary_losses(x, targets, names).items():
            loss = loss + weights[name] * value
        return loss

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Files saved before the early-embedding losses existed hold none of their settings nor
        # the embedding classifier's weights: they load with the losses off.
        if "embedding_loss_weight" not in config:
            config = {**config, "embedding_loss_weight": 0.0, "contrastive_loss_weight": 0.0}
        return super().from_config(config, custom_objects=custom_objects)

    def get_config(self):
        return {
            **super().get_config(),
            "history": self.history_length,
            "embed_dim": self.embed_dim,
            "units": self.units,
            "dropout": self.dropout_rate,
            "embedding_loss_weight": self.embedding_loss_weight,
            "contrastive_loss_weight": self.contrastive_loss_weight,
            "contrastive_margin": self.contrastive_margin,
            "ambiguous_index": self.ambiguous_index,
        }
