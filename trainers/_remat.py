"""Gradient checkpointing (rematerialization) of a built Keras model, for TensorFlow training.

`keras.RematScope` wraps each layer's call in `tf.recompute_grad`, which in Keras 3.15 fails
inside `tf.function` for layers called with keyword arguments (`training=`): the BatchNorm of
every video model. This module recomputes whole *segments* instead:

every Functional (sub)model (e.g. a ResNet backbone) is cut at its articulation tensors — the
tensors every path from input to output goes through, i.e. the outputs of residual blocks — and
each segment between two cuts is re-run in the backward pass. Only segment inputs stay alive
between the forward and the backward pass. (Recomputing single layers instead saves nothing:
every layer's input would still be kept, which is every activation; measured 1.17x the peak.)

BatchNorm moving statistics updated during the recomputation are restored, so a step with
remat leaves the model in exactly the state a step without it does.
"""

import itertools

import keras
import tensorflow as tf


def _moving_variables(layers):
    out = []
    for layer in layers:
        out.extend(v for v in layer.non_trainable_variables)
    return out


def _zero_after(tensor, dtype):
    """A scalar 0 with a data dependency on `tensor`, which no optimizer may fold to a constant.

    Added to a segment's input, it makes the recomputation wait for the backward pass to reach
    the segment, also under XLA (which ignores control dependencies). `where(e == e, 0, nan)` is
    not foldable, since e may be NaN; `0 * e` is only folded by non-IEEE rewrites, but there is
    no need to rely on their absence.
    """
    first = tf.reshape(tensor, [-1])[:1]
    first = tf.cast(first, tf.float32)
    zero = tf.where(tf.reduce_all(tf.equal(first, first)), 0.0, float("nan"))
    return tf.cast(zero, dtype)


def _recompute(fn, state_layers):
    """`fn(x)` whose activations are recomputed in the backward pass instead of stored.

    `state_layers`: layers whose non-trainable variables `fn` may update (restored after
    the recomputation).
    """
    state = _moving_variables(state_layers)

    @tf.custom_gradient
    def forward(x):
        y = fn(x)

        def backward(dy, variables=None):
            saved = [tf.identity(v.value) for v in state]
            x_again = x + _zero_after(dy, x.dtype)
            with tf.GradientTape() as tape:
                tape.watch(x_again)
                y2 = fn(x_again)
            grads = tape.gradient(y2, [x_again] + list(variables or []), output_gradients=dy)
            with tf.control_dependencies([g for g in grads if g is not None]):
                for v, s in zip(state, saved):
                    v.assign(s)
            return grads[0], grads[1:]

        return y, backward

    return forward


def _ordered_nodes(functional):
    nodes = []
    for depth in sorted(functional._nodes_by_depth, reverse=True):
        nodes.extend(functional._nodes_by_depth[depth])
    return nodes


def cut_tensors(functional):
    """KerasTensors every input-to-output path of a single-input Functional goes through.

    Walks nodes in depth order (a topological order in which each articulation tensor
    separates its ancestors from its descendants) and keeps the positions where exactly one
    produced tensor is still needed later.
    """
    if len(functional.inputs) != 1 or len(functional.outputs) != 1:
        return []
    nodes = [n for n in _ordered_nodes(functional) if n.input_tensors]  # Skip InputLayer nodes.
    last_use = {}
    for i, node in enumerate(nodes):
        for t in node.input_tensors:
            last_use[id(t)] = i
    last_use[id(functional.outputs[0])] = len(nodes)
    live = {id(functional.inputs[0]): functional.inputs[0]}
    cuts = []
    for i, node in enumerate(nodes):
        for t in node.output_tensors:
            live[id(t)] = t
        live = {k: t for k, t in live.items() if last_use.get(k, -1) > i}
        if len(live) == 1 and len(node.output_tensors) == 1 and id(node.output_tensors[0]) in live:
            cuts.append(node.output_tensors[0])
    return cuts


def _segment_functional(functional, min_ops=3):
    """Sub-models between consecutive cuts (each with >= min_ops layers), or [] if < 2."""
    cuts = cut_tensors(functional)
    bounds = [functional.inputs[0]]
    ops_since = 0
    order = {id(n.output_tensors[0]): i for i, n in enumerate(_ordered_nodes(functional)) if n.output_tensors}
    last = order.get(id(functional.inputs[0]), 0)
    for t in cuts:
        ops_since = order[id(t)] - last
        if ops_since >= min_ops and t is not functional.outputs[0]:
            bounds.append(t)
            last = order[id(t)]
    bounds.append(functional.outputs[0])
    if len(bounds) < 3:
        return []
    return [keras.Model(a, b, name=f"{functional.name}_segment{i}") for i, (a, b) in enumerate(itertools.pairwise(bounds))]


def _functionals(model):
    out = []
    if isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth"):
        out.append(model)
    for child in model._flatten_layers(include_self=False, recursive=False):
        out.extend(_functionals(child))
    return out


def apply_remat(model):
    """Makes `model` (built) recompute activations in the backward pass. Returns #segments.

    Raises ValueError if the model has no Functional (sub)model with residual-block cuts.
    """
    count = 0
    for functional in _functionals(model):
        segments = _segment_functional(functional)
        if not segments:
            continue

        def call(inputs, training=None, mask=None, _segments=segments, **kwargs):
            x = inputs
            for seg in _segments[:-1]:
                x = _recompute(lambda t, s=seg: s(t, training=training), [seg])(x)
            # The last segment's backward pass comes first, right after the forward pass: its
            # activations would be recomputed at once, so they are simply kept (same peak).
            return _segments[-1](x, training=training)

        functional.call = call
        count += len(segments)
    if not count:
        raise ValueError(f"--remat: {model.name} has no Functional backbone that can be cut into segments "
                         "between residual blocks; train it without --remat.")
    return count
