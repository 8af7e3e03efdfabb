"""PyAV decoding: exactly the frames asked for, for several containers/codecs and VFR."""

import collections
import os

import av
import numpy as np
import pytest
import tensorflow as tf
from av.video.frame import PictureType
from framecode import read_frame_code
from videofiles import (
    FORMATS,
    corner_marked_frames,
    marked_corner,
    write_bad_files,
    write_code_video,
    write_rotated_video,
    write_vfr_video,
)

from tfvideo import data

NUM_FRAMES = 40


@pytest.fixture(scope="module", params=FORMATS, ids=[f[0] for f in FORMATS])
def coded_video(request, tmp_path_factory):
    name, codec, options = request.param
    path = str(tmp_path_factory.mktemp("io") / name)
    return write_code_video(path, NUM_FRAMES, codec=codec, options=options)


def codes(frames):
    return [read_frame_code(f) for f in frames.reshape((-1,) + frames.shape[-3:])]


def test_probe_counts_frames(coded_video):
    info = data.probe_video(coded_video)
    assert (info.num_frames, info.height, info.width) == (NUM_FRAMES, 48, 64)
    assert info.fps == pytest.approx(10.0)


def test_every_frame_in_order(coded_video):
    frames = data.read_frames(coded_video, np.arange(NUM_FRAMES))
    assert frames.shape == (NUM_FRAMES, 48, 64, 3) and frames.dtype == np.uint8
    assert codes(frames) == list(range(NUM_FRAMES))


@pytest.mark.parametrize("indices", [[3, 17, 30], [39, 0, 20, 20, 5], [[1, 9, 25], [38, 2, 2]]], ids=str)
def test_sparse_unordered_and_repeated_indices(coded_video, indices):
    frames = data.read_frames(coded_video, indices)
    assert frames.shape == np.shape(indices) + (48, 64, 3)
    assert codes(frames) == list(np.ravel(indices))


def test_sparse_sampling_decodes_fewer_frames(coded_video):
    stats = {}
    frames = data.read_frames(coded_video, [2, 20, 37], stats=stats)
    assert codes(frames) == [2, 20, 37]
    # Seeking to keyframes (GOP 8) skips most of the 40 frames.
    assert stats["decoded"] < NUM_FRAMES // 2, stats
    assert stats["seeks"] >= 2, stats


def test_read_all_frames(coded_video):
    frames, fps = data.read_all_frames(coded_video)
    assert codes(frames) == list(range(NUM_FRAMES)) and fps == pytest.approx(10.0)


def sequential_decode(path):
    """Every frame in order, decoded from the first packet with no seeking: the reference."""
    with av.open(path) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_the_formats_have_b_frames_and_open_gops(coded_video):
    # Guards the fixtures: the exactness tests below mean something only on such files.
    name = os.path.basename(coded_video)
    with av.open(coded_video) as container:
        packets = [(p.pts if p.pts is not None else p.dts, p.is_keyframe) for p in container.demux(video=0) if p.size]
    with av.open(coded_video) as container:
        types = collections.Counter(PictureType(frame.pict_type).name for frame in container.decode(video=0))
    keys = [d for d, (_, key) in enumerate(packets) if key][1:]
    # Frames decoded after a keyframe but shown before it (they reference the GOP before).
    leading = sum(t < packets[d][0] for d in keys for t, _ in packets[d + 1 :])
    if name in ("h264.mp4", "mpeg4_bframes.avi", "h264_open_gop.mp4"):
        assert types["B"] > 0, types
    if name in ("mpeg4_bframes.avi", "h264_open_gop.mp4"):
        assert leading > 0


@pytest.mark.parametrize("num_threads", [1, 2, None])
def test_exactly_the_frames_of_a_sequential_decode(coded_video, num_threads):
    # Pixel for pixel, in random order with repeats (so backward seeks), one call per set
    # and several reads on one open VideoReader; threads=2 is FFmpeg frame threading.
    reference = sequential_decode(coded_video)
    rng = np.random.default_rng(0)
    sets = [rng.integers(0, NUM_FRAMES, size) for size in (1, 3, 8, 8, 12)] + [[39, 0, 38, 1, 20, 19, 21]]
    for indices in sets:
        got = data.read_frames(coded_video, indices, num_threads=num_threads)
        np.testing.assert_array_equal(got, reference[indices], err_msg=f"indices {list(indices)}")
    with data.VideoReader(coded_video, num_threads=num_threads) as video:
        assert video.num_frames == NUM_FRAMES
        for indices in sets[::-1]:
            np.testing.assert_array_equal(video.read(indices), reference[indices], err_msg=f"indices {list(indices)}")


