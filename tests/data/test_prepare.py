"""Preparation: bad-input report and exit status, resumability, fps change, TV-L1 flow, modalities."""

import json
import os

import numpy as np
import pytest
from absl import flags
from framecode import read_frame_code
from videofiles import (
    corner_marked_frames,
    marked_corner,
    write_bad_files,
    write_code_video,
    write_rotated_video,
    write_vfr_video,
)

from tfvideo import data
from tfvideo.data import _prepare
from trainers import prepare_data


def run_binary(argv):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["tfvideo-prepare", *argv])
    try:
        return prepare_data.main([])
    finally:
        flags.FLAGS.unparse_flags()


def test_binary_reports_each_bad_file_and_continues(tmp_path, capsys):
    good = [write_code_video(str(tmp_path / f"good{i}.mp4"), 20) for i in range(2)]
    short = write_code_video(str(tmp_path / "short.mp4"), 3)
    bad = write_bad_files(tmp_path, good[0])
    listed = [good[0], bad["missing"], bad["empty"], bad["truncated"], bad["corrupt"], bad["audio_only"], short, good[1]]
    (tmp_path / "list.txt").write_text("".join(f"{p} 0\n" for p in listed))
    out = tmp_path / "out"
    status = run_binary([f"--annotations={tmp_path / 'list.txt'}", f"--output_dir={out}", "--name=t", "--num_shards=2",
                         "--resize_short=0", "--min_frames=8", "--workers=1", "--noprogress"])
    assert status == prepare_data.EXIT_SKIPPED
    report = json.loads((out / "t-report.json").read_text())
    reasons = {f["path"]: f["reason"] for f in report["failures"]}
    assert set(reasons) == set(listed) - set(good)
    assert reasons[bad["missing"]] == "file does not exist" and "no video stream" in reasons[bad["audio_only"]]
    assert "too short: 3 frames < min_frames=8" in reasons[short]
    assert report["written"] == 2
    printed = capsys.readouterr().out
    for path, reason in reasons.items():
        assert f"skipped {path}: {reason}" in printed
    ids = [e["media_id"] for e in data.video_dataset(str(out / "t-*.tfrecord"), data.SegmentSampler(2), preprocess=False).as_numpy_iterator()]
    assert sorted(os.path.basename(i.decode()) for i in ids) == ["good0", "good1"]


def test_binary_exit_zero_when_nothing_skipped(tmp_path):
    (tmp_path / "l.txt").write_text(f"{write_code_video(str(tmp_path / 'v.mp4'), 16)} 0\n")
    assert run_binary([f"--annotations={tmp_path / 'l.txt'}", f"--output_dir={tmp_path / 'o'}", "--noprogress", "--workers=1"]) == 0


def test_rerun_skips_finished_shards_and_redoes_interrupted_ones(tmp_path):
    records = [data.VideoRecord(write_code_video(str(tmp_path / f"v{i}.mp4"), 16), i % 2, f"v{i}") for i in range(4)]
    out = str(tmp_path / "out")
    first = data.prepare_tfrecords(records, out, "r", num_shards=2, config=data.PrepareConfig(resize_short=0), workers=1)
    assert first["skipped_shards"] == [] and [os.path.basename(p) for p in first["shards"]] == [
        "r-00000-of-00002.tfrecord", "r-00001-of-00002.tfrecord"]
    second = data.prepare_tfrecords(records, out, "r", num_shards=2, config=data.PrepareConfig(resize_short=0), workers=1)
    assert second["skipped_shards"] == first["shards"] and second["written"] == 4
    # Simulate a run killed while writing shard 1: a stale temporary, a half file under the
    # final name and no completion marker. The rerun must rewrite exactly that shard.
    shard0, shard1 = first["shards"]
    os.remove(shard1 + ".failures.json")
    with open(shard1, "wb") as f:
        f.write(b"half")
    with open(shard1 + ".tmp-12345", "wb") as f:
        f.write(b"stale")
    third = data.prepare_tfrecords(records, out, "r", num_shards=2, config=data.PrepareConfig(resize_short=0), workers=1)
    assert third["skipped_shards"] == [shard0]
    assert not [n for n in os.listdir(out) if ".tmp-" in n]
    ids = sorted(e["media_id"].decode() for e in data.video_dataset(out + "/r-*.tfrecord", data.SegmentSampler(2), preprocess=False).as_numpy_iterator())
    assert ids == ["v0", "v1", "v2", "v3"]


