"""video_dataset end to end: exact frames through PyAV and TFRecords, determinism, bad input."""

import functools
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from framecode import frame_code_frames, read_frame_code
from videofiles import write_bad_files, write_code_video, write_vfr_video

from tfvideo import data

RAW = False  # preprocess=False: the decoded uint8 frames, untouched.


@pytest.fixture(scope="module")
def coded_records(tmp_path_factory):
    """Frame-coded videos of different lengths, codecs and a VFR file, as VideoRecords."""
    root = tmp_path_factory.mktemp("coded")
    specs = [("a.mp4", 40, "libx264"), ("b.avi", 23, "mpeg4"), ("c.webm", 17, "libvpx-vp9"), ("d.mkv", 60, "libx264")]
    records = []
    for label, (name, n, codec) in enumerate(specs):
        path = write_code_video(str(root / name), n, codec=codec, options={"g": "8"})
        records.append(data.VideoRecord(path=path, label=label, media_id=name))
    vfr = write_vfr_video(root / "e_vfr.mp4", [40, 100, 40, 200] * 8)
    records.append(data.VideoRecord(path=str(vfr), label=4, media_id="e_vfr.mp4"))
    return records


@pytest.fixture(scope="module")
def coded_tfrecords(coded_records, tmp_path_factory):
    out = tmp_path_factory.mktemp("coded_tfr")
    result = data.prepare_tfrecords(coded_records, str(out), "coded", num_shards=2, config=data.PrepareConfig(resize_short=0), workers=1)
    assert not result["failures"] and result["written"] == len(coded_records)
    return str(out / "coded-*-of-00002.tfrecord")


NUM_FRAMES = {"a.mp4": 40, "b.avi": 23, "c.webm": 17, "d.mkv": 60, "e_vfr.mp4": 32}


def frame_codes(video):
    """uint8 [V, T, H, W, 3] -> int codes [V, T]."""
    video = np.asarray(video)
    return np.array([[read_frame_code(f) for f in clip] for clip in video])


def by_media_id(ds):
    return {e["media_id"].decode(): e for e in ds.as_numpy_iterator()}


@pytest.mark.parametrize("sampler", [data.SegmentSampler(8, num_clips=2), data.DenseSampler(6, 3, num_clips=3),
                                     data.SegmentSampler(4, new_length=5)], ids=repr)
@pytest.mark.parametrize("source", ["files", "tfrecords"])
def test_decoded_frames_are_exactly_the_sampled_indices(coded_records, coded_tfrecords, sampler, source):
    src = coded_records if source == "files" else coded_tfrecords
    elements = by_media_id(data.video_dataset(src, sampler, preprocess=RAW))
    assert sorted(elements) == sorted(NUM_FRAMES)
    for media_id, element in elements.items():
        expected = sampler(NUM_FRAMES[media_id])
        assert element["video"].shape == expected.shape + (48, 64, 3), media_id
        np.testing.assert_array_equal(frame_codes(element["video"]), expected, err_msg=f"{source} {media_id}")
        assert element["label"] == list(NUM_FRAMES).index(media_id)


def test_training_indices_in_range_and_both_sources_sample_the_same_way(coded_records, coded_tfrecords):
    # The sampler's RNG comes from the element seed, so the k-th element of either source
    # gets the same indices; order differs (shuffling), so compare the sets of codes.
    sampler = data.SegmentSampler(4, training=True)
    for src in (coded_records, coded_tfrecords):
        for element in data.video_dataset(src, sampler, preprocess=RAW, seed=5, training=False).as_numpy_iterator():
            codes = frame_codes(element["video"])[0]
            n = NUM_FRAMES[element["media_id"].decode()]
            bounds = np.floor(np.arange(5) * n / 4).astype(int)
            assert all(bounds[k] <= codes[k] < max(bounds[k + 1], bounds[k] + 1) for k in range(4)), (n, codes)


@pytest.mark.parametrize("source", ["files", "tfrecords"])
def test_seeded_training_pipeline_is_deterministic(coded_records, coded_tfrecords, source):
    src = coded_records if source == "files" else coded_tfrecords
    config = data.PreprocessConfig(crop_size=32, resize_short=40, color_jitter=0.2)

    def run(seed):
        ds = data.video_dataset(src, data.SegmentSampler(4, training=True), config, batch_size=2, seed=seed, shuffle_buffer=8)
        return [(b["media_id"].tolist(), b["video"]) for b in ds.as_numpy_iterator()]

    first, second, other = run(11), run(11), run(12)
    assert [m for m, _ in first] == [m for m, _ in second]
    for (_, a), (_, b) in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for (_, a), (_, b) in zip(first, other)) or [m for m, _ in first] != [m for m, _ in other]