@pytest.mark.parametrize("num_threads", [1, 2])
def test_dense_reads_decode_through_nearby_keyframes(coded_video, num_threads):
    # Every 2nd frame across five GOPs of 8: the next keyframe is never more than one frame
    # past the last one decoded, so one seek for the clip (a seek at each keyframe cost more
    # than decoding the frame or two it skips); far-apart frames still seek.
    reference = sequential_decode(coded_video)
    indices = np.arange(1, NUM_FRAMES, 2)
    stats = {}
    np.testing.assert_array_equal(data.read_frames(coded_video, indices, stats=stats, num_threads=num_threads),
                                  reference[indices])
    assert stats["seeks"] == 1 and stats["decoded"] <= NUM_FRAMES, stats
    stats = {}
    np.testing.assert_array_equal(data.read_frames(coded_video, [3, 33], stats=stats, num_threads=num_threads),
                                  reference[[3, 33]])
    assert stats["seeks"] == 2 and stats["decoded"] < NUM_FRAMES // 2, stats


def test_unwanted_non_reference_frames_are_not_decoded(tmp_path):
    # GOP 16 with B-frames: frame 14 needs the I/P frames before it, not the other B-frames.
    path = write_code_video(str(tmp_path / "b.mp4"), 32, options={"g": "16", "bf": "3", "x264-params": "scenecut=0"})
    stats = {}
    assert codes(data.read_frames(path, [14], stats=stats)) == [14]
    assert stats["seeks"] == 1 and stats["decoded"] < 14, stats
    stats = {}
    assert codes(data.read_frames(path, np.arange(15), stats=stats)) == list(range(15))
    assert stats["decoded"] >= 15, stats


def test_video_reader_probes_and_reads(coded_video):
    with data.VideoReader(coded_video, num_threads=1) as video:
        assert video.info == data.probe_video(coded_video)
        assert codes(video.read([[5, 30]])) == [5, 30]
        assert codes(video.read([2])) == [2]  # Backwards after the first read.
        assert video.read([]).shape == (0, 0, 0, 3)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_num_threads_is_validated(coded_video, bad):
    with pytest.raises(ValueError, match=rf"num_threads={bad!r} must be an integer >= 1 or None"):
        data.read_frames(coded_video, [0], num_threads=bad)


def test_variable_frame_rate(tmp_path):
    # Frame durations 40/100/200 ms: a timestamp-based index would skip or repeat frames.
    durations = [40, 100, 40, 100, 200, 40] * 5
    path = write_vfr_video(tmp_path / "vfr.mp4", durations)
    info = data.probe_video(path)
    assert info.num_frames == len(durations)
    assert codes(data.read_frames(path, np.arange(len(durations)))) == list(range(len(durations)))
    assert codes(data.read_frames(path, [29, 4, 5, 17])) == [29, 4, 5, 17]


def test_out_of_range_index_names_file(tmp_path):
    path = write_code_video(str(tmp_path / "short.mp4"), 16)
    with pytest.raises(data.VideoDecodeError, match=r"short\.mp4.*outside \[0, 16\)"):
        data.read_frames(path, [3, 16])


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    good = write_code_video(str(root / "good.mp4"), 30)
    return write_bad_files(root, good)


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("missing", "does not exist"),
        ("empty", "empty"),
        ("truncated", "cannot open"),
        ("corrupt", "cannot open"),
        ("audio_only", "no video stream"),
    ],
)
def test_bad_files_raise_with_path_and_reason(bad_files, kind, reason):
    path = bad_files[kind]
    for call in (lambda: data.probe_video(path), lambda: data.read_frames(path, [0])):
        with pytest.raises(data.VideoDecodeError, match=reason) as info:
            call()
        assert info.value.path == path and os.path.basename(path) in str(info.value)


def test_truncated_stream_reads_what_is_there_and_refuses_the_rest(bad_files):
    path = bad_files["truncated_mkv"]
    info = data.probe_video(path)
    assert 0 < info.num_frames < 40
    assert codes(data.read_frames(path, [0])) == [0]
    with pytest.raises(data.VideoDecodeError, match="bad_truncated_mkv.mkv"):
        data.read_frames(path, [info.num_frames + 5])