def test_parallel_workers_give_the_same_shards(tmp_path):
    records = [data.VideoRecord(write_code_video(str(tmp_path / f"v{i}.mp4"), 16), i, f"v{i}") for i in range(2)]
    config = data.PrepareConfig(resize_short=0)
    one = data.prepare_tfrecords(records, str(tmp_path / "a"), "p", num_shards=2, config=config, workers=1)
    two = data.prepare_tfrecords(records, str(tmp_path / "b"), "p", num_shards=2, config=config, workers=2)
    assert not two["failures"] and [os.path.basename(p) for p in two["shards"]] == [os.path.basename(p) for p in one["shards"]]
    for a, b in zip(one["shards"], two["shards"]):
        ea = next(data.video_dataset(a, data.DenseSampler(16, 1), preprocess=False).as_numpy_iterator())
        eb = next(data.video_dataset(b, data.DenseSampler(16, 1), preprocess=False).as_numpy_iterator())
        assert ea["media_id"] == eb["media_id"]
        assert [read_frame_code(f) for f in ea["video"][0]] == [read_frame_code(f) for f in eb["video"][0]] == list(range(16))


def test_fps_change_keeps_the_right_frames(tmp_path):
    records = [data.VideoRecord(write_code_video(str(tmp_path / "v.mp4"), 40, fps=10), 0, "v")]
    data.prepare_tfrecords(records, str(tmp_path / "o"), "f", 1, data.PrepareConfig(resize_short=0, fps=5), workers=1)
    element = next(data.video_dataset(str(tmp_path / "o/f-*.tfrecord"), data.DenseSampler(20, 1), preprocess=False).as_numpy_iterator())
    # 40 frames at 10 fps -> 20 frames at 5 fps: every second source frame.
    assert [read_frame_code(f) for f in element["video"][0]] == list(range(0, 40, 2))


def test_fps_change_follows_timestamps_of_a_variable_frame_rate_file(tmp_path):
    # 1 s at 25 fps (frames 0-24), then 1 s at 5 fps (frames 25-29). Resampled to 5 fps by
    # time: 0, 0.2, ..., 1.8 s. By frame index (as if 15 fps throughout) the second second
    # would get 1 frame of its 5.
    path = str(write_vfr_video(tmp_path / "vfr.mp4", [40] * 25 + [200] * 5))
    records = [data.VideoRecord(path, 0, "vfr")]
    data.prepare_tfrecords(records, str(tmp_path / "o"), "v", 1, data.PrepareConfig(resize_short=0, fps=5), workers=1)
    element = next(data.video_dataset(str(tmp_path / "o/v-*.tfrecord"), data.DenseSampler(10, 1),
                                      preprocess=False).as_numpy_iterator())
    assert [read_frame_code(f) for f in element["video"][0]] == [0, 5, 10, 15, 20, 25, 26, 27, 28, 29]


def test_resample_indices_by_time():
    times = np.array([0.0, 0.1, 0.2, 1.0, 1.5])
    np.testing.assert_array_equal(_prepare.resample_indices(times, 2.0, 2), [0, 2, 3, 4])
    np.testing.assert_array_equal(_prepare.resample_indices(times, 2.0, 5), [0, 2, 2, 2, 2, 3, 3, 3, 4, 4])
    np.testing.assert_array_equal(_prepare.resample_indices(np.arange(40) / 10, 4.0, 5), np.arange(0, 40, 2))


def test_portrait_phone_video_is_stored_upright(tmp_path):
    # Coded 64x32 landscape with a "rotate=90" display matrix (turn clockwise): shown 32x64,
    # the coded top-left corner at the top right.
    path = write_rotated_video(tmp_path / "phone.mp4", corner_marked_frames(6, 32, 64), -90)
    data.prepare_tfrecords([data.VideoRecord(path, 0, "phone")], str(tmp_path / "o"), "p", 1,
                           data.PrepareConfig(resize_short=16), workers=1)
    element = next(data.video_dataset(str(tmp_path / "o/p-*.tfrecord"), data.DenseSampler(6, 1),
                                      preprocess=False).as_numpy_iterator())
    assert element["video"].shape == (1, 6, 32, 16, 3)
    assert [marked_corner(f) for f in element["video"][0]] == ["top-right"] * 6
    # The same from the file itself (video_dataset on an annotation list) and as predict samples it.
    (tmp_path / "list.txt").write_text(f"{path} 0\n")
    element = next(data.video_dataset(str(tmp_path / "list.txt"), data.DenseSampler(6, 1),
                                      preprocess=False).as_numpy_iterator())
    assert element["video"].shape == (1, 6, 64, 32, 3)
    assert [marked_corner(f) for f in element["video"][0]] == ["top-right"] * 6
    from tfvideo.serving import _client

    sampled = _client.sample_video(path, data.SegmentSampler(3))
    assert sampled.shape == (3, 64, 32, 3) and [marked_corner(f) for f in sampled] == ["top-right"] * 3


