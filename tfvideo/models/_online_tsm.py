"""Online TSM (Lin et al. 2019, Sec. 5): uni-directional shift, trained offline, run frame by frame.

`OnlineTSM` is a TSM whose shifts move channels from past to present only, so it trains
as any recognizer over `num_segments` frames. `StreamingRecognizer` runs the same
weights one frame at a time: each shift keeps the previous frame's first `C / fold_div`
channels in a buffer (the stream state), so every frame goes through the backbone once.

  step(frame [B, H, W, C], state) -> (logits [B, K], new state)

State entries: `shift_<block>` `[B, h, w, C_block / fold_div]` per shift, and with
`average_last=N` the paper's smoothing, `logits_history` `[B, N, K]` and `logits_count`
`[B, 1]`: `step` then returns the mean of the last (up to) N frames' logits.
Exactness: the first T frames of a stream stepped with `average_last=T` give the offline
model's output on those T frames (its average consensus over per-frame logits).
"""

import keras
from keras import ops

from tfvideo.api._export import tf_export
from tfvideo.layers._temporal_shift import OnlineTemporalShift, TemporalShift
from tfvideo.models._presets import register_preset
from tfvideo.models._recognizer2d import TSM, _fixed

SHIFT_PREFIX = "shift_"
HISTORY = "logits_history"
COUNT = "logits_count"


@tf_export("tfvideo.models.OnlineTSM")
@keras.saving.register_keras_serializable(package="tfvideo")
class OnlineTSM(TSM):
    """TSM with uni-directional (past -> present) shift: streams with `StreamingRecognizer`."""

    def __init__(self, num_classes, num_segments=8, backbone="mobilenetv2", **kwargs):
        super().__init__(num_classes, num_segments, backbone, **_fixed(kwargs, shift_mode="left"))


def _shift_layers(backbone):
    return [layer for layer in backbone.layers if isinstance(layer, TemporalShift)]


def _check_streamable(model):
    if not hasattr(model, "backbone") or not hasattr(model, "classifier"):
        raise ValueError(f"{type(model).__name__} is not a 2D recognizer; streaming needs an online TSM.")
    shifts = _shift_layers(model.backbone)
    if not shifts:
        raise ValueError(f"{model.name}: no temporal shift in the backbone; streaming needs an online TSM "
                         "(e.g. the tsm_mobilenetv2_online preset).")
    if any(s.mode != "left" for s in shifts):
        raise ValueError(f"{model.name}: its shift is bidirectional (looks one frame ahead); streaming needs "
                         "shift_mode='left' (an OnlineTSM preset such as tsm_mobilenetv2_online).")
    if model.head != "consensus" or model.consensus_mode != "avg" or model.frames_per_segment != 1:
        raise ValueError(f"{model.name}: streaming needs the average consensus over single frames "
                         f"(head={model.head!r}, consensus={model.consensus_mode!r}, "
                         f"frames_per_segment={model.frames_per_segment}).")
    return shifts


