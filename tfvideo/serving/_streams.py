"""Streams whose state the development server holds: streaming exports served frame by frame.

A streaming export (`tfvideo-export --streaming`) has two signatures, `init_state` and
`step(frame, state_...) -> (scores, logits, state_...)`. Served plainly, the state travels
with every request. Here the server keeps it instead: a client opens a stream (an id),
sends frames to step it and gets the frames' scores and logits back; the state never
crosses the wire. Both front ends use this table (see docs/notes/export.md):

  gRPC Predict  signature_name "stream_open"   inputs {}                         -> stream_id, version, ...
                signature_name "step"          inputs {"stream_id", "frame"}     -> scores, logits, frame_index
                signature_name "stream_close"  inputs {"stream_id"}              -> stream_id, frames
  REST          POST /v1/models/<name>[/versions/<v>|/labels/<l>]:stream_open | :stream_step | :stream_close

A stream is bound to the model version it was opened on (once that version is unloaded,
its streams answer NOT_FOUND saying so). `frame` is float32 [N, H, W, C]: N successive
frames of the stream, stepped in order (the outputs have one row per frame). A stream not
stepped for `idle_timeout_s` expires; at most `max_streams` are open at once (beyond:
RESOURCE_EXHAUSTED). Unknown, closed, expired and unloaded ids are NOT_FOUND naming the id
and why. A bad frame (shape, channels, dtype) is INVALID_ARGUMENT naming the expected
shape; the stream's state is left as it was and every other stream goes on. Steps of one
stream are serialised (its lock); steps of different streams run in parallel.
"""

import collections
import secrets
import threading
import time

import grpc
import numpy as np
import tensorflow as tf
from absl import logging

STREAM_OPEN = "stream_open"
STREAM_CLOSE = "stream_close"
STEP = "step"
INIT_STATE = "init_state"
STREAM_ID = "stream_id"
FRAME = "frame"
DEFAULT_IDLE_TIMEOUT_S = 300.0
DEFAULT_MAX_STREAMS = 256
_ENDED_KEPT = 4096  # Ended ids remembered, to say why they are gone (expired, closed, unloaded).


def is_stream_request(request):
    """True for a PredictRequest the stream table answers (open, close, or a step naming a stream)."""
    signature = request.model_spec.signature_name
    return signature in (STREAM_OPEN, STREAM_CLOSE) or (signature == STEP and STREAM_ID in request.inputs)


def _error(code, message):
    from tfvideo.serving import _server

    return _server.RequestError(code, message)


