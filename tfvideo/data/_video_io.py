"""Video file decoding with PyAV: probe, index and decode exactly the frames asked for.

Frame `i` of a video is the i-th frame in presentation order, returned as displayed (the
display matrix's rotation or mirror applied). The index is built by
demuxing packets (no decoding), so variable-frame-rate files map exactly; decoding seeks
to the keyframe before each wanted frame when that skips several frames, so sparse sampling never
decodes the whole video.
"""

import collections
import dataclasses
import itertools
import os
import re
import threading

import av
import numpy as np
from av.video.reformatter import VideoReformatter

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
    """What `probe_video` learns about a file without decoding it.

    `height` and `width` are the coded frame size: a file whose display matrix turns it a
    quarter (portrait phone footage) reads as `width x height` frames (see `VideoReader.read`).
    """

    path: str
    num_frames: int
    fps: float
    height: int
    width: int
    codec: str


@dataclasses.dataclass(frozen=True)
class _FrameIndex:
    pts: np.ndarray  # [N] presentation timestamps in display order.
    dts: np.ndarray  # [N] decode timestamp of each frame's packet (its pts where the container has none).
    keyframe: np.ndarray  # [N] index of the last keyframe at or before each frame.
    position: dict  # packet/frame timestamp -> display index.
    end: int  # Where the last frame's display ends (its pts + duration), in the stream's time base.


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


def _timestamp(item):
    """A packet's or frame's timestamp in the index: pts, else dts (e.g. AVI packets)."""
    return item.pts if item.pts is not None else item.dts


def _build_index(container, path):
    stream = container.streams.video[0]
    pts, dts, keys, ends = [], [], [], []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # The flush packet at the end.
            t, d = packet.pts, packet.dts
            if t is None:
                if d is None:
                    continue
                t = d
            pts.append(t)
            dts.append(t if d is None else d)
            keys.append(packet.is_keyframe)
            ends.append(t + (packet.duration or 0))
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"corrupt stream while indexing: {e}") from e
    if not pts:
        raise VideoDecodeError(path, "video stream has no frames")
    order = np.argsort(np.asarray(pts), kind="stable")
    pts = np.asarray(pts, np.int64)[order]
    dts = np.asarray(dts, np.int64)[order]
    keys = np.asarray(keys, bool)[order]
    keys[0] = True  # Decoding always starts from the stream's beginning.
    last_key = np.maximum.accumulate(np.where(keys, np.arange(len(keys)), 0))
    # The last frame is taken to last as long as the one before it: packet durations are
    # often the decode-order spacing (MP4's stts), not the display time of a variable-rate file.
    last = int(pts[-1] - pts[-2]) if len(pts) > 1 else max(ends[-1] - pts[-1] if ends else 1, 1)
    return _FrameIndex(pts=pts, dts=dts, keyframe=last_key, position={int(p): i for i, p in enumerate(pts.tolist())},
                       end=int(pts[-1]) + max(last, 1))


def _info(path, container, index):
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


@tf_export("tfvideo.data.probe_video")
def probe_video(path):
    """Returns `VideoInfo` for a video file, counting frames by demuxing (no decoding)."""
    with _open(path) as container:
        return _info(path, container, _build_index(container, path))


# Codecs whose decoder drops non-reference frames (`skip_frame="NONREF"`) without changing
# any other frame: nothing refers to such a frame. Checked pixel for pixel against a
# sequential decode in tests/data/test_video_io.py; other codecs decode every frame.
_NONREF_SKIP_CODECS = frozenset({"h264", "mpeg4"})


# A seek (flush, container seek, decoding from the keyframe again) is taken only when it
# skips at least this many frames: on 540p H.264 it cost ~2 ms, ~4 frames' decoding
# (docs/notes/data.md). Dense clips (I3D 32 x 2) on short-GOP files crossed a keyframe
# every few frames and sought at each one (26 seeks in 4 clips; now 4, 5% more frames).
_SEEK_SKIPS_AT_LEAST = 4


def _check_threads(num_threads):
    if num_threads is None:
        return None
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"num_threads={num_threads!r} must be an integer >= 1 or None (FFmpeg's choice: all cores).")
    return int(num_threads)


