"""tfvideo-stream --saved_model / --litert: label a video or camera frame by frame with an online TSM.

Frames are read one at a time (never the whole video), resized and centre-cropped as the
run's evaluation does (the export's stream_config.json), and fed through the exported
`step` with the shift buffers as state. `--realtime` paces them at the video's frame rate;
a camera is paced by itself. The label changes are printed with their timestamps;
`--output_video` writes each frame with the top labels and a score bar drawn on it.
"""

import time

import av
import cv2
import numpy as np

TOP = 3


def video_frames(path):
    """(fps, generator of (seconds, RGB uint8 [H, W, 3])) of a video file, decoded as it plays."""
    try:
        container = av.open(path)
        stream = container.streams.video[0]
    except (OSError, IndexError, av.error.FFmpegError) as e:
        raise ValueError(f"--video={path}: cannot be read as a video ({e})") from None
    fps = float(stream.average_rate or 25)

    def generate():
        with container:
            for i, frame in enumerate(container.decode(stream)):
                yield (frame.time if frame.time is not None else i / fps), frame.to_ndarray(format="rgb24")

    return fps, generate()


def camera_frames(index):
    """(fps, generator of (seconds since start, RGB frame)) of camera `index` (OpenCV)."""
    try:  # OpenCV's own warnings about the devices it probed would precede the one-line error.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise ValueError(f"--camera={index}: no camera with this index can be opened")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    started = time.monotonic()

    def generate():
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield time.monotonic() - started, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return fps, generate()


def network_input(frame, config):
    """RGB uint8 [H, W, 3] -> float32 [1, S, S, 3] pixels: short side to resize_short, centre crop."""
    height, width = frame.shape[:2]
    short = config.get("resize_short") or min(height, width)
    crop = config["crop_size"]
    if min(height, width) != short:
        scale = short / min(height, width)
        size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        height, width = frame.shape[:2]
    if min(height, width) < crop:
        raise ValueError(f"frames of {width}x{height} are smaller than the model's {crop}x{crop} crop")
    top, left = (height - crop) // 2, (width - crop) // 2
    return frame[None, top : top + crop, left : left + crop].astype(np.float32)


def timestamp(seconds):
    minutes, secs = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:02d}:{minutes:02d}:{secs:06.3f}"


def label_stream(runner, frames, fps, realtime=False, frame_stride=1):
    """Steps every `frame_stride`-th frame through `runner`; yields (seconds, frame, scores [K]) for every
    frame in stream order (frames between two steps keep the last scores)."""
    state = runner.init_state(1)
    started = time.monotonic()
    scores = None
    for i, (seconds, frame) in enumerate(frames):
        if realtime:
            time.sleep(max(0.0, started + i / fps - time.monotonic()))
        if i % frame_stride == 0:
            scores, _, state = runner.step(network_input(frame, runner.config), state)
        yield seconds, frame, scores[0]


MIN_DRAWN_SIDE = 360


def draw(frame, scores, labels, top=TOP):
    """The frame (RGB) with the top labels, their scores and a score bar each, in the top-left corner.

    Frames with a short side under MIN_DRAWN_SIDE are enlarged first (an integer factor) so the text fits.
    """
    factor = -(-MIN_DRAWN_SIDE // min(frame.shape[:2]))
    if factor > 1:
        frame = cv2.resize(frame, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
    out = np.ascontiguousarray(frame).copy()
    height, width = out.shape[:2]
    scale = max(0.35, min(width, height) / 400)
    line = int(22 * scale) + 4
    bar = max(40, width // 4)
    order = np.argsort(-scores)[:top]
    panel_width = min(width, bar + int(170 * scale))
    out[: line * len(order) + 6, :panel_width] //= 3  # Darkened panel for legibility.
    for row, k in enumerate(order):
        y = 4 + row * line
        filled = int(round(bar * float(scores[k])))
        colour = (40, 220, 40) if row == 0 else (230, 200, 40)
        cv2.rectangle(out, (4, y + 3), (4 + bar, y + line - 3), (90, 90, 90), 1)
        cv2.rectangle(out, (4, y + 3), (4 + max(filled, 1), y + line - 3), colour, -1)
        cv2.putText(out, f"{labels[k]} {scores[k]:.2f}", (bar + 10, y + line - 6), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class VideoWriter:
    """Writes RGB frames one at a time to an mp4 (PyAV, H.264)."""

    def __init__(self, path, fps, width, height):
        try:
            self._container = av.open(path, mode="w")
        except (OSError, av.error.FFmpegError) as e:
            raise ValueError(f"--output_video={path}: cannot be written ({e})") from None
        self._stream = self._container.add_stream("libx264", rate=max(1, round(fps)))
        self._stream.width, self._stream.height = width - width % 2, height - height % 2
        self._stream.pix_fmt = "yuv420p"

    def write(self, frame):
        frame = frame[: self._stream.height, : self._stream.width]
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            self._container.mux(packet)

    def close(self):
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


def run_stream(runner, fps, frames, realtime=False, output_video=None, echo=print, frame_stride=1):
    """Labels `frames`; echoes one line per label change; returns the number of frames."""
    labels = runner.labels
    writer, current, count = None, None, 0
    try:
        for seconds, frame, scores in label_stream(runner, frames, fps, realtime, frame_stride):
            top = int(scores.argmax())
            if top != current:
                echo(f"{timestamp(seconds)}  {labels[top]}  {scores[top]:.3f}")
                current = top
            if output_video:
                drawn = draw(frame, scores, labels)
                if writer is None:
                    writer = VideoWriter(output_video, fps, drawn.shape[1], drawn.shape[0])
                writer.write(drawn)
            count += 1
    finally:
        if writer is not None:
            writer.close()  # What was labelled so far stays playable.
    return count
