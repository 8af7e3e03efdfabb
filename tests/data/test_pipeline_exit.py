"""A half-read video_dataset never hangs the process: not when its iterator is dropped, not at exit.

Decoding and sampling run Python from tf.data threads; an iterator still alive when the
interpreter finalizes used to wait forever for a thread CPython had ended (issue 25: 6 of
10 program ends hung on tiny long-GOP files before the fix).
"""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from videofiles import write_code_video

from tfvideo import data
from tfvideo.data import _shutdown

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipeline_exit_driver.py")


@pytest.fixture(scope="module")
def long_gop_set(tmp_path_factory):
    """Six tiny H.264 files with one keyframe each (x264's default GOP, 250, is longer than them), as a list and TFRecords."""
    root = tmp_path_factory.mktemp("long_gop")
    lines = []
    for i in range(6):
        write_code_video(str(root / f"v{i}.mp4"), 24 + 4 * i, options={"g": "250", "bf": "2"})
        lines.append(f"v{i}.mp4 {i % 2}")
    video_list = root / "list.txt"
    video_list.write_text("\n".join(lines) + "\n")
    records = data.read_annotations(str(video_list), str(root))
    result = data.prepare_tfrecords(records, str(root / "shards"), "clips", num_shards=2,
                                    config=data.PrepareConfig(resize_short=0), workers=1)
    assert not result["failures"]
    return str(video_list), str(root / "shards" / "clips-*-of-00002.tfrecord")


@pytest.mark.slow
def test_half_read_pipelines_end_the_program_56_of_56(long_gop_set):
    """56 program ends (~1 s of CPU each), 7 per case of 8 (at least the 50 the issue asks); before the fix 4 of 24 hung."""
    video_list, pattern = long_gop_set
    env = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, DRIVER, video_list, pattern, "56", "60"], env=env, capture_output=True,
                         text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["runs"] == 56
    assert report["hangs"] == [], report  # [repetition, source, repeat, ending] of each hung program.
    assert report["failures"] == [], (report, run.stderr[-3000:])


def _half_read(ds):
    it = iter(ds)
    next(it)
    return it


def test_releasing_a_half_read_iterator_ends_its_pipeline(long_gop_set):
    video_list, pattern = long_gop_set
    sampler = data.SegmentSampler(num_segments=4, training=True)
    for source in (video_list, pattern):
        ds = data.video_dataset(source, sampler, preprocess=False, batch_size=2, seed=0, repeat=True)
        it = _half_read(ds)
        assert _shutdown.release(it)  # Returns once the decodes in flight finished and the threads ended.
        with pytest.raises(AttributeError):
            next(it)  # Released: nothing left to run.
        assert not _shutdown.release(it)
        assert next(iter(ds))["video"].shape == (2, 1, 4, 48, 64, 3)  # The dataset itself is untouched.


def test_exit_handler_finds_iterators_of_tfvideo_datasets_and_over_them(long_gop_set):
    video_list, _ = long_gop_set
    ds = data.video_dataset(video_list, data.SegmentSampler(num_segments=2, training=True), preprocess=False, seed=0,
                            repeat=True)
    own = _half_read(ds.take(100))  # Transformations keep the tfvideo iterator.
    zipped = _half_read(tf.data.Dataset.zip(ds, ds))  # A plain tf.data iterator over a tfvideo pipeline.
    assert type(own) is not type(zipped)
    live = _shutdown.live_iterators()
    assert any(it is own for it in live) and any(it is zipped for it in live)
    assert _shutdown.release(own) and _shutdown.release(zipped)
    assert _shutdown._REGISTERED  # Building a tfvideo pipeline registered the exit handler.