@tf_export("tfvideo.data.VideoReader")
class VideoReader:
    """An open video file for several reads: the packet index is built once.

    Frame `i` is the i-th frame in display order (see `read_frames`). Use it for several
    clips of one video (multi-clip testing, feature extraction), or to probe and read a
    file with one pass over its packets:

        with VideoReader(path) as video:
            frames = video.read(sampler(video.num_frames))

    A reader holds one open decoder: use it from one thread at a time (one reader per
    thread for parallel reads).

    Args:
      path: video file.
      num_threads: decoding threads (>= 1), or None for FFmpeg's choice (one per core).
    Raises:
      VideoDecodeError: the file is missing, empty, corrupt or has no video stream.
    """

    def __init__(self, path, num_threads=None):
        num_threads = _check_threads(num_threads)
        self.path = os.fspath(path)
        self._container = _open(self.path)
        try:
            self._index = _build_index(self._container, self.path)
            self.info = _info(self.path, self._container, self._index)
        except BaseException:
            self._container.close()
            raise
        self._stream = self._container.streams.video[0]
        context = self._stream.codec_context
        # Threads must be set before the decoder opens (at the first packet).
        if num_threads is None:
            context.thread_type = "AUTO"
        else:
            context.thread_count = num_threads
            context.thread_type = "AUTO" if num_threads > 1 else "SLICE"
        self._skip_nonref = context.name in _NONREF_SKIP_CODECS
        self._scalers = None

    @property
    def num_frames(self):
        return self.info.num_frames

    def close(self):
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _seek(self, key):
        """Seeks so that decoding starts at keyframe `key` or earlier; returns the packets from there.

        Demuxers seek by pts (Matroska) or by dts (MP4, AVI): try the keyframe's pts, then its
        dts, then the stream's start, until the first packet is a keyframe at or before `key`.
        """
        index, stream = self._index, self._stream
        for ts in dict.fromkeys([int(index.pts[key]), int(index.dts[key]), int(min(index.dts[0], index.pts[0]))]):
            self._container.seek(ts, stream=stream, backward=True)
            packets = self._container.demux(stream)
            first = next(packets, None)
            if first is None:
                continue
            start = index.position.get(_timestamp(first)) if first.size else None
            if first.is_keyframe and start is not None and start <= key:
                break
        return itertools.chain([first], packets) if first is not None else iter(())

    def _frames_from(self, key, wanted, skip):
        """Yields (display index, frame) decoded from keyframe `key` on.

        With `skip`, packets of frames not in `wanted` are decoded with skip_frame="NONREF":
        a non-reference frame nobody asked for is not decoded at all.
        """
        context = self._stream.codec_context
        position = self._index.position
        mode = None
        if not skip:
            context.skip_frame = "DEFAULT"  # An abandoned skipping pass may have left NONREF on.
        for packet in self._seek(key):
            if skip:
                i = position.get(_timestamp(packet)) if packet.size else None
                want = "NONREF" if i is not None and i not in wanted else "DEFAULT"
                if want != mode:
                    context.skip_frame = mode = want
            for frame in context.decode(packet):
                i = position.get(_timestamp(frame))
                if i is not None:
                    yield i, frame
        if skip and mode != "DEFAULT":
            context.skip_frame = "DEFAULT"

    def _decode(self, wanted, skip, stats):
        """Yields (display index, frame) for the sorted unique `wanted` indices, each once.

        Ascending, except that a frame the decoder skipped may come after later ones (or
        never: the caller checks). Only the frame being handed out is held.
        """
        keyframe = self._index.keyframe
        wanted_set = set(wanted.tolist())
        given = set()
        frames = last = None  # `last`: display index of the last frame the decoder produced.
        for target in wanted.tolist():
            if target in given:
                continue
            key = int(keyframe[target])
            if frames is None or last is None or target <= last or key - last - 1 >= _SEEK_SKIPS_AT_LEAST:
                frames = self._frames_from(key, wanted_set, skip)
                stats["seeks"] += 1
                last = None
            for i, frame in frames:
                stats["decoded"] += 1
                last = i
                if i in wanted_set and i not in given:
                    given.add(i)
                    yield i, frame
                if i >= target:
                    break

    def _decode_in_order(self, wanted, stats):
        """Yields (display index, frame) for every index of the sorted unique `wanted`, ascending.

        Raises `VideoDecodeError` for a frame that does not decode. Skipping non-reference
        frames is turned off for good (and decoding resumes at the missing frame) should a
        wanted frame ever go missing with it on.
        """
        pos = 0
        while pos < len(wanted):
            skip = self._skip_nonref
            for i, frame in self._decode(wanted[pos:], skip, stats):
                if i != wanted[pos]:
                    break  # wanted[pos] was passed over.
                yield i, frame
                pos += 1
            if pos < len(wanted):
                if not skip:
                    raise VideoDecodeError(self.path, f"frame {int(wanted[pos])} of {self.num_frames} could not be "
                                                      "decoded (truncated?)")
                self._skip_nonref = False  # Never seen: a frame went missing with skipping on.

    def _to_rgb(self, frame, size):
        """uint8 [h, w, 3] RGB of a decoded frame as displayed, resized to `size` = (h, w) when given.

        `size` is in the coded orientation (the frame's own height and width); the display
        rotation (see `_display_transform`) is applied to the resized frame.

        Converted to planar RGB at full size first (the same pixels as without resizing),
        then scaled with FFmpeg's bilinear filter (widened when shrinking: antialiased, as
        `resize_short_side`), then packed. Scaling the YUV frame straight to RGB is cheaper
        but interpolates the subsampled chroma, up to ~50 levels away from resizing the
        full-size RGB frame at sharp colour edges; scaling into packed RGB is slower.

        The reader keeps one single-threaded scaler per step for all its frames:
        `frame.to_ndarray` builds a new scaler for every frame, with one thread per core
        (PyAV's default), whose setup and hand-offs cost more than the conversion on
        small frames (on 360p dense clips, 2 loaded cores: wall ~3-5x its CPU time).
        """
        if self._scalers is None:
            self._scalers = tuple(VideoReformatter() for _ in range(4))
        if size is None or size == (frame.height, frame.width):
            rgb = self._scalers[3].reformat(frame, format="rgb24", threads=1).to_ndarray()
        else:
            planar = self._scalers[0].reformat(frame, format="gbrp", threads=1)
            planar = self._scalers[1].reformat(planar, size[1], size[0], format="gbrp", interpolation="BILINEAR",
                                               threads=1)
            rgb = self._scalers[2].reformat(planar, format="rgb24", threads=1).to_ndarray()
        return _orient(rgb, _display_transform(frame))

    def _check_read(self, indices, short_side):
        """(int64 indices, target size in the coded orientation or None); raises for bad ones."""
        if short_side is not None and (isinstance(short_side, bool) or not isinstance(short_side, (int, np.integer))
                                       or short_side < 1):
            raise ValueError(f"{self.path}: short_side={short_side!r} must be an integer >= 1 or None.")
        size = None if short_side is None else _short_side_size(self.info.height, self.info.width, int(short_side))
        indices = np.asarray(indices, np.int64)
        n = self.num_frames
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise VideoDecodeError(self.path, f"frame indices {indices.min()}..{indices.max()} outside [0, {n})")
        return indices, size

    def read(self, indices, stats=None, short_side=None):
        """Decodes the frames at `indices` (display order): uint8 `indices.shape + [H, W, 3]` RGB.

        Frames come out as displayed: a display rotation or flip the file records (a
        portrait phone video's 90-degree display matrix) is applied, so such a file reads
        as `[..., width, height, 3]` of its coded size. Each frame is converted (and
        resized) as soon as it is decoded: memory holds the output and one decoded frame.

        Args:
          indices: int array of any shape; values in [0, num_frames).
          stats: optional dict; receives `decoded` (frames decoded) and `seeks`.
          short_side: resize so the shorter side is this many pixels (the size
            `resize_short_side` gives), in FFmpeg's scaler while converting to RGB:
            bilinear, antialiased when shrinking; on average within 1-2 levels (of
            0..255) of `resize_short_side` on the full-size frames, several times cheaper.
        """
        indices, size = self._check_read(indices, short_side)
        wanted, inverse = np.unique(indices, return_inverse=True)
        counts = {"decoded": 0, "seeks": 0}
        out = None
        try:
            for k, (_, frame) in enumerate(self._decode_in_order(wanted, counts)):
                rgb = self._to_rgb(frame, size)
                if out is None:
                    out = np.empty((len(wanted),) + rgb.shape, np.uint8)
                out[k] = rgb
        except av.FFmpegError as e:
            raise VideoDecodeError(self.path, f"corrupt data while decoding: {e}") from e
        if stats is not None:
            stats.update(counts)
        if out is None:
            return np.zeros(indices.shape + (0, 0, 3), np.uint8)
        inverse = inverse.reshape(-1)
        if len(wanted) != indices.size or np.any(inverse != np.arange(indices.size)):
            out = out[inverse]  # Back to the caller's order (and repeats).
        return out.reshape(indices.shape + out.shape[1:])

    def iter_frames(self, indices, short_side=None, stats=None):
        """Yields the frames at `indices` one at a time: uint8 [H, W, 3] RGB, as `read` gives them.

        For long reads (a whole video): each frame is decoded, converted and handed out
        before the next is decoded, so memory does not grow with the number of frames.

        Args:
          indices: 1-D int array, non-decreasing (repeats allowed), values in [0, num_frames).
          short_side: see `read`.
          stats: optional dict; receives `decoded` and `seeks` once the last frame is out.
        """
        indices, size = self._check_read(indices, short_side)
        if indices.ndim != 1 or np.any(np.diff(indices) < 0):
            raise ValueError(f"{self.path}: iter_frames takes 1-D non-decreasing indices (use read for any order).")
        wanted, counts_per_frame = np.unique(indices, return_counts=True)
        counts = {"decoded": 0, "seeks": 0}
        try:
            for k, (_, frame) in enumerate(self._decode_in_order(wanted, counts)):
                rgb = self._to_rgb(frame, size)
                del frame
                for _ in range(int(counts_per_frame[k])):
                    yield rgb
        except av.FFmpegError as e:
            raise VideoDecodeError(self.path, f"corrupt data while decoding: {e}") from e
        if stats is not None:
            stats.update(counts)

    @property
    def frame_times(self):
        """float64 [N]: when each frame (display order) is shown, in seconds from the first."""
        index = self._index
        return ((index.pts - index.pts[0]) * float(self._stream.time_base)).astype(np.float64)

    @property
    def duration(self):
        """Seconds from the first frame's display to the end of the last's."""
        index = self._index
        return float((index.end - index.pts[0]) * self._stream.time_base)


