"""Streaming SavedModel export of online detectors (the state travels with each request).

Signatures, as MoViNet's stream export does it:

  init_state(batch_size: int32 []) -> {"state_<name>": float32 [batch_size, ...]}
  step(chunk_features: float32 [B, D], state_<name>...: float32 [B, ...])
      -> {"scores": softmax [B, K], "logits": [B, K], "state_<name>": new state}

`serving_default` is `step`. The loaded object also has the Python-friendly functions
`step(chunk_features, state_dict) -> (scores, new_state_dict)` and `init_state(batch_size)`.
The client keeps the state between requests, so any server replica can answer any chunk.
"""

import json
import os

import tensorflow as tf

from tfvideo.api._export import tf_export

STATE_PREFIX = "state_"
LABELS_FILE = "labels.txt"


class _StreamingModule(tf.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        shapes = model.state_shapes()
        self._names = sorted(shapes)
        self._state_spec = {n: tf.TensorSpec([None, *shapes[n]], tf.float32, name=STATE_PREFIX + n) for n in self._names}
        chunk_spec = tf.TensorSpec([None, model.feature_dim], tf.float32, name="chunk_features")
        self.step = tf.function(self._step, input_signature=[chunk_spec, self._state_spec])
        self.init_state = tf.function(self._init_state, input_signature=[tf.TensorSpec([], tf.int32, "batch_size")])

    def _step(self, chunk_features, state):
        logits, new_state = self.model.step(chunk_features, state, training=False)
        return tf.nn.softmax(logits, axis=-1), {n: new_state[n] for n in self._names}

    def _init_state(self, batch_size):
        return {n: tf.zeros(tf.concat([[batch_size], s.shape[1:]], 0), tf.float32) for n, s in self._state_spec.items()}

    def signatures(self):
        names = self._names

        def step_signature(chunk_features, *states):
            state = dict(zip(names, states))
            logits, new_state = self.model.step(chunk_features, state, training=False)
            out = {"scores": tf.nn.softmax(logits, axis=-1), "logits": logits}
            out.update({STATE_PREFIX + n: new_state[n] for n in names})
            return out

        specs = [tf.TensorSpec([None, self.model.feature_dim], tf.float32, name="chunk_features")]
        specs += [self._state_spec[n] for n in names]
        step = tf.function(step_signature, input_signature=specs)

        def init_signature(batch_size):
            return {STATE_PREFIX + n: v for n, v in self._init_state(batch_size).items()}

        init = tf.function(init_signature, input_signature=[tf.TensorSpec([], tf.int32, name="batch_size")])
        concrete = step.get_concrete_function()
        return {"step": concrete, "serving_default": concrete, "init_state": init.get_concrete_function()}


@tf_export("tfvideo.export.export_streaming_model")
def export_streaming_model(model, export_dir, labels=None):
    """Writes the streaming SavedModel of an `OnlineDetector` to `export_dir`.

    Args:
      model: a built `tfvideo.online.OnlineDetector`.
      export_dir: the SavedModel directory (for TF Serving, `<base>/<name>/<version>`).
      labels: optional class names, one per score column, written to assets.extra/labels.txt.
    Returns:
      export_dir.
    """
    for attr in ("step", "state_shapes", "feature_dim"):
        if not hasattr(model, attr):
            raise TypeError(f"export_streaming_model: {type(model).__name__} is not an online detector "
                            f"(it has no `{attr}`).")
    module = _StreamingModule(model)
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
    extra = os.path.join(export_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "stream_config.json"), "w") as f:
        json.dump({"feature_dim": model.feature_dim, "num_classes": model.num_classes,
                   "state": {n: list(s) for n, s in model.state_shapes().items()}}, f, indent=2, sort_keys=True)
    if labels:
        with open(os.path.join(extra, LABELS_FILE), "w") as f:
            f.write("\n".join(labels) + "\n")
    return export_dir


@tf_export("tfvideo.export.export_streaming_from_model_dir")
def export_from_model_dir(model_dir, export_base, model_name=None, version=None):
    """Exports the trained online detector of a model_dir to `<export_base>[/<model_name>]/<version>`.

    Written like the recognition export (`tfvideo.export._versions.staged_version_dir`): into a hidden
    temporary directory, made readable by other users, then renamed into place, so a polling
    server never sees half a version and a failed export leaves nothing. `version` defaults
    to `tfvideo.export._versions.next_version`. Returns the export path.
    """
    from tfvideo import _experiment
    from tfvideo.export import _versions

    model, config = _experiment.load_trained_model(model_dir)
    if config.task != "online_detection":
        raise ValueError(f"--model_dir={model_dir} holds a {config.task!r} model, not an online detector; "
                         "use the recognition export.")
    base = os.path.join(export_base, model_name) if model_name else export_base
    with _versions.staged_version_dir(base, version) as (tmp, publish):
        export_streaming_model(model, tmp, labels=config.labels)
        return publish()
