"""Independent PyTorch forward passes of the online detectors, written from the papers and
the authors' code read as documentation; module names reproduce their state_dict keys.

- TRN: xumingze0308/TRN.pytorch lib/models/generalized_trn.py (`GeneralizedTRN`) and
  lib/models/feature_extractor.py (`THUMOSFeatureExtractor.input_linear`).
- OadTR: wangxiang1230/OadTR transformer_models/ViT.py (`VisionTransformer_v3`),
  Transformer.py (pre-norm encoder), decoder.py (post-norm `DecoderLayer`), attn.py
  (`FullAttention`, causal in decoder self-attention, `AttentionLayer`), the encoder's
  `SelfAttention` (fused qkv without bias) and `LearnedPositionalEncoding` (`pe` embedding).
Only the parity tests import it (torch is optional).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F


def _fc_relu(n_in, n_out):
    return nn.Sequential(nn.Linear(n_in, n_out), nn.ReLU())


class _FeatureExtractor(nn.Module):
    def __init__(self, feature_dim, fusion_size):
        super().__init__()
        self.input_linear = _fc_relu(feature_dim, fusion_size)


class TRN(nn.Module):
    """Encoder at t, decoder from transformed (h(t), c(t)) for t+1..t+S, one classifier."""

    def __init__(self, feature_dim, num_classes, fusion_size, hidden_size, dec_steps):
        super().__init__()
        self.hidden, self.future_size, self.steps = hidden_size, fusion_size, dec_steps
        self.feature_extractor = _FeatureExtractor(feature_dim, fusion_size)
        self.hx_trans = _fc_relu(hidden_size, hidden_size)
        self.cx_trans = _fc_relu(hidden_size, hidden_size)
        self.fusion_linear = _fc_relu(num_classes, hidden_size)
        self.future_linear = _fc_relu(hidden_size, fusion_size)
        self.enc_cell = nn.LSTMCell(2 * fusion_size, hidden_size)
        self.dec_cell = nn.LSTMCell(hidden_size, hidden_size)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, features):
        """features [B, T, D] -> (scores [B, T, K], anticipation [B, T, S, K])."""
        b = features.shape[0]
        h = c = features.new_zeros(b, self.hidden)
        future = features.new_zeros(b, self.future_size)
        scores, anticipation = [], []
        for t in range(features.shape[1]):
            x = self.feature_extractor.input_linear(features[:, t])
            h, c = self.enc_cell(torch.cat([x, future], 1), (h, c))
            scores.append(self.classifier(h))
            dh, dc = self.hx_trans(h), self.cx_trans(c)
            inp, future, steps = features.new_zeros(b, self.hidden), 0.0, []
            for _ in range(self.steps):
                dh, dc = self.dec_cell(inp, (dh, dc))
                logits = self.classifier(dh)
                steps.append(logits)
                inp = self.fusion_linear(logits)
                future = future + self.future_linear(dh)
            future = future / self.steps
            anticipation.append(torch.stack(steps, 1))
        return torch.stack(scores, 1), torch.stack(anticipation, 1)


class _Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)


class _PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.norm(x))


class _SelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), -1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, d))


class _Encoder(nn.Module):
    def __init__(self, dim, depth, heads, mlp_dim):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers += [_Residual(_PreNorm(dim, _SelfAttention(dim, heads))),
                       _Residual(_PreNorm(dim, _FF(dim, mlp_dim)))]
        self.net = nn.Sequential(*layers)


class _FF(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim))

    def forward(self, x):
        return self.net(x)


class _AttentionLayer(nn.Module):
    def __init__(self, dim, heads, causal):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.query_projection = nn.Linear(dim, dim)
        self.key_projection = nn.Linear(dim, dim)
        self.value_projection = nn.Linear(dim, dim)
        self.out_projection = nn.Linear(dim, dim)

    def forward(self, q, kv):
        b, n, d = q.shape
        s, h = kv.shape[1], self.heads
        q = self.query_projection(q).view(b, n, h, -1)
        k = self.key_projection(kv).view(b, s, h, -1)
        v = self.value_projection(kv).view(b, s, h, -1)
        scores = torch.einsum("blhe,bshe->bhls", q, k) / math.sqrt(d // h)
        if self.causal:
            scores = scores.masked_fill(torch.ones(n, s, dtype=torch.bool).triu(1), float("-inf"))
        out = torch.einsum("bhls,bshd->blhd", torch.softmax(scores, -1), v)
        return self.out_projection(out.reshape(b, n, d))


class _DecoderLayer(nn.Module):
    def __init__(self, dim, heads, d_ff):
        super().__init__()
        self.self_attention = _AttentionLayer(dim, heads, causal=True)
        self.cross_attention = _AttentionLayer(dim, heads, causal=False)
        self.conv1 = nn.Conv1d(dim, d_ff, 1)
        self.conv2 = nn.Conv1d(d_ff, dim, 1)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x, memory):
        x = self.norm1(x + self.self_attention(x, x))
        x = self.norm2(x + self.cross_attention(x, memory))
        y = self.conv2(F.gelu(self.conv1(x.transpose(1, 2)))).transpose(1, 2)
        return self.norm3(x + y)


class _Decoder(nn.Module):
    def __init__(self, dim, heads, d_ff, depth):
        super().__init__()
        self.layers = nn.ModuleList([_DecoderLayer(dim, heads, d_ff) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, memory):
        for layer in self.layers:
            x = layer(x, memory)
        return self.norm(x)


class _LearnedPosition(nn.Module):
    def __init__(self, length, dim):
        super().__init__()
        self.pe = nn.Embedding(length, dim)
        self.register_buffer("position_ids", torch.arange(length).expand((1, -1)))


class OadTR(nn.Module):
    """`VisionTransformer_v3`: window of `history` chunks + a trailing class token."""

    def __init__(self, feature_dim, num_classes, history, dim, heads, layers, mlp_dim, dec_heads, dec_layers,
                 queries, d_ff):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.linear_encoding = nn.Linear(feature_dim, dim)
        self.position_encoding = _LearnedPosition(history + 1, dim)
        self.encoder = _Encoder(dim, layers, heads, mlp_dim)
        self.pre_head_ln = nn.LayerNorm(dim)
        self.mlp_head = nn.Linear(2 * dim, num_classes)
        self.decoder = _Decoder(dim, dec_heads, d_ff, dec_layers)
        self.decoder_cls_token = nn.Parameter(torch.randn(1, queries, dim) * 0.02)
        self.decoder_position_encoding = _LearnedPosition(queries, dim)  # registered, unused
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, window):
        """window [B, history, D] -> (logits of its last chunk [B, K], anticipation [B, Q, K])."""
        x = self.linear_encoding(window)
        x = torch.cat([x, self.cls_token.expand(x.shape[0], -1, -1)], 1)
        x = x + self.position_encoding.pe(self.position_encoding.position_ids)
        x = self.pre_head_ln(self.encoder.net(x))
        dec = self.decoder(self.decoder_cls_token.expand(x.shape[0], -1, -1), x)
        logits = self.mlp_head(torch.cat([x[:, -1], dec.mean(1)], 1))
        return logits, self.classifier(dec)
