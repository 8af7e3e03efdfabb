"""The Beam conversion (DirectRunner) writes the same shards layout and reports bad files.

Skipped where apache-beam is not installed (the `beam` extra).
"""

import os

import pytest
from conftest import read_frame_code
from videofiles import write_code_video

from tfvideo import data

beam = pytest.importorskip("apache_beam")


def test_beam_pipeline_matches_local_conversion(tmp_path):
    records = [data.VideoRecord(write_code_video(str(tmp_path / f"v{i}.mp4"), 16), i, f"v{i}") for i in range(3)]
    records.append(data.VideoRecord(str(tmp_path / "missing.mp4"), 0, "missing"))
    result = data.run_beam_prepare(records, str(tmp_path / "out"), "b", num_shards=2, config=data.PrepareConfig(resize_short=0))
    assert [os.path.basename(p) for p in result["shards"]] == ["b-00000-of-00002.tfrecord", "b-00001-of-00002.tfrecord"]
    assert all(os.path.exists(p) for p in result["shards"])
    assert result["failures"] == [{"path": str(tmp_path / "missing.mp4"), "reason": "file does not exist"}]
    ds = data.video_dataset(str(tmp_path / "out" / "b-*.tfrecord"), data.DenseSampler(16, 1), preprocess=False)
    elements = {e["media_id"].decode(): e for e in ds.as_numpy_iterator()}
    assert sorted(elements) == ["v0", "v1", "v2"]
    for e in elements.values():
        assert [read_frame_code(f) for f in e["video"][0]] == list(range(16))
