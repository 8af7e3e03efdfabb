"""The online detectors' authors' PyTorch checkpoints -> `tfvideo.online` weights.

Formats:
  `trn_pytorch`: xumingze0308/TRN.pytorch `GeneralizedTRN` state_dicts (`enc_cell`,
    `dec_cell`, `hx_trans`, `cx_trans`, `fusion_linear`, `future_linear`, `classifier`,
    `feature_extractor.input_linear`) -> `TemporalRecurrentNetwork`;
  `oadtr`: wangxiang1230/OadTR `VisionTransformer_v3` state_dicts -> `OadTR`.
`read_<fmt>(path)` returns {key: np.ndarray}; `map_<fmt>(state, model)` returns
{keras variable path: array in the variable's layout}.
"""

import re

import numpy as np

from tfvideo.models._convert import (
    assign_checked,
    check_unused,
    read_torch_checkpoint,
    strip_prefixes,
    variable_index,
)


def _mapper(fmt, state, model, rules, ignore=None):
    """Applies `rules(key, value, state) -> [(keras path, array)] or None` to every key."""
    state, original = strip_prefixes(state, ("module.",))
    variables = variable_index(model)
    out, used = {}, set()
    for key, value in state.items():
        mapped = rules(key, value, state)
        if mapped is not None:
            used.add(key)
        for path, array in mapped or ():
            if path not in variables:
                raise ValueError(f"{fmt} checkpoint key {original[key]!r}: the model has no variable {path!r} "
                                 f"(another configuration?).")
            assign_checked(out, variables, path, np.asarray(array), original[key], np.shape(value))
    check_unused(state, used, fmt, ignore, original)
    return out


def _dense(layer, param, value):
    return [(f"{layer}/kernel", value.T)] if param == "weight" else [(f"{layer}/bias", value)]


# --- TRN.pytorch ---------------------------------------------------------------------------

_TRN_DENSE = {"feature_extractor.input_linear.0": "embed", "hx_trans.0": "hidden_transform",
              "cx_trans.0": "cell_transform", "fusion_linear.0": "score_embed", "future_linear.0": "future",
              "classifier": "classifier"}


def _trn_rules(key, value, state):
    head, _, param = key.rpartition(".")
    if head in _TRN_DENSE:
        return _dense(_TRN_DENSE[head], param, value)
    if head in ("enc_cell", "dec_cell"):
        cell = "encoder" if head == "enc_cell" else "decoder"
        # PyTorch LSTMCell gates i, f, g, o = Keras' i, f, c, o; Keras has one bias (ih + hh).
        if param == "weight_ih":
            return [(f"{cell}/kernel", value.T)]
        if param == "weight_hh":
            return [(f"{cell}/recurrent_kernel", value.T)]
        if param == "bias_ih":
            return [(f"{cell}/bias", value + state[f"{head}.bias_hh"])]
        if param == "bias_hh":
            return []  # folded into bias_ih's
    return None


def read_trn_pytorch(path):
    """A TRN.pytorch checkpoint (`{"model_state_dict": ...}` or a state_dict) -> {key: array}."""
    return read_torch_checkpoint(path)


def map_trn_pytorch(state, model):
    """{TRN.pytorch key: array} -> {keras variable path of a `TemporalRecurrentNetwork`: array}."""
    return _mapper("trn_pytorch", state, model, _trn_rules)


# --- OadTR -----------------------------------------------------------------------------------

# Registered by the authors' model but unused by its forward pass, or buffers.
_OADTR_UNUSED = re.compile(r"(^decoder_position_encoding\.|position_ids$)")
_NORM = {"weight": "gamma", "bias": "beta"}


def _attention_rules(prefix, param, value, heads):
    """An `AttentionLayer` projection -> Keras MultiHeadAttention EinsumDense weights."""
    m = re.fullmatch(r"(query|key|value|out)_projection", prefix)
    if not m:
        return None
    which = m.group(1)
    if which == "out":
        e = value.shape[0]
        if param == "weight":
            return "attention_output/kernel", value.T.reshape(heads, e // heads, e)
        return "attention_output/bias", value
    e = value.shape[0]
    if param == "weight":
        return f"{which}/kernel", value.T.reshape(value.shape[1], heads, e // heads)
    return f"{which}/bias", value.reshape(heads, e // heads)


def _oadtr_rules(heads):
    def rules(key, value, state):
        head, _, param = key.rpartition(".")
        simple = {"linear_encoding": "embed", "mlp_head": "classifier", "classifier": "decoder_classifier"}
        if head in simple:
            return _dense(simple[head], param, value)
        if key == "cls_token":
            return [("task_token", value)]
        if key == "decoder_cls_token":
            return [("queries", value)]
        if key == "position_encoding.pe.weight":
            return [("position", value[None])]
        if head in ("pre_head_ln", "decoder.norm"):
            return [(f"{'encoder_norm' if head == 'pre_head_ln' else 'decoder_norm'}/{_NORM[param]}", value)]
        m = re.fullmatch(r"encoder\.net\.(\d+)\.fn\.(norm|fn\.qkv|fn\.proj|fn\.net\.0|fn\.net\.3)", head)
        if m:
            index, part = int(m.group(1)), m.group(2)
            block, second = f"encoder_{index // 2}", index % 2
            if part == "norm":
                return [(f"{block}/norm{second + 1}/{_NORM[param]}", value)]
            name = {"fn.qkv": "attn/qkv", "fn.proj": "attn/proj", "fn.net.0": "mlp1", "fn.net.3": "mlp2"}[part]
            return _dense(f"{block}/{name}", param, value)
        m = re.fullmatch(r"decoder\.layers\.(\d+)\.(.+)", head)
        if m:
            block, part = f"decoder_{m.group(1)}", m.group(2)
            if re.fullmatch(r"norm[123]", part):
                return [(f"{block}/{part}/{_NORM[param]}", value)]
            if part in ("conv1", "conv2"):  # kernel-1 Conv1d [out, in, 1]
                ff = "ff1" if part == "conv1" else "ff2"
                return [(f"{block}/{ff}/kernel", value[:, :, 0].T)] if param == "weight" else [(f"{block}/{ff}/bias", value)]
            attention, _, projection = part.partition(".")
            if attention in ("self_attention", "cross_attention"):
                n = heads[0 if attention == "self_attention" else 1]
                mapped = _attention_rules(projection, param, value, n)
                if mapped:
                    layer = "self_attn" if attention == "self_attention" else "cross_attn"
                    return [(f"{block}/{layer}/{mapped[0]}", mapped[1])]
        return None

    return rules


def read_oadtr(path):
    """An OadTR checkpoint (`{"model": ...}` as their main.py saves, or a state_dict) -> {key: array}."""
    return read_torch_checkpoint(path)


def map_oadtr(state, model):
    """{OadTR key: array} -> {keras variable path of an `OadTR`: array}."""
    heads = (model.decoder_heads, model.decoder_heads)
    return _mapper("oadtr", state, model, _oadtr_rules(heads), _OADTR_UNUSED)


def _register():
    from tfvideo.models._convert import register_checkpoint_format

    register_checkpoint_format("trn_pytorch", read_trn_pytorch, map_trn_pytorch,
                               "TRN.pytorch checkpoint (xumingze0308/TRN.pytorch); an online detector, --feature_dim")
    register_checkpoint_format("oadtr", read_oadtr, map_oadtr,
                               "OadTR authors' checkpoint (wangxiang1230/OadTR); an online detector, --feature_dim")


_register()