_PEAK_RSS_SCRIPT = """
import sys
from tfvideo import data

out = sys.argv[1]
config = data.PrepareConfig(resize_short=32, jpeg_quality=50)
peaks = []
for name, path in [("short", sys.argv[2]), ("long", sys.argv[3])]:
    result = data.prepare_tfrecords([data.VideoRecord(path, 0, name)], out + "/" + name, name, 1, config, workers=1)
    peaks.append(int(result["worker_peak_rss_mb"] * 1024))  # The worker's VmHWM.
print("tensorflow" in sys.modules, *peaks)
"""


def run_peak_rss_script(tmp_path, short, long):
    """(coordinator imported TensorFlow, peak RSS of the short video's worker, of the long one's) in KiB."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
           "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", _PEAK_RSS_SCRIPT, str(tmp_path), short, long], capture_output=True,
                            text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    tensorflow, short_peak, long_peak = result.stdout.split()[-3:]
    return tensorflow == "True", int(short_peak), int(long_peak)


def stripes_video(path, frames):
    """Noise stripes that move, 360x480: every frame decodes to new pixels."""
    rng = np.random.default_rng(0)
    row = rng.integers(0, 256, (1, 480 + frames, 3), np.uint8)
    clip = np.stack([np.broadcast_to(row[:, i:i + 480], (360, 480, 3)) for i in range(frames)])
    data.write_video(str(path), clip, fps=25, options={"preset": "ultrafast"})
    return str(path)


def test_prepare_workers_do_not_load_tensorflow(tmp_path):
    # The conversion runs in a worker process (even with workers=1) that never imports
    # TensorFlow: ~100 MB after its imports instead of TensorFlow's ~885 MB (issue 26 item 4:
    # <= 1 GB per worker on 4K). Before: workers=1 converted in the coordinating process
    # and spawned workers imported TensorFlow (no figure then: prepare_tfrecords gave none).
    video = stripes_video(tmp_path / "v.mp4", 4)
    tensorflow, peak, _ = run_peak_rss_script(tmp_path, video, video)
    assert tensorflow  # The coordinator holds TensorFlow: the figure below is the worker's alone.
    assert 0 < peak < 350 * 1024, peak


@pytest.mark.slow
def test_prepare_memory_does_not_grow_with_video_length(tmp_path):
    # A 4x longer video must not raise the worker's peak RSS (VmHWM): frames stream through
    # decode, resize and JPEG. Holding the decoded frames costs ~0.8 MB per 360x480 frame here
    # (+~90 MB for the long video).
    short, long = stripes_video(tmp_path / "short.mp4", 40), stripes_video(tmp_path / "long.mp4", 160)
    _, short_peak, long_peak = run_peak_rss_script(tmp_path, short, long)
    assert long_peak - short_peak < 30 * 1024, (short_peak, long_peak)


def test_flow_quantization_round_trip():
    flow = np.array([-30.0, -20.0, -5.0, 0.0, 7.3, 20.0, 25.0], np.float32)
    q = data.quantize_flow(flow)
    np.testing.assert_array_equal(q[[0, 1, 5, 6]], [0, 0, 255, 255])
    np.testing.assert_allclose(data.dequantize_flow(q), np.clip(flow, -20, 20), atol=40 / 255 / 2 + 1e-6)


def moving_square(num_frames=12, size=48, step=2):
    frames = np.full((num_frames, size, size, 3), 40, np.uint8)
    for t in range(num_frames):
        frames[t, 16:32, 8 + step * t : 24 + step * t] = 220
    return frames


@pytest.fixture(scope="module")
def flow_tfrecords(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    path = str(root / "right.mp4")
    data.write_video(path, moving_square(), fps=10, options={"crf": "10"})
    config = data.PrepareConfig(resize_short=0, flow=True, jpeg_quality=95)
    result = data.prepare_tfrecords([data.VideoRecord(path, 1, "right")], str(root / "o"), "fl", 1, config, workers=1)
    assert not result["failures"]
    return str(root / "o" / "fl-*.tfrecord")


def test_tvl1_flow_stored_per_frame_as_quantized_xy(flow_tfrecords):
    import tensorflow as tf

    serialized = next(iter(tf.data.TFRecordDataset(tf.io.gfile.glob(flow_tfrecords))))
    parsed = data.parse_sequence_example(serialized, with_flow=True)
    assert parsed["flow"].shape[0] == parsed["frames"].shape[0] == 12
    flow = data.dequantize_flow(tf.io.decode_jpeg(parsed["flow"][5]).numpy()[..., :2])
    # The square moves 2 px right per frame: x flow ~ +2 inside it, y flow ~ 0.
    inside = flow[20:28, 14:22]
    assert abs(np.median(inside[..., 0]) - 2.0) < 0.5 and abs(np.median(inside[..., 1])) < 0.5


def test_a_one_frame_video_stores_one_zero_flow_frame(tmp_path):
    """Flow and RGB share frame indices even for one frame: one flow entry, zero motion (128)."""
    import tensorflow as tf

    path = str(tmp_path / "one.mp4")
    data.write_video(path, moving_square()[:1], fps=10, options={"crf": "10"})
    config = data.PrepareConfig(resize_short=0, flow=True, flow_method="dis")
    result = data.prepare_tfrecords([data.VideoRecord(path, 0, "one")], str(tmp_path / "o"), "one", 1, config, workers=1)
    assert not result["failures"]
    serialized = next(iter(tf.data.TFRecordDataset(result["shards"])))
    parsed = data.parse_sequence_example(serialized, with_flow=True)
    assert parsed["flow"].shape[0] == parsed["frames"].shape[0] == 1
    flow = tf.io.decode_jpeg(parsed["flow"][0]).numpy()[..., :2].astype(int)
    assert np.abs(flow - 128).max() <= 1  # Quantized zero flow, up to JPEG rounding.


def test_two_stream_shares_crop_and_flip(flow_tfrecords):
    config = data.PreprocessConfig(crop_size=32, resize_short=0, train_crop="center", flip=True)
    unflipped = data.PreprocessConfig(crop_size=32, resize_short=0, train_crop="center", flip=False)
    sampler = data.SegmentSampler(3, training=True)
    flips = []
    for seed in range(8):
        e = next(data.video_dataset(flow_tfrecords, sampler, config, modality="rgb+flow", seed=seed).as_numpy_iterator())
        plain = next(data.video_dataset(flow_tfrecords, sampler, unflipped, modality="rgb+flow", seed=seed).as_numpy_iterator())
        assert e["video"].shape == (1, 3, 32, 32, 3) and e["flow"].shape == (1, 3, 32, 32, 2)
        mirrored = np.array_equal(e["video"], plain["video"][..., ::-1, :])
        assert mirrored or np.array_equal(e["video"], plain["video"]), seed
        # The square moves right (x flow +2 px = +0.1 after / bound); mirrored clips move left.
        x = e["flow"][..., 0]
        moving = np.abs(plain["flow"][..., 0]) > 0.05
        assert np.median(x[np.flip(moving, -1) if mirrored else moving]) == pytest.approx(-0.1 if mirrored else 0.1, abs=0.03)
        flips.append(mirrored)
    assert set(flips) == {True, False}


def test_flow_and_rgb_diff_modalities(flow_tfrecords):
    config = data.PreprocessConfig(crop_size=32, resize_short=0)
    flow = next(data.video_dataset(flow_tfrecords, data.SegmentSampler(4), config, modality="flow").as_numpy_iterator())
    assert flow["video"].shape == (1, 4, 32, 32, 2) and np.abs(flow["video"]).max() <= 1.0
    diff = next(data.video_dataset(flow_tfrecords, data.SegmentSampler(2, new_length=3), config, modality="rgb_diff").as_numpy_iterator())
    # 2 snippets of 3 frames -> 2 differences each.
    assert diff["video"].shape == (1, 4, 32, 32, 3) and np.abs(diff["video"]).max() <= 1.0 and np.abs(diff["video"]).max() > 0.3