def test_eval_views_shape_is_batch_views_time(coded_tfrecords):
    config = data.PreprocessConfig(crop_size=32, resize_short=40, num_crops=3)
    ds = data.video_dataset(coded_tfrecords, data.SegmentSampler(4, num_clips=2), config, batch_size=2)
    batch = next(iter(ds))
    # 2 clips x 3 crops = 6 views, clip-major.
    assert batch["video"].shape == (2, 6, 4, 32, 32, 3) and batch["video"].dtype == tf.float32
    assert batch["label"].dtype == tf.int32


@pytest.fixture(scope="module")
def list_with_bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("badlist")
    good = [write_code_video(str(root / f"good{i}.mp4"), 20) for i in range(2)]
    bad = write_bad_files(root, good[0])
    lines = [f"{good[0]} 0", f"{bad['truncated']} 1", f"{bad['audio_only']} 0", f"{good[1]} 1", f"{bad['missing']} 1",
             f"{bad['empty']} 0", f"{bad['corrupt']} 1"]
    path = root / "list.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path), bad


def test_on_error_raise_names_the_file(list_with_bad_files):
    path, bad = list_with_bad_files
    ds = data.video_dataset(path, data.SegmentSampler(4), data.PreprocessConfig(crop_size=16, resize_short=20))
    with pytest.raises(data.VideoDecodeError, match=r"bad_truncated\.mp4.*cannot open container") as info:
        list(ds.as_numpy_iterator())
    # The library's error, not TensorFlow's: path and reason as attributes, TF's error as cause.
    assert info.value.path == bad["truncated"] and info.value.reason.startswith("cannot open container")
    assert isinstance(info.value.__cause__, tf.errors.InvalidArgumentError)


def test_on_error_skip_drops_and_counts(list_with_bad_files):
    path, bad = list_with_bad_files
    skipped = data.SkippedVideos()
    ds = data.video_dataset(path, data.SegmentSampler(4), data.PreprocessConfig(crop_size=16, resize_short=20),
                            on_error="skip", skipped=skipped)
    out = list(ds.as_numpy_iterator())
    assert [e["media_id"].decode().rsplit("/", 1)[-1] for e in out] == ["good0", "good1"]
    assert skipped.count == 5
    reasons = dict(skipped.items)
    assert reasons[bad["missing"]] == "file does not exist" and reasons[bad["audio_only"]] == "has no video stream"
    assert reasons[bad["empty"]] == "file is empty (0 bytes)"


def test_bad_arguments():
    with pytest.raises(ValueError, match="on_error"):
        data.video_dataset([], data.SegmentSampler(4), on_error="ignore")
    with pytest.raises(ValueError, match="modality"):
        data.video_dataset([], data.SegmentSampler(4), modality="depth")
    with pytest.raises(ValueError, match="TFRecords made with flow"):
        data.video_dataset([data.VideoRecord("x.mp4", 0, "x")], data.SegmentSampler(4), modality="flow")
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        data.video_dataset("/nothing-here/*.tfrecord", data.SegmentSampler(4))


# --- TFRecord records that cannot give a clip: the same on_error policy as video files. ---

@functools.cache
def good_jpegs():
    """Six frame-coded JPEG frames (frame i shows i)."""
    return [tf.io.encode_jpeg(f, quality=95).numpy() for f in frame_code_frames(6)]