def _shape_str(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def frame_info(servable):
    """The step signature's `frame` TensorInfo; FAILED_PRECONDITION for a model that does not stream."""
    defs = servable.signature_defs
    missing = [k for k in (INIT_STATE, STEP) if k not in defs or k not in servable.functions]
    if missing or FRAME not in defs[STEP].inputs:
        raise _error(grpc.StatusCode.FAILED_PRECONDITION,
                     f"model '{servable.name}' version {servable.version} is not a streaming export: streams need "
                     f"signatures '{INIT_STATE}' and '{STEP}' (with input '{FRAME}'; tfvideo-export --streaming writes "
                     f"them); it has {', '.join(sorted(defs))}")
    return defs[STEP].inputs[FRAME]


class _Stream:
    """One open stream: its version, state (tensors, batch 1), lock and idle clock."""

    def __init__(self, stream_id, servable, state, now):
        self.id = stream_id
        self.servable = servable
        self.state = state
        info = frame_info(servable)
        self.frame_shape = tuple(d.size for d in info.tensor_shape.dim[1:])
        self.frame_dtype = tf.dtypes.as_dtype(info.dtype)
        self.lock = threading.Lock()  # Held while stepping: one step of this stream at a time.
        self.last_used = now
        self.busy = 0  # Steps holding or waiting for `lock` (a busy stream never expires).
        self.frames = 0
        self.ended = None  # Why it is gone, once removed from the table.

    def describe(self):
        return f"stream '{self.id}' (model '{self.servable.name}' version {self.servable.version})"


class StreamTable:
    """The open streams of a `ModelServer`.

    Args:
      is_served: `servable -> bool`, whether that loaded version is still served.
      idle_timeout_s: a stream not stepped for this long expires.
      max_streams: open streams at most; opening more is RESOURCE_EXHAUSTED.
    """

    def __init__(self, is_served, idle_timeout_s=DEFAULT_IDLE_TIMEOUT_S, max_streams=DEFAULT_MAX_STREAMS,
                 clock=time.monotonic):
        self._is_served = is_served
        self.idle_timeout_s = float(idle_timeout_s)
        self.max_streams = int(max_streams)
        self._clock = clock
        self._lock = threading.Lock()
        self._streams = {}
        self._ended = collections.OrderedDict()  # id -> why it ended.

    def __len__(self):
        with self._lock:
            return len(self._streams)

    # --- table ---------------------------------------------------------------------
    def _end(self, stream, why):
        """Removes `stream` (table lock held) and remembers why."""
        stream.ended = why
        self._streams.pop(stream.id, None)
        self._ended[stream.id] = why
        while len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)

    def sweep(self):
        """Ends the streams idle past the timeout and those whose version is no longer served.

        Decided under the table lock (a step marks its stream busy under it), so a stream being
        stepped, or stepped just now, is never ended here.
        """
        with self._lock:
            now = self._clock()
            for stream in list(self._streams.values()):
                if stream.busy:
                    continue
                if now - stream.last_used > self.idle_timeout_s:
                    why = (f"expired: not stepped for {now - stream.last_used:.1f} s (--stream_idle_timeout_s="
                           f"{self.idle_timeout_s:g}) after {stream.frames} frames")
                elif not self._is_served(stream.servable):
                    why = self._unloaded(stream)
                else:
                    continue
                self._end(stream, why)
                logging.info("Stream %s of model '%s' version %d %s", stream.id, stream.servable.name,
                             stream.servable.version, why)

    @staticmethod
    def _unloaded(stream):
        return (f"ended: it was opened on model '{stream.servable.name}' version {stream.servable.version}, which is "
                "no longer served")

    def _gone(self, name, stream_id):
        why = self._ended.get(stream_id)
        if why is None:
            return _error(grpc.StatusCode.NOT_FOUND,
                          f"stream '{stream_id}' of model '{name}' is not open (unknown stream id); open one with "
                          f"'{STREAM_OPEN}'")
        return _error(grpc.StatusCode.NOT_FOUND, f"stream '{stream_id}' of model '{name}' {why}; open a new stream")

    def _find(self, name, stream_id, version):
        """The open stream (table lock held); NOT_FOUND / INVALID_ARGUMENT naming the id."""
        if not isinstance(stream_id, str) or not stream_id:
            raise _error(grpc.StatusCode.INVALID_ARGUMENT,
                         f"'{STREAM_ID}' must be the non-empty id '{STREAM_OPEN}' returned, got {stream_id!r}")
        stream = self._streams.get(stream_id)
        if stream is None:
            raise self._gone(name, stream_id)
        if stream.servable.name != name:
            raise _error(grpc.StatusCode.INVALID_ARGUMENT,
                         f"{stream.describe()} belongs to model '{stream.servable.name}', not '{name}'")
        if version is not None and version != stream.servable.version:
            raise _error(grpc.StatusCode.INVALID_ARGUMENT,
                         f"{stream.describe()} is bound to the version it was opened on; the request names version "
                         f"{version}")
        return stream

    # --- operations ----------------------------------------------------------------
    def open(self, servable):
        """Opens a stream on `servable` (a loaded streaming version); returns the `_Stream`."""
        frame_info(servable)
        state = dict(servable.functions[INIT_STATE](batch_size=tf.constant(1, tf.int32)))
        self.sweep()
        with self._lock:
            if len(self._streams) >= self.max_streams:
                raise _error(grpc.StatusCode.RESOURCE_EXHAUSTED,
                             f"the server holds {len(self._streams)} open streams, its limit (--max_streams="
                             f"{self.max_streams}); close one, or retry once idle ones expire "
                             f"(--stream_idle_timeout_s={self.idle_timeout_s:g})")
            stream_id = secrets.token_hex(12)
            stream = self._streams[stream_id] = _Stream(stream_id, servable, state, self._clock())
        logging.info("Opened %s", stream.describe())
        return stream

    def close(self, name, stream_id, version=None):
        """Closes a stream; returns it (with `frames` stepped)."""
        with self._lock:
            stream = self._find(name, stream_id, version)
            self._end(stream, "was closed")
        return stream

    def servable(self, name, stream_id, version=None):
        """The version stream `stream_id` of model `name` is bound to (errors as `step`)."""
        self.sweep()
        with self._lock:
            return self._find(name, stream_id, version).servable

    def step(self, name, stream_id, frames, version=None):
        """Steps `frames` [N, H, W, C] through the stream in order; returns (stream, {output: [N, ...]}).

        The outputs are the step signature's non-state outputs (scores, logits) and
        `frame_index` (int64 [N], each frame's position in the stream). The new state is
        kept only once every frame went through.
        """
        self.sweep()
        with self._lock:
            stream = self._find(name, stream_id, version)
            stream.busy += 1
            stream.last_used = self._clock()
        try:
            with stream.lock:
                if stream.ended is not None:  # Closed (or its version unloaded) while this step waited.
                    raise self._gone(name, stream_id)
                if not self._is_served(stream.servable):
                    with self._lock:
                        self._end(stream, self._unloaded(stream))
                    raise self._gone(name, stream_id)
                frames = self._check_frames(stream, frames)
                return stream, self._run(stream, frames)
        finally:
            with self._lock:
                stream.busy -= 1
                stream.last_used = self._clock()

    @staticmethod
    def _check_frames(stream, frames):
        want = f"[N, {', '.join(map(str, stream.frame_shape))}]"
        what = (f"{stream.describe()} takes {stream.frame_dtype.name} frames {want} (N successive frames of "
                f"{stream.frame_shape[0]}x{stream.frame_shape[1]} with {stream.frame_shape[2]} channels)")
        frames = np.asarray(frames)
        if frames.dtype != stream.frame_dtype.as_numpy_dtype:
            raise _error(grpc.StatusCode.INVALID_ARGUMENT, f"input '{FRAME}' has dtype {frames.dtype.name}; {what}")
        if frames.ndim != 4 or tuple(frames.shape[1:]) != stream.frame_shape or not frames.shape[0]:
            raise _error(grpc.StatusCode.INVALID_ARGUMENT,
                         f"input '{FRAME}' has shape {_shape_str(frames.shape)}; {what}")
        return frames

    @staticmethod
    def _run(stream, frames):
        from tfvideo.serving import _server

        function = stream.servable.functions[STEP]
        state = stream.state
        rows = collections.defaultdict(list)
        try:
            for i in range(frames.shape[0]):
                out = function(**{FRAME: tf.constant(frames[i : i + 1])}, **state)
                state = {k: out[k] for k in state}
                for key, value in out.items():
                    if key not in state:
                        rows[key].append(value.numpy())
        except tf.errors.OpError as e:
            raise _error(_server._grpc_code(e), f"{stream.describe()}: signature '{STEP}': "
                                                f"{_server._tf_error_reason(e.message)}") from e
        first = stream.frames
        stream.state = state
        stream.frames += frames.shape[0]
        outputs = {k: np.concatenate(v, axis=0) for k, v in rows.items()}
        outputs["frame_index"] = np.arange(first, stream.frames, dtype=np.int64)
        return outputs