def _display_transform(frame):
    """How to turn a decoded frame as displayed: (transpose, flip rows, flip columns), or None.

    From the frame's display matrix (FFmpeg's AV_FRAME_DATA_DISPLAYMATRIX, which decoders
    attach from the container's, e.g. an MP4 track's rotation). A source pixel at (column x,
    row y) is shown at (a x + c y, b x + d y) (plus a translation), [a b . c d .] the
    matrix's first two rows in 16.16 fixed point. Right angles and mirrors only; another
    angle is taken to the nearest right angle.
    """
    if not frame.side_data:
        return None
    matrix = frame.side_data.get(_DISPLAYMATRIX)
    if matrix is None:
        return None
    a, b, _, c, d = np.frombuffer(bytes(matrix), np.int32)[:5].astype(np.int64).tolist()
    if abs(a) + abs(d) >= abs(b) + abs(c):  # Rows stay rows: y' = d y, x' = a x.
        transform = (False, d < 0, a < 0)
    else:  # Rows become columns: y' = b x, x' = c y.
        transform = (True, b < 0, c < 0)
    return transform if any(transform) else None


def _orient(image, transform):
    """`image` [H, W, C] turned by `_display_transform`'s (transpose, flip rows, flip columns)."""
    if transform is None:
        return image
    transpose, flip_rows, flip_columns = transform
    if transpose:
        image = image.transpose(1, 0, 2)
    if flip_rows:
        image = image[::-1]
    if flip_columns:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