def bad_record(kind):
    """(serialized record, expected reason) for one kind of bad record (media_id 'bad')."""
    jpegs = good_jpegs()
    if kind == "garbage_jpeg":
        frames = jpegs[:2] + [b"\x00garbage bytes, not an image"] + jpegs[3:]
        reason = r"image/encoded frame 2 of 6 does not decode: Unknown image file format"
    elif kind == "truncated_jpeg":
        frames = jpegs[:4] + [jpegs[4][: len(jpegs[4]) // 2]] + jpegs[5:]
        reason = r"image/encoded frame 4 of 6 does not decode: "
    elif kind == "no_frames":
        frames, reason = [], r"no frames under 'image/encoded'"
    elif kind == "no_label":
        return data.make_sequence_example(jpegs, None, media_id="bad").SerializeToString(), (
            r"no label: clip/label/index is missing \(training needs one\)")
    else:
        assert kind == "not_a_record"
        return b"\x08\x96\x01 not a SequenceExample", r"not a serialized tf.train.SequenceExample"
    return data.make_sequence_example(frames, 1, media_id="bad").SerializeToString(), reason


def write_shard(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


BAD_KINDS = ["garbage_jpeg", "truncated_jpeg", "no_frames", "no_label", "not_a_record"]
EVERY_FRAME = data.DenseSampler(6, 1, training=True)  # Training (so a label is needed); samples every frame.


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_tfrecord_on_error_raise_names_shard_record_and_reason(tmp_path, kind):
    serialized, reason = bad_record(kind)
    good = data.make_sequence_example(good_jpegs(), 0, media_id="good").SerializeToString()
    shard = write_shard(tmp_path / "mixed.tfrecord", [good, serialized])
    media_id = "" if kind == "not_a_record" else "bad"
    ds = data.video_dataset(shard, EVERY_FRAME, preprocess=RAW, training=True, seed=0)
    with pytest.raises(data.VideoDecodeError, match=rf"{shard}: record 1 \(media_id '{media_id}'\): {reason}") as info:
        list(ds.as_numpy_iterator())
    assert info.value.path == shard and re.match(rf"record 1 \(media_id '{media_id}'\): {reason}", info.value.reason)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_tfrecord_on_error_skip_drops_and_counts(tmp_path, kind):
    serialized, reason = bad_record(kind)
    good = data.make_sequence_example(good_jpegs(), 0, media_id="good").SerializeToString()
    shard = write_shard(tmp_path / "mixed.tfrecord", [serialized, good])
    skipped = data.SkippedVideos()
    ds = data.video_dataset(shard, EVERY_FRAME, preprocess=RAW, training=True, seed=0, on_error="skip", skipped=skipped)
    out = list(ds.as_numpy_iterator())
    assert [e["media_id"] for e in out] == [b"good"]
    np.testing.assert_array_equal(frame_codes(out[0]["video"]), [list(range(6))])
    assert skipped.count == 1
    (path, why), = skipped.items
    media_id = "" if kind == "not_a_record" else "bad"
    assert path == shard and re.match(rf"record 0 \(media_id '{media_id}'\): {reason}", why), why


def test_tfrecord_decodes_only_sampled_frames_and_labels_are_optional_in_evaluation(tmp_path):
    # Frame 2 is garbage and the record has no label: a test-time sampler that never picks
    # frame 2 reads it fine (label -1), because only sampled frames are decoded.
    frames = good_jpegs()[:2] + [b"garbage"] + good_jpegs()[3:]
    shard = write_shard(tmp_path / "s.tfrecord", [data.make_sequence_example(frames, None, media_id="v").SerializeToString()])
    sampler = data.SegmentSampler(3)  # 6 frames: centres 1, 3, 5
    (element,) = list(data.video_dataset(shard, sampler, preprocess=RAW).as_numpy_iterator())
    np.testing.assert_array_equal(frame_codes(element["video"]), [[1, 3, 5]])
    assert element["label"] == -1
    with pytest.raises(data.VideoDecodeError, match=r"record 0 \(media_id 'v'\): image/encoded frame 2 of 6 does not decode"):
        list(data.video_dataset(shard, data.DenseSampler(6, 1), preprocess=RAW).as_numpy_iterator())


def test_damaged_tfrecord_file_is_named(tmp_path):
    records = [data.make_sequence_example(good_jpegs(), i, media_id=f"v{i}").SerializeToString() for i in range(3)]
    whole = write_shard(tmp_path / "whole.tfrecord", records)
    cut = str(tmp_path / "cut.tfrecord")
    with open(whole, "rb") as f:
        payload = f.read()
    with open(cut, "wb") as f:
        f.write(payload[:-40])  # The last record loses its tail.
    first_two = 2 * (len(records[0]) + 16)
    reason = rf"damaged file: 2 records read, then bytes {first_two}..{len(payload) - 40} are corrupt or truncated"
    with pytest.raises(data.VideoDecodeError, match=rf"{cut}: {reason}"):
        list(data.video_dataset(cut, data.SegmentSampler(3), preprocess=RAW).as_numpy_iterator())
    skipped = data.SkippedVideos()
    ds = data.video_dataset(str(tmp_path / "*.tfrecord"), data.SegmentSampler(3), preprocess=RAW, on_error="skip", skipped=skipped)
    ids = sorted(e["media_id"].decode() for e in ds.as_numpy_iterator())
    assert ids == ["v0", "v0", "v1", "v1", "v2"]  # cut.tfrecord gives v0, v1; whole.tfrecord all three.
    assert skipped.count == 1 and skipped.items[0][0] == cut and re.match(reason, skipped.items[0][1])


def test_video_file_pipelines_get_more_threads_than_cores_and_tfrecords_keep_the_default(coded_records, coded_tfrecords):
    """Decodes (GIL released in FFmpeg) keep shared cores busy: 2x cores, at least 4 threads (issue 25)."""
    from tfvideo.data import _sources

    spec = data.ClipSpec(data.SegmentSampler(4), data.PreprocessConfig(crop_size=32, resize_short=40))
    files = data.video_dataset(coded_records, spec, training=True, batch_size=2, seed=0)
    assert _sources.decoding_threads() >= max(4, 2 * os.cpu_count())
    assert files.options().threading.private_threadpool_size == _sources.decoding_threads()
    records = data.video_dataset(coded_tfrecords, spec, training=True, batch_size=2, seed=0)
    assert records.options().threading.private_threadpool_size in (None, 0)
    # And it still yields whole training batches.
    batch = next(iter(files))
    assert batch["video"].shape == (2, 1, 4, 32, 32, 3)
