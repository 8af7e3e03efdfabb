"""A tiny trained model_dir (tsm_tiny, 4 classes, 32px crops, 8 segments) built in-process,
and a model trained by `tfvideo-train --feature_spec` with its export.

tests/serving, tests/trainers and this directory import these session fixtures; pytest then
holds one fixture definition per importing place and would build each once per place, so the
expensive ones keep their result in a fixed folder of the session's base temp directory and
later definitions reuse it (`_once`).
"""

import json
import os

import numpy as np
import pytest

LABELS = ["left", "right", "up", "down"]
CLIP_LENGTH = 8
CROP = 32
RESIZE = 36


def make_tiny_model_dir(model_dir, seed=0):
    """Trains tsm_tiny for a few steps on random clips and writes a model_dir."""
    import keras

    from tfvideo import _experiment, models

    keras.utils.set_random_seed(seed)
    model = models.get("tsm_tiny", num_classes=len(LABELS))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, CLIP_LENGTH, CROP, CROP, 3)).astype(np.float32)
    y = np.arange(4) % len(LABELS)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    config = _experiment.ExperimentConfig(
        model="tsm_tiny",
        num_classes=len(LABELS),
        labels=list(LABELS),
        sampler={"type": "segment", "num_segments": CLIP_LENGTH},
        preprocess={"crop_size": CROP, "resize_short": RESIZE},
    )
    config.write(model_dir)
    model.save(os.path.join(model_dir, _experiment.MODEL_FILE))
    return model_dir


def _once(tmp_path_factory, name, build):
    """`build(folder)`'s JSON-able result, computed once per test session (see module docstring)."""
    folder = tmp_path_factory.getbasetemp() / name
    done = folder / "fixture_result.json"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(exist_ok=True)
    result = build(folder)
    done.write_text(json.dumps(result))
    return result


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return _once(tmp_path_factory, "tiny_model", lambda folder: make_tiny_model_dir(str(folder / "tiny")))


@pytest.fixture(scope="session")
def loaded(tiny_model_dir):
    """(keras model, ExperimentConfig) of the tiny model_dir, as export loads them."""
    from tfvideo import _experiment

    return _experiment.load_trained_model(tiny_model_dir)


# --- A model trained by `tfvideo-train --feature_spec` (the `features` signature's real path). ---
SPEC_CLIP_LENGTH = 4
SPEC_CROP = 32
SPEC_RESIZE = 36


def video_feature_layer(key="video", clip_length=SPEC_CLIP_LENGTH, size=SPEC_CROP, resize_short=SPEC_RESIZE, extra=()):
    """A FeatureLayer whose one video column samples `clip_length` segments, crops `size`."""
    from tfvideo import data, feature_columns

    column = feature_columns.video_column(key, data.SegmentSampler(clip_length), size=size,
                                          preprocess={"resize_short": resize_short})
    return feature_columns.FeatureLayer([column, *extra])


@pytest.fixture(scope="session")
def feature_spec_run(moving_shapes, tmp_path_factory):
    """`tfvideo-train --feature_spec spec.json` (subprocess, 2 steps on tiny mp4s) -> model_dir.

    The spec file is deleted afterwards: what export needs must be in model_dir/config.json.
    Returns {"model_dir", "spec" (the spec dict), "data" (the moving_shapes lists)}.
    """
    import subprocess
    import sys

    def train(root):
        spec_path = str(root / "spec.json")
        video_feature_layer().save_spec(spec_path)
        with open(spec_path) as f:
            spec = json.load(f)
        model_dir = str(root / "featured")
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, "PYTHONPATH": repo, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
               "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "trainers.train", "--model=tsm_tiny", f"--feature_spec={spec_path}",
             f"--train_data={moving_shapes['train']}", f"--eval_data={moving_shapes['val']}",
             f"--label_map={moving_shapes['label_map']}", f"--model_dir={model_dir}", "--train_steps=2",
             "--batch_size=4", "--dropout=0", "--verbose=0", "--seed=3"],
            check=False, capture_output=True, text=True, cwd=repo, env=env, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        os.remove(spec_path)
        return {"model_dir": model_dir, "spec": spec, "data": moving_shapes, "stdout": proc.stdout}

    return _once(tmp_path_factory, "feature_spec_run", train)


@pytest.fixture(scope="session")
def feature_spec_loaded(feature_spec_run):
    """(keras model, ExperimentConfig) of the feature-spec run."""
    from tfvideo import _experiment

    return _experiment.load_trained_model(feature_spec_run["model_dir"])


@pytest.fixture(scope="session")
def feature_spec_export(feature_spec_run, tmp_path_factory):
    """The feature-spec run exported with `frames` and `features` signatures (one view)."""
    import dataclasses

    from tfvideo import export

    def run(root):
        result = export.export_saved_model(str(root), model_dir=feature_spec_run["model_dir"], model_name="featured",
                                           input_types=["features", "frames"])
        return dataclasses.asdict(result)

    result = _once(tmp_path_factory, "feature_spec_export", run)
    return export.ExportResult(**{**result, "signatures": tuple(result["signatures"])})


def make_context_model(seed=0):
    """A functional model on a FeatureLayer with a video column and a side feature.

    `gain` (float32 [B, 2]) joins the clip's pooled colour: (model, layer, ExperimentConfig).
    """
    import keras

    from tfvideo import _experiment, feature_columns

    keras.utils.set_random_seed(seed)
    layer = video_feature_layer(extra=[feature_columns.numeric_column("gain", shape=2)])
    clip = keras.Input((1, SPEC_CLIP_LENGTH, SPEC_CROP, SPEC_CROP, 3), name="video")
    dense = keras.Input((2,), name="dense")
    pooled = keras.layers.Reshape((-1, 3))(clip)
    pooled = keras.layers.GlobalAveragePooling1D()(pooled)
    joined = keras.layers.Concatenate()([pooled, dense])
    hidden = keras.layers.Dense(8, activation="tanh", name="hidden")(joined)
    logits = keras.layers.Dense(len(LABELS), name="logits")(hidden)
    model = keras.Model({"video": clip, "dense": dense}, logits)
    config = _experiment.ExperimentConfig(
        model="custom", num_classes=len(LABELS), labels=list(LABELS),
        sampler={"type": "segment", "num_segments": SPEC_CLIP_LENGTH},
        preprocess={"crop_size": SPEC_CROP, "resize_short": SPEC_RESIZE},
    )
    return model, layer, config
