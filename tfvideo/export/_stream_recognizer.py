"""Streaming export of online TSM recognizers: a SavedModel and LiteRT (.tflite) files.

Both take one frame of each stream at a time, the shift buffers travelling with each call:

  init_state(batch_size: int32 []) -> {"state_<name>": float32 zeros [batch_size, ...]}
  step(frame: float32 [B, H, W, 3] RGB values 0..255, resized and centre-cropped as the run's
       evaluation does, state_<name>...) -> {"scores" [B, K], "logits" [B, K], "state_<name>"...}

The frame is normalized inside the graph with the run's mean/std. `serving_default` is
`step`. LiteRT files have `step` only, batch 1 and shapes fixed (the buffers are explicit
inputs and outputs); their description, class names and state shapes sit beside them in
`<file minus .tflite>.json`. `SavedModelStream` and `LiteRTStream` run either form with
the same `init_state()` / `step(frame, state)` calls, and check what they are given.
"""

import json
import os
import tempfile
import warnings

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from tfvideo.api._export import tf_export
from tfvideo.models._online_tsm import StreamingRecognizer

STATE_PREFIX = "state_"
CONFIG_FILE = "stream_config.json"
LABELS_FILE = "labels.txt"
KIND = "online_recognizer"
QUANTIZATIONS = ("float32", "int8")


def stream_config(stream, preprocess, preset=None, labels=None):
    """The JSON description of a streaming export (what a client needs to feed it)."""
    return {
        "kind": KIND,
        "model": preset or stream.model.name,
        "frame_shape": list(stream.frame_shape),
        "num_classes": stream.num_classes,
        "average_last": stream.average_last,
        "state": {STATE_PREFIX + n: list(s) for n, s in sorted(stream.state_shapes().items())},
        "mean": [float(v) for v in preprocess.mean],
        "std": [float(v) for v in preprocess.std],
        "resize_short": preprocess.resize_short,
        "crop_size": preprocess.crop_size,
        "labels": list(labels or []),
    }


class _Module(tf.Module):
    def __init__(self, stream, mean, std, batch_size=None):
        super().__init__()
        self.model = stream.model
        self.step_model = stream.step_model
        self._stream = stream
        self._names = sorted(stream.state_shapes())
        self._mean = tf.constant(np.asarray(mean, "float32") * 255.0)
        self._std = tf.constant(np.asarray(std, "float32") * 255.0)
        shapes = stream.state_shapes()
        self._specs = [tf.TensorSpec([batch_size, *stream.frame_shape], tf.float32, name="frame")]
        self._specs += [tf.TensorSpec([batch_size, *shapes[n]], tf.float32, name=STATE_PREFIX + n) for n in self._names]

    def _step(self, frame, *states):
        logits, new = self._stream.step_tensors((frame - self._mean) / self._std, dict(zip(self._names, states)))
        out = {"scores": tf.nn.softmax(logits, axis=-1), "logits": logits}
        out.update({STATE_PREFIX + n: new[n] for n in self._names})
        return out

    def _init(self, batch_size):
        shapes = self._stream.state_shapes()
        return {STATE_PREFIX + n: tf.zeros(tf.concat([[batch_size], shapes[n]], 0), tf.float32) for n in self._names}

    def signatures(self):
        step = tf.function(self._step, input_signature=self._specs).get_concrete_function()
        init = tf.function(self._init, input_signature=[tf.TensorSpec([], tf.int32, name="batch_size")])
        return {"step": step, "serving_default": step, "init_state": init.get_concrete_function()}