@tf_export("tfvideo.models.StreamingRecognizer")
class StreamingRecognizer:
    """The frame-by-frame form of a trained online TSM (same weights, no copy).

    Args:
      model: an `OnlineTSM` (any TSM with `shift_mode="left"` and average consensus).
      frame_size: (height, width) of the frames the stream carries (the model's crop size).
      average_last: None (each step returns the frame's own logits) or N >= 1 (the mean of
        the last N frames' logits; N = num_segments reproduces the offline model).

    `step_model` is a functional Keras model `{"frame", "shift_<block>"...} -> {"logits",
    "shift_<block>"...}` (no smoothing), which the SavedModel and LiteRT exports trace.
    """

    def __init__(self, model, frame_size, average_last=None):
        shifts = _check_streamable(model)
        height, width = (int(v) for v in frame_size)
        if height < 1 or width < 1:
            raise ValueError(f"frame_size={tuple(frame_size)} must be positive.")
        if average_last is not None and int(average_last) < 1:
            raise ValueError(f"average_last={average_last} must be >= 1 (or None: no smoothing).")
        self.model = model
        self.frame_shape = (height, width, model.input_channels)
        self.num_classes = model.num_classes
        self.average_last = None if average_last is None else int(average_last)
        self.fold_div = {s.name: s.fold_div for s in shifts}
        if not model.built:
            model.build((None, model.num_segments) + self.frame_shape)
        self.step_model = self._build_step_model()
        self._shapes = {name: tuple(t.shape[1:]) for name, t in self.step_model.input.items() if name != "frame"}
        if self.average_last:
            self._shapes[HISTORY] = (self.average_last, self.num_classes)
            self._shapes[COUNT] = (1,)

    def _build_step_model(self):
        frame = keras.Input(self.frame_shape, name="frame")
        inputs, outputs = {"frame": frame}, {}

        def replace(op):
            if not isinstance(op, TemporalShift):
                return op

            def online(x):
                fold = x.shape[-1] // op.fold_div
                buffer = keras.Input(tuple(x.shape[1:-1]) + (fold,), name=SHIFT_PREFIX + op.name)
                shifted, new = OnlineTemporalShift(op.fold_div, name=f"{op.name}_online")(x, buffer)
                inputs[SHIFT_PREFIX + op.name] = buffer
                outputs[SHIFT_PREFIX + op.name] = new
                return shifted

            return online

        # The backbone's own graph, node by node, with each shift swapped for its online form.
        features = self.model.backbone._run_through_graph(frame, operation_fn=replace)
        if isinstance(features, (list, tuple)):
            (features,) = features
        outputs["logits"] = self.model.classifier(self.model.pool(features))
        return keras.Model(inputs, outputs, name=f"{self.model.name}_step")

    def state_shapes(self):
        """`{name: shape without batch}` of every state entry."""
        return dict(self._shapes)

    def init_state(self, batch_size=1):
        """Zeros for the start of `batch_size` streams."""
        return {name: ops.zeros((batch_size,) + shape, "float32") for name, shape in self._shapes.items()}

    def check_frame(self, frame):
        shape = tuple(frame.shape)
        if len(shape) != 4 or tuple(shape[1:]) != self.frame_shape:
            raise ValueError(f"frame has shape {shape}, expected [batch, {', '.join(map(str, self.frame_shape))}] "
                             f"(height, width, channels of {self.model.name}'s stream).")

    def check_state(self, state, batch_size=None):
        missing = sorted(set(self._shapes) - set(state))
        extra = sorted(set(state) - set(self._shapes))
        if missing or extra:
            raise ValueError(f"state does not belong to {self.model.name}'s stream: "
                             + "; ".join(p for p in (missing and f"missing {missing[:3]}"
                                                     + (f" (+{len(missing) - 3})" if len(missing) > 3 else ""),
                                                     extra and f"unexpected {extra[:3]}") if p))
        for name, shape in self._shapes.items():
            got = tuple(state[name].shape)
            if got[1:] != shape or (batch_size is not None and got[0] != batch_size):
                raise ValueError(f"state[{name!r}] has shape {got}, expected [{batch_size or 'batch'}, "
                                 f"{', '.join(map(str, shape))}] (a state from another model or frame size?).")

    def step(self, frame, state):
        """One frame of each stream -> (logits [B, K], new state); see the module docstring."""
        self.check_frame(frame)
        self.check_state(state, frame.shape[0])
        return self.step_tensors(frame, state)

    def step_tensors(self, frame, state):
        """`step` without the checks (for traced graphs, whose shapes the signature fixes)."""
        inputs = {"frame": frame, **{n: state[n] for n in self.step_model.input if n != "frame"}}
        out = self.step_model({n: ops.convert_to_tensor(v, "float32") for n, v in inputs.items()}, training=False)
        logits = out.pop("logits")
        new_state = dict(out)
        if self.average_last:
            history = ops.concatenate([state[HISTORY][:, 1:], logits[:, None]], axis=1)
            count = ops.minimum(state[COUNT] + 1.0, float(self.average_last))
            logits = ops.sum(history, axis=1) / count
            new_state[HISTORY], new_state[COUNT] = history, count
        return logits, new_state


_TINY = {"backbone": "resnet10", "width": 16, "dropout": 0.2}
register_preset("tsm_mobilenetv2_online", OnlineTSM, "Online TSM (uni-directional shift), MobileNetV2, 8 segments: "
                "streams frame by frame", num_segments=8, backbone="mobilenetv2")
register_preset("tsm_r50_online", OnlineTSM, "Online TSM (uni-directional shift), ResNet-50, 8 segments",
                num_segments=8, backbone="resnet50")
register_preset("tsm_online_tiny", OnlineTSM, "Online TSM, ResNet-10 width 16: trains on a CPU", num_segments=8,
                **_TINY)
register_preset("tsm_mobilenetv2_online_tiny", OnlineTSM, "Online TSM, MobileNetV2 width 8: trains on a CPU",
                num_segments=8, backbone="mobilenetv2", width=8, dropout=0.2)
