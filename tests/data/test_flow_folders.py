"""Precomputed flow of frame folders (denseflow's flow_x_/flow_y_ files) in video_dataset and the binaries."""

import json
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from tests.trainers import trainers_testlib as tl
from tfvideo import data, models

FRAMES, H, W = 16, 36, 44


def _flow(seed):
    """uint8 [FRAMES, H, W, 2]: quantized flow as prepare stores it (random, so every index and pixel counts)."""
    return np.random.default_rng(seed).integers(0, 256, (FRAMES, H, W, 2), dtype=np.uint8)


def _write_folder(folder, flow, template):
    """One grey PNG per direction and frame, 1-based (lossless, so the values are exact)."""
    os.makedirs(folder, exist_ok=True)
    for i, pair in enumerate(flow):
        for d, c in (("x", 0), ("y", 1)):
            cv2.imwrite(os.path.join(folder, template.format(d, i + 1)), pair[..., c])


def _write_records(path, videos):
    """TFRecords holding the same flow values (PNG, x/y in the first two channels), as prepare --flow does."""
    with tf.io.TFRecordWriter(path) as writer:
        for media_id, label, flow in videos:
            rgb = [tf.io.encode_png(np.zeros((H, W, 3), np.uint8)).numpy()] * FRAMES
            xy0 = np.concatenate([flow, np.zeros_like(flow[..., :1])], -1)
            flows = [tf.io.encode_png(f).numpy() for f in xy0]
            ex = data.make_sequence_example(rgb, label=label, media_id=media_id, flow_frames=flows)
            writer.write(ex.SerializeToString())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("flowfolders"))
    videos = [(f"c{k % 2}/v{k}", k % 2, _flow(k)) for k in range(4)]
    for media_id, _, flow in videos:
        _write_folder(os.path.join(root, "rawframes", media_id), flow, "flow_{}_{:05d}.png")
    with open(os.path.join(root, "list.txt"), "w") as f:  # MMAction2's rawframes list of the flow folders.
        f.writelines(f"{media_id} {FRAMES} {label}\n" for media_id, label, _ in videos)
    _write_records(os.path.join(root, "flow.tfrecord"), videos)
    with open(os.path.join(root, "labels.txt"), "w") as f:
        f.write("left\nright\n")
    return {"root": root, "videos": videos}


def _source(built, **options):
    return data.format_source(os.path.join(built["root"], "list.txt"), "rawframes",
                              video_root=os.path.join(built["root"], "rawframes"), **options)


@pytest.mark.parametrize("training", [False, True])
def test_flow_folder_clips_equal_tfrecord_clips(built, training):
    spec = models.default_clip_spec("tsn_flow_tiny", num_segments=3, crop_size=32, resize_short=40)
    folders = data.video_dataset(_source(built), spec, training=training, seed=5,
                                 flow_filename_tmpl="flow_{}_{:05d}.png")
    records = data.video_dataset(os.path.join(built["root"], "flow.tfrecord"), spec, training=training, seed=5)
    got, want = list(folders), list(records)
    assert len(got) == len(want) == 4
    for a, b in zip(got, want):
        assert a["media_id"].numpy() == b["media_id"].numpy() and int(a["label"]) == int(b["label"])
        assert a["video"].shape == (1, 15, 32, 32, 2)
        np.testing.assert_array_equal(a["video"].numpy(), b["video"].numpy())


def test_flow_folder_clip_equals_numpy(built):
    """Independently: 3 segments of 5 consecutive flow frames from each segment's middle, centre crop, (v - 128) / 128."""
    spec = models.default_clip_spec("tsn_flow_tiny", num_segments=3, crop_size=32, resize_short=36)
    ds = data.video_dataset(_source(built, flow_filename_tmpl="flow_{}_{:05d}.png"), spec, training=False)
    element = next(iter(ds))
    flow = built["videos"][0][2]
    # MMAction2's test-mode SampleFrames: average duration (16 - 5 + 1) / 3 = 4, offsets 2, 6, 10 (+0..4).
    starts = [int(4 / 2.0 + 4 * k) for k in range(3)]
    indices = np.concatenate([np.arange(s, s + 5) for s in starts])
    top, left = (H - 32) // 2, (W - 32) // 2
    want = (flow[indices, top:top + 32, left:left + 32].astype(np.float32) - 128.0) / 128.0
    np.testing.assert_allclose(element["video"].numpy()[0], want, atol=1e-6)


def test_flow_templates_forms():
    assert data._rawframes.flow_templates(None) == ("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg")
    assert data._rawframes.flow_templates("flow_{}_{:05d}.jpg") == ("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg")
    assert data._rawframes.flow_templates("u/%05d.jpg,v/%05d.jpg") == ("u/{:05d}.jpg", "v/{:05d}.jpg")
    with pytest.raises(ValueError, match=r"flow_filename_tmpl='flow_x.jpg' must be an \(x, y\) pair"):
        data._rawframes.flow_templates("flow_x.jpg")


def test_missing_flow_file_names_folder_and_index(built, tmp_path):
    folder = tmp_path / "c0" / "v9"
    _write_folder(str(folder), _flow(9), "flow_{}_{:05d}.png")
    os.remove(folder / "flow_y_00007.png")
    (tmp_path / "list.txt").write_text(f"c0/v9 {FRAMES} 0\n")
    spec = models.default_clip_spec("tsn_flow_tiny", num_segments=3)
    source = data.format_source(tmp_path / "list.txt", "rawframes", video_root=tmp_path,
                                flow_filename_tmpl="flow_{}_{:05d}.png")
    with pytest.raises(data.VideoDecodeError) as e:
        list(data.video_dataset(source, spec, training=False))
    assert str(e.value).splitlines()[0].endswith("v9: has 6 frames (flow_y_00001.png..flow_y_00006.png) but its list "
                                                 "entry says 16: frame 6 (flow_y_00007.png) is missing")
    # A video file cannot give flow.
    with pytest.raises(ValueError, match=r"modality='flow' reads the flow files of frame folders .* a\.mp4 is a video"):
        data.video_dataset([data.VideoRecord(path="a.mp4", label=0, media_id="a")], spec)


def test_train_and_evaluate_on_flow_folders(built, tmp_path):
    root = built["root"]
    args = [f"--label_map={root}/labels.txt", "--flow_filename_tmpl=flow_{}_{:05d}.png"]
    proc = tl.run("train", ["--model=tsn_flow_tiny", f"--train_data={root}/list.txt", f"--video_root={root}/rawframes",
                            f"--model_dir={tmp_path}/m", "--num_segments=2", "--batch_size=2", "--epochs=1",
                            "--verbose=0", *args])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "m" / "config.json") as f:
        config = json.load(f)
    assert config["clip"]["modality"] == "flow" and "flow_filename_tmpl=flow_{}_{:05d}.png" in config["train"]["train_data"]
    # Evaluate inherits the run's video root and flow template.
    proc = tl.run("evaluate", [f"--model_dir={tmp_path}/m", f"--eval_data={root}/list.txt"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "top-1" in proc.stdout
    proc = tl.run("train", ["--model=tsn_flow_tiny", f"--train_data={root}/list.txt", f"--model_dir={tmp_path}/bad",
                            f"--label_map={root}/labels.txt", "--epochs=1", "--flow_filename_tmpl=flow.png"])
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("tfvideo-train: error: --flow_filename_tmpl='flow.png' must")
