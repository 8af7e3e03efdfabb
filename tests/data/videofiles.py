"""Tiny test videos for tests/data: frame-coded files in several containers, and bad files."""

import fractions
import os

import av
import numpy as np
from framecode import frame_code_frames

from tfvideo import data

# (file name, encoder, options): containers x codecs the issue asks for. A short GOP gives
# keyframes to seek to, so sparse reads can skip frames.
# B-frames: H.264 (mp4, mkv) and MPEG-4 Part 2 in AVI, whose packets carry no pts and
# whose GOPs are open (B-frames after an I-frame in decode order are shown before it);
# an open-GOP H.264 file (non-IDR I-frames with leading B-frames). These are the codecs
# and containers of benchmarks/decode_vs_decord.py.
FORMATS = [
    ("h264.mp4", "libx264", {"g": "8", "bf": "2"}),
    ("mpeg4.avi", "mpeg4", {"g": "8"}),
    ("vp9.webm", "libvpx-vp9", {"g": "8"}),
    ("h264.mkv", "libx264", {"g": "8"}),
    ("mpeg4_bframes.avi", "mpeg4", {"g": "8", "bf": "2"}),
    ("h264_open_gop.mp4", "libx264", {"g": "8", "bf": "3", "x264-params": "scenecut=0:open-gop=1"}),
]


def write_code_video(path, num_frames, codec="libx264", options=None, fps=10, height=48, width=64):
    """Writes a video whose frame i shows i (see conftest.frame_code_frames)."""
    data.write_video(path, frame_code_frames(num_frames, height, width), fps=fps, codec=codec, options=options)
    return path


def write_vfr_video(path, durations_ms, height=48, width=64):
    """A variable-frame-rate H.264 file: frame i lasts durations_ms[i] (time base 1/1000)."""
    frames = frame_code_frames(len(durations_ms), height, width)
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = fractions.Fraction(1, 1000)
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        stream.options = {"g": "6"}
        pts = 0
        for image, duration in zip(frames, durations_ms):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = pts, fractions.Fraction(1, 1000)
            pts += duration
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_rotated_video(path, frames, degrees, hflip=False, fps=10):
    """An H.264 mp4 of `frames` [N, H, W, 3] (RGB, stored as coded) whose display matrix says
    to rotate them `degrees` counterclockwise (then mirror left-right with `hflip`) for display,
    as a phone writes portrait footage (its "rotate=90" tag: degrees=-90)."""
    frames = np.asarray(frames, np.uint8)
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        stream.set_display_rotation(degrees, hflip=hflip)
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return os.fspath(path)


def corner_marked_frames(num_frames, height=32, width=64):
    """uint8 [N, H, W, 3] black frames with a white block in the top-left corner (a quarter of each side)."""
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[:, : height // 4, : width // 4] = 255
    return frames


def marked_corner(frame):
    """Which corner of a decoded frame holds the white block: "top-left", "bottom-right", ..."""
    h, w = frame.shape[:2]
    corners = {"top-left": frame[: h // 8, : w // 8], "top-right": frame[: h // 8, -(w // 8):],
               "bottom-left": frame[-(h // 8):, : w // 8], "bottom-right": frame[-(h // 8):, -(w // 8):]}
    lit = [name for name, patch in corners.items() if patch.mean() > 127]
    return lit[0] if len(lit) == 1 else lit


def write_audio_only(path):
    """A WAV file: valid media, no video stream."""
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = (np.sin(np.arange(8000) / 10.0) * 3000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_bad_files(root, good_source):
    """Writes one file per kind of bad input; returns {kind: path}. `good_source` is a valid mp4."""
    root = os.fspath(root)
    paths = {kind: os.path.join(root, f"bad_{kind}{ext}") for kind, ext in [
        ("missing", ".mp4"), ("empty", ".mp4"), ("truncated", ".mp4"), ("corrupt", ".mp4"), ("audio_only", ".wav"),
        ("truncated_mkv", ".mkv"),
    ]}
    open(paths["empty"], "wb").close()
    with open(good_source, "rb") as f:
        payload = f.read()
    with open(paths["truncated"], "wb") as f:
        f.write(payload[: len(payload) // 3])
    with open(paths["corrupt"], "wb") as f:
        f.write(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    write_audio_only(paths["audio_only"])
    # An mkv cut at 60%: the container opens, the stream just ends early (and mid-packet).
    mkv = write_code_video(os.path.join(root, "whole.mkv"), 40, options={"g": "8"})
    with open(mkv, "rb") as f:
        payload = f.read()
    with open(paths["truncated_mkv"], "wb") as f:
        f.write(payload[: len(payload) * 3 // 5])
    return paths
