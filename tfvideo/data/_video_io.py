"""Video file decoding with PyAV: probe, index and decode exactly the frames asked for.

Frame `i` of a video is the i-th frame in presentation order. The index is built by
demuxing packets (no decoding), so variable-frame-rate files map exactly; decoding seeks
to the keyframe before each wanted frame when that skips work, so sparse sampling never
decodes the whole video.
"""

import collections
import dataclasses
import os
import re
import threading

import av
import numpy as np

from tfvideo.api._export import tf_export

# str(error) -> (path, reason) of the last errors raised inside TensorFlow ops: a
# py_function turns an exception into a TF error that keeps only its text (a registry).
_RAISED_IN_OPS = collections.OrderedDict()
_RAISED_LOCK = threading.Lock()
_RAISED_KEPT = 256
_IN_OP_ERROR = re.compile(r"VideoDecodeError: (.*?)\n(?:Traceback \(most recent call last\)|\s*$)", re.S)


@tf_export("tfvideo.data.VideoDecodeError")
class VideoDecodeError(ValueError):
    """A video or record that cannot give frames: `path` (file, shard or source) and `reason`.

    A video file missing, empty, corrupt, truncated or without a video stream; a TFRecord
    record that does not parse or decode, or a damaged shard; a TFDS example without
    decodable frames. Iterating a `video_dataset` / `tfds_dataset` with on_error="raise"
    raises it (chained to TensorFlow's error); where TensorFlow runs the pipeline itself
    (inside a `tf.function`, `keras.Model.fit`), `VideoDecodeError.from_error` recovers it
    from the TensorFlow error.
    """

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.path, self.reason)

    def _remember(self):
        """Keeps (path, reason) so `from_error` recovers them exactly; returns self (raise it in a TF op)."""
        with _RAISED_LOCK:
            _RAISED_IN_OPS[str(self)] = (self.path, self.reason)
            _RAISED_IN_OPS.move_to_end(str(self))
            while len(_RAISED_IN_OPS) > _RAISED_KEPT:
                _RAISED_IN_OPS.popitem(last=False)
        return self

    @classmethod
    def from_error(cls, error):
        """The `VideoDecodeError` behind `error`, or None.

        `error` may be a `VideoDecodeError` or the TensorFlow error (e.g.
        `tf.errors.InvalidArgumentError`) that a pipeline op raised for one.
        """
        if isinstance(error, cls):
            return error
        match = _IN_OP_ERROR.search(getattr(error, "message", None) or str(error))
        if not match:
            return None
        text = match.group(1).rstrip()
        with _RAISED_LOCK:
            known = _RAISED_IN_OPS.get(text)
        if known is None:  # Raised in another process: the path ends at the first ": ".
            path, _, reason = text.partition(": ")
            known = (path, reason)
        found = cls(*known)
        found.__cause__ = error if isinstance(error, BaseException) else None
        return found


@tf_export("tfvideo.data.VideoInfo")
@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns about a file without decoding it."""

    path: str
    num_frames: int
    fps: float
    height: int
    width: int
    codec: str


@dataclasses.dataclass(frozen=True)
class _FrameIndex:
    pts: np.ndarray  # [N] presentation timestamps in display order.
    keyframe: np.ndarray  # [N] index of the last keyframe at or before each frame.


def _open(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file does not exist")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    try:
        container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise VideoDecodeError(path, f"cannot open container: {e}") from e
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "has no video stream")
    return container


def _build_index(container, path):
    stream = container.streams.video[0]
    pts, keys = [], []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # The flush packet at the end.
            t = packet.pts if packet.pts is not None else packet.dts
            if t is None:
                continue
            pts.append(t)
            keys.append(packet.is_keyframe)
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"corrupt stream while indexing: {e}") from e
    if not pts:
        raise VideoDecodeError(path, "video stream has no frames")
    order = np.argsort(np.asarray(pts), kind="stable")
    pts = np.asarray(pts, np.int64)[order]
    keys = np.asarray(keys, bool)[order]
    keys[0] = True  # Decoding always starts from the stream's beginning.
    last_key = np.maximum.accumulate(np.where(keys, np.arange(len(keys)), 0))
    return _FrameIndex(pts=pts, keyframe=last_key)


@tf_export("tfvideo.data.probe_video")
def probe_video(path):
    """Returns `VideoInfo` for a video file, counting frames by demuxing (no decoding)."""
    with _open(path) as container:
        index = _build_index(container, path)
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 0
        return VideoInfo(
            path=os.fspath(path),
            num_frames=len(index.pts),
            fps=float(rate),
            height=stream.codec_context.height,
            width=stream.codec_context.width,
            codec=stream.codec_context.name,
        )


def _frame_pts(frame):
    return frame.pts if frame.pts is not None else frame.dts


@tf_export("tfvideo.data.read_frames")
def read_frames(path, indices, stats=None):
    """Decodes the frames at `indices` (display order) of a video file.

    Args:
      path: video file.
      indices: int array of any shape; values in [0, num_frames).
      stats: optional dict; receives `decoded` (frames decoded) and `seeks`.

    Returns:
      uint8 array `indices.shape + [H, W, 3]` in RGB.
    """
    indices = np.asarray(indices, np.int64)
    with _open(path) as container:
        index = _build_index(container, path)
        n = len(index.pts)
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise VideoDecodeError(
                path, f"frame indices {indices.min()}..{indices.max()} outside [0, {n})"
            )
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        pts_to_index = {int(p): i for i, p in enumerate(index.pts)}
        wanted = np.unique(indices)
        wanted_set = set(wanted.tolist())
        decoded = {}
        frames_decoded = seeks = 0
        last = None  # Index of the last frame the decoder produced.
        frames = None
        try:
            for target in wanted:
                target = int(target)
                key = int(index.keyframe[target])
                if last is None or target <= last or key > last:
                    container.seek(int(index.pts[key]), stream=stream, backward=True)
                    frames = container.decode(stream)
                    seeks += 1
                    last = None
                for frame in frames:
                    frames_decoded += 1
                    i = pts_to_index.get(int(_frame_pts(frame)), None)
                    if i is None:
                        continue
                    last = i
                    if i in wanted_set and i not in decoded:
                        decoded[i] = frame.to_ndarray(format="rgb24")
                    if i >= target:
                        break
                if target not in decoded:
                    raise VideoDecodeError(path, f"frame {target} of {n} could not be decoded (truncated?)")
        except av.FFmpegError as e:
            raise VideoDecodeError(path, f"corrupt data while decoding: {e}") from e
    if stats is not None:
        stats["decoded"] = frames_decoded
        stats["seeks"] = seeks
    if not indices.size:
        return np.zeros(indices.shape + (0, 0, 3), np.uint8)
    return np.stack([decoded[int(i)] for i in indices.reshape(-1)]).reshape(
        indices.shape + decoded[int(indices.flat[0])].shape
    )


@tf_export("tfvideo.data.read_all_frames")
def read_all_frames(path):
    """Decodes every frame of a video: uint8 [N, H, W, 3] and the frame rate."""
    info = probe_video(path)
    return read_frames(path, np.arange(info.num_frames)), info.fps


@tf_export("tfvideo.data.write_video")
def write_video(path, frames, fps=25, codec="libx264", pixel_format="yuv420p", options=None):
    """Encodes uint8 frames [N, H, W, 3] (RGB) into a video file with PyAV."""
    frames = np.asarray(frames, np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"write_video({path}): frames must be [N, H, W, 3], got {frames.shape}")
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream(codec, rate=round(fps))
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = pixel_format
        if options:
            stream.options = dict(options)
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