@pytest.fixture(scope="module")
def textured_video(tmp_path_factory):
    """A smooth texture panning over 12 frames of 96x160: what a resize sees in real footage."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (14, 23, 3)).astype(np.float32)
    texture = tf.image.resize(coarse[None], (112, 184), method="bicubic")[0].numpy().clip(0, 255).astype(np.uint8)
    frames = np.stack([texture[t : t + 96, 2 * t : 2 * t + 160] for t in range(12)])
    path = str(tmp_path_factory.mktemp("texture") / "texture.mp4")
    data.write_video(path, frames, codec="libx264", options={"g": "4", "bf": "2"})
    return path


@pytest.mark.parametrize("short_side", [48, 72, 128])
def test_short_side_resizes_like_resize_short_side(textured_video, short_side):
    # FFmpeg's bilinear scaler (antialiased when shrinking) against TensorFlow's resize of
    # the full-size frames: same size, values within a level or two of 0..255 on average.
    indices = [[7, 2, 11]]
    full = data.read_frames(textured_video, indices)
    expected = data.resize_short_side(full, short_side).numpy()
    got = data.read_frames(textured_video, indices, short_side=short_side)
    assert got.shape == expected.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(np.float32) - expected)
    assert diff.mean() < 2 and diff.max() < 16, (diff.mean(), diff.max())  # Measured: 2x shrink 1.4 / 11.4; enlarging 0.25 / 0.9.
    with data.VideoReader(textured_video) as video:  # The same through a reader; 96 = the decoded size.
        np.testing.assert_array_equal(video.read(indices, short_side=short_side), got)
        np.testing.assert_array_equal(video.read(indices, short_side=96), full)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_short_side_is_validated(textured_video, bad):
    with pytest.raises(ValueError, match=rf"texture\.mp4: short_side={bad!r} must be an integer >= 1 or None"):
        data.read_frames(textured_video, [0], short_side=bad)


def test_a_reader_converts_with_its_own_single_threaded_scalers(textured_video, monkeypatch):
    # `frame.to_ndarray` builds a scaler per frame with one thread per core (PyAV's default):
    # its setup and hand-offs cost more wall time than the conversion on small frames. A
    # reader keeps a few single-threaded scalers for all its frames, sizes and reads, and
    # gives the same pixels as `to_ndarray` (and as a fresh reader per read).
    from tfvideo.data import _video_io

    made, calls = [], []

    class Recorded:
        def __init__(self):
            self.real = av.video.reformatter.VideoReformatter()
            made.append(self)

        def reformat(self, frame, *args, **kwargs):
            calls.append(kwargs.get("threads"))
            return self.real.reformat(frame, *args, **kwargs)

    reference = sequential_decode(textured_video)
    fresh = {side: data.read_frames(textured_video, np.arange(12), short_side=side) for side in (None, 48, 72)}
    monkeypatch.setattr(_video_io, "VideoReformatter", Recorded)
    with data.VideoReader(textured_video, num_threads=2) as video:
        for side in (None, 48, None, 72, 48):
            indices = np.arange(12)[::-1] if side == 48 else np.arange(12)
            got = video.read(indices, short_side=side)
            np.testing.assert_array_equal(got, fresh[side][indices], err_msg=f"short_side={side}")
    np.testing.assert_array_equal(fresh[None], reference)
    assert len(made) == 4, len(made)  # Full-size RGB; planar RGB, its scaled copy, packed RGB.
    assert len(calls) == 12 * 2 + 12 * 3 * 3 and set(calls) == {1}, (len(calls), set(calls))


# (degrees counterclockwise, hflip) -> where the coded frame's top-left block is shown.
ORIENTATIONS = {(0, False): "top-left", (90, False): "bottom-left", (-90, False): "top-right",
                (180, False): "bottom-right", (0, True): "top-right", (90, True): "bottom-right"}


@pytest.mark.parametrize("degrees,hflip", list(ORIENTATIONS), ids=[f"{d}{'_hflip' if f else ''}" for d, f in ORIENTATIONS])
def test_display_rotation_is_applied(tmp_path, degrees, hflip):
    # A portrait phone video is coded landscape with a display matrix saying how to turn it.
    path = write_rotated_video(tmp_path / "r.mp4", corner_marked_frames(6, 32, 64), degrees, hflip)
    with av.open(path) as container:  # PyAV reads the rotation back as written.
        assert hflip or (next(container.decode(video=0)).rotation - degrees) % 360 == 0
    portrait = degrees in (90, -90)
    frames = data.read_frames(path, [0, 5, 2])
    assert frames.shape == ((3, 64, 32, 3) if portrait else (3, 32, 64, 3))
    assert [marked_corner(f) for f in frames] == [ORIENTATIONS[degrees, hflip]] * 3
    with data.VideoReader(path) as video:  # Resized in the coded orientation, then turned: the same short side.
        small = video.read([1], short_side=16)[0]
        assert small.shape == ((32, 16, 3) if portrait else (16, 32, 3)) and marked_corner(small) == ORIENTATIONS[
            degrees, hflip]
        np.testing.assert_array_equal(np.stack(list(video.iter_frames([0, 2, 5]))), frames[[0, 2, 1]])


def test_iter_frames_streams_what_read_gives(coded_video):
    indices = np.array([0, 0, 3, 4, 4, 4, 17, 30, 39])
    with data.VideoReader(coded_video) as video:
        expected = video.read(indices)
        stats = {}
        frames = video.iter_frames(indices, stats=stats)
        first = next(frames)
        assert stats == {}  # Lazy: nothing past the first frame decoded yet.
        got = np.stack([first, *frames])
        assert stats["decoded"] >= 6
        np.testing.assert_array_equal(got, expected)
        assert codes(got) == indices.tolist()
        with pytest.raises(ValueError, match="non-decreasing"):
            next(video.iter_frames([3, 1]))
        with pytest.raises(data.VideoDecodeError, match=r"outside \[0, 40\)"):
            next(video.iter_frames([0, 40]))


def test_frame_times_follow_the_timestamps(tmp_path):
    durations = [40] * 5 + [200] * 3
    with data.VideoReader(write_vfr_video(tmp_path / "vfr.mp4", durations)) as video:
        np.testing.assert_allclose(video.frame_times, np.cumsum([0] + durations[:-1]) / 1000.0, atol=1e-9)
        assert video.duration == pytest.approx(sum(durations) / 1000.0)

