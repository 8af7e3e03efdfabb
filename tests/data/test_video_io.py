"""PyAV decoding: exactly the frames asked for, for several containers/codecs and VFR."""

import os

import numpy as np
import pytest
from conftest import read_frame_code
from videofiles import FORMATS, write_bad_files, write_code_video, write_vfr_video

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