_DISPLAYMATRIX = av.sidedata.sidedata.Type.DISPLAYMATRIX


def _short_side_size(height, width, size):
    """(h, w) with the shorter side `size`: the float32 arithmetic of `resize_short_side`."""
    h, w = np.float32(height), np.float32(width)
    scale = np.float32(size) / min(h, w)
    return max(int(np.round(h * scale)), size), max(int(np.round(w * scale)), size)


@tf_export("tfvideo.data.read_frames")
def read_frames(path, indices, stats=None, num_threads=None, short_side=None):
    """Decodes the frames at `indices` (display order) of a video file.

    Frame `i` is the i-th frame in presentation order, for any codec and container (also
    B-frames, open GOPs and variable frame rate). Decoding seeks to the keyframe before a
    wanted frame only when that skips several frames, decodes nothing past the last wanted frame,
    and (H.264, MPEG-4 Part 2) skips non-reference frames nobody asked for.

    Args:
      path: video file.
      indices: int array of any shape; values in [0, num_frames).
      stats: optional dict; receives `decoded` (frames decoded) and `seeks`.
      num_threads: decoding threads (>= 1), or None for FFmpeg's choice (one per core).
      short_side: resize so the shorter side is this many pixels (see `VideoReader.read`).

    Returns:
      uint8 array `indices.shape + [H, W, 3]` in RGB, as displayed (the file's display
      rotation applied).
    """
    with VideoReader(path, num_threads=num_threads) as video:
        return video.read(indices, stats=stats, short_side=short_side)


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