def _write_config(extra_dir, config):
    os.makedirs(extra_dir, exist_ok=True)
    with open(os.path.join(extra_dir, CONFIG_FILE), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    if config["labels"]:
        with open(os.path.join(extra_dir, LABELS_FILE), "w") as f:
            f.write("\n".join(config["labels"]) + "\n")


@tf_export("tfvideo.export.export_streaming_recognizer")
def export_streaming_recognizer(stream, export_dir, preprocess, preset=None, labels=None):
    """Writes the streaming SavedModel of a `tfvideo.models.StreamingRecognizer` to `export_dir`.

    `preprocess`: the run's `tfvideo.data.PreprocessConfig` (mean/std go into the graph, the
    resize and crop into `assets.extra/stream_config.json`). Returns export_dir.
    """
    module = _Module(stream, preprocess.mean, preprocess.std)
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
    _write_config(os.path.join(export_dir, "assets.extra"), stream_config(stream, preprocess, preset, labels))
    return export_dir


def _float_states(stream, module, clips):
    """(frame [1, H, W, C], state) pairs of streams over `clips` (pixel values), as the float model runs them."""
    for clip in clips:
        state = module._init(1)
        for frame in np.asarray(clip, "float32"):
            inputs = {"frame": frame[None], **{k: v.numpy() for k, v in state.items()}}
            yield inputs
            out = module._step(tf.constant(frame[None]), *(state[STATE_PREFIX + n] for n in module._names))
            state = {STATE_PREFIX + n: out[STATE_PREFIX + n] for n in module._names}


@tf_export("tfvideo.export.export_litert")
def export_litert(stream, path, preprocess, quantization="float32", representative_clips=None, preset=None,
                  labels=None):
    """Writes a LiteRT `.tflite` of the stream's `step` (batch 1) and its `<path minus .tflite>.json`.

    Args:
      stream: a `tfvideo.models.StreamingRecognizer`.
      path: the .tflite file to write.
      preprocess: the run's `tfvideo.data.PreprocessConfig`.
      quantization: "float32", or "int8" (post-training quantisation of weights and
        activations; inputs and outputs stay float32, so the state is exchanged in float).
      representative_clips: int8 only: clips [T, H, W, 3] of pixel values (0..255), e.g.
        drawn from the training data; each is streamed through the float model and every
        (frame, state) it sees calibrates the quantisation.
    Returns:
      path.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r} must be one of {QUANTIZATIONS}.")
    if not path.endswith(".tflite"):
        raise ValueError(f"LiteRT path {path!r} must end with .tflite")
    module = _Module(stream, preprocess.mean, preprocess.std, batch_size=1)
    # TF 2.21's converter keeps Keras 3 variables as resource variables (VAR_HANDLE/READ_VARIABLE
    # ops, which int8 calibration then fails to read): fold them into constants first. The
    # frozen function is saved again so that the LiteRT file keeps a named `step` signature
    # (a concrete function converted directly has none).
    step = module.signatures()["step"]
    frozen = convert_variables_to_constants_v2(step)
    keys = sorted(step.structured_outputs)

    def call(*args):
        out = frozen(*args)
        return out if isinstance(out, dict) else dict(zip(keys, out))

    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(tf.Module(), tmp, signatures={"step": tf.function(call, input_signature=module._specs)})
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["step"])
        if quantization == "int8":
            clips = [] if representative_clips is None else list(representative_clips)
            if not clips:
                raise ValueError("int8 LiteRT export needs representative clips (e.g. from the training data).")
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: _float_states(stream, module, clips)
        with warnings.catch_warnings():  # The calibrator's own tf.lite.Interpreter deprecation notice.
            warnings.simplefilter("ignore", UserWarning)
            flatbuffer = converter.convert()
    config = {**stream_config(stream, preprocess, preset, labels), "quantization": quantization}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    with open(litert_config_path(path), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    return path


def litert_config_path(path):
    """`model.tflite` -> `model.json` (the description written beside a LiteRT file)."""
    return os.path.splitext(path)[0] + ".json"


class _Runner:
    """Shared checks of the two runners: frame shape, state names and shapes."""

    def _check(self, frame, state):
        frame = np.asarray(frame, "float32")
        if frame.ndim == 3:
            frame = frame[None]
        want = tuple(self.config["frame_shape"])
        if frame.ndim != 4 or frame.shape[1:] != want or (self.batch_size and frame.shape[0] != self.batch_size):
            raise ValueError(f"{self.source}: frame has shape {frame.shape}, expected "
                             f"[{self.batch_size or 'batch'}, {', '.join(map(str, want))}] (height, width, channels).")
        shapes = self.config["state"]
        if set(state) != set(shapes):
            missing, extra = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
            raise ValueError(f"{self.source}: the state is not this model's (missing {missing[:2]}, "
                             f"unexpected {extra[:2]}): a state from another model?")
        for name, shape in shapes.items():
            got = tuple(np.shape(state[name]))
            if got[1:] != tuple(shape) or got[0] != frame.shape[0]:
                raise ValueError(f"{self.source}: state {name} has shape {got}, expected [{frame.shape[0]}, "
                                 f"{', '.join(map(str, shape))}]: a state from another model or frame size?")
        return frame

    @property
    def labels(self):
        return self.config.get("labels") or [str(i) for i in range(self.config["num_classes"])]


@tf_export("tfvideo.export.SavedModelStream")
class SavedModelStream(_Runner):
    """Runs a streaming SavedModel: `init_state(batch)`, `step(frame, state) -> (scores, logits, state)`."""

    batch_size = None

    def __init__(self, export_dir):
        self.source = export_dir
        config_path = os.path.join(export_dir, "assets.extra", CONFIG_FILE)
        if not os.path.isfile(config_path):
            raise ValueError(f"--saved_model={export_dir}: no assets.extra/{CONFIG_FILE}; not a streaming export "
                             "(tfvideo-export --streaming writes one).")
        with open(config_path) as f:
            self.config = json.load(f)
        if self.config.get("kind") != KIND:
            raise ValueError(f"--saved_model={export_dir}: a streaming export of an online detector, not of a "
                             "recognizer (run it with tfvideo-stream --model_dir).")
        loaded = tf.saved_model.load(export_dir)
        self._loaded = loaded
        self._step = loaded.signatures["step"]
        self._init = loaded.signatures["init_state"]

    def init_state(self, batch_size=1):
        return {k: v.numpy() for k, v in self._init(batch_size=tf.constant(batch_size, tf.int32)).items()}

    def step(self, frame, state):
        frame = self._check(frame, state)
        out = {k: v.numpy() for k, v in self._step(frame=tf.constant(frame),
                                                   **{k: tf.constant(v) for k, v in state.items()}).items()}
        return out.pop("scores"), out.pop("logits"), out


@tf_export("tfvideo.export.LiteRTStream")
class LiteRTStream(_Runner):
    """Runs a streaming LiteRT file (with `ai-edge-litert`), as `SavedModelStream`; batch 1."""

    batch_size = 1

    def __init__(self, path, num_threads=None):
        self.source = path
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ValueError("LiteRT needs the ai-edge-litert package: pip install 'tfvideo[litert]'") from None
        config_path = litert_config_path(path)
        if not os.path.isfile(path):
            raise ValueError(f"--litert={path}: no such file")
        if not os.path.isfile(config_path):
            raise ValueError(f"--litert={path}: its description {config_path} is missing "
                             "(tfvideo-export --litert writes both).")
        with open(config_path) as f:
            self.config = json.load(f)
        try:
            self._interpreter = Interpreter(model_path=path, num_threads=num_threads)
            self._runner = self._interpreter.get_signature_runner("step")
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"--litert={path}: not a streaming LiteRT model ({str(e).splitlines()[0]})") from None
        inputs = {name: tuple(d["shape"]) for name, d in self._runner.get_input_details().items()}
        want = {"frame": (1, *self.config["frame_shape"]),
                **{n: (1, *s) for n, s in self.config["state"].items()}}
        if inputs != want:
            diff = sorted(set(inputs) ^ set(want)) or [n for n in sorted(want) if inputs[n] != want[n]]
            name = diff[0]
            raise ValueError(f"--litert={path}: input {name} is {list(inputs.get(name, ())) or 'absent'} in the file "
                             f"but {list(want.get(name, ())) or 'absent'} in {config_path} "
                             f"({self.config['model']}): a LiteRT file of another preset?")

    def init_state(self, batch_size=1):
        if batch_size != 1:
            raise ValueError(f"{self.source}: LiteRT streams take batch_size=1, got {batch_size}.")
        return {n: np.zeros((1, *s), "float32") for n, s in self.config["state"].items()}

    def step(self, frame, state):
        frame = self._check(frame, state)
        out = self._runner(frame=frame, **{k: np.asarray(v, "float32") for k, v in state.items()})
        return out.pop("scores"), out.pop("logits"), out


def open_stream(saved_model=None, litert=None, num_threads=None):
    """The runner of a streaming SavedModel directory or LiteRT file."""
    if bool(saved_model) == bool(litert):
        raise ValueError("give one of --saved_model or --litert")
    return SavedModelStream(saved_model) if saved_model else LiteRTStream(litert, num_threads)


def streaming_from_model(model, config, average_last=None):
    """(StreamingRecognizer, PreprocessConfig) of a trained model and its `ExperimentConfig`."""
    preprocess = config.build_preprocess()
    size = preprocess.crop_size
    return StreamingRecognizer(model, (size, size), average_last=average_last), preprocess
