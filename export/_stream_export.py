"""tfvideo-export --streaming / --litert: online TSM recognizers for streams and small devices.

  tfvideo-export --model_dir=runs/online --export_dir=/tmp/models --streaming
      -> /tmp/models/online/<version>/  (SavedModel: init_state, step; assets.extra/stream_config.json)
  tfvideo-export --model_dir=runs/online --export_dir=/tmp/models --litert
      -> /tmp/models/online.float32.tflite, online.int8.tflite (+ .json descriptions beside them)

int8 is calibrated on --representative_clips clips of the run's training data (or
--representative_data), streamed frame by frame through the float model. With an
evaluation set (the run's or --eval_data), the export prints the parity of each LiteRT file
with the Keras model on up to --parity_clips clips.
"""

import os

import numpy as np

from tfvideo.export import _stream_recognizer, _versions


def _pixel_clips(config, source, count):
    """Up to `count` clips [T, S, S, 3] of pixel values (0..255) from `source`, as evaluation samples them."""
    from trainers import _task

    if not _task.data_exists(source):
        raise ValueError(f"{source}: no such file (or no file matches the pattern)")
    preprocess = config.build_preprocess()
    mean = np.asarray(preprocess.mean, "float32") * 255.0
    std = np.asarray(preprocess.std, "float32") * 255.0
    clips, labels = [], []
    for element in _task.dataset(config, source, False, 1).take(count):
        video = element["video"].numpy()[0, 0]  # [T, S, S, 3] normalized.
        clips.append(video * std + mean)
        labels.append(int(element["label"].numpy()[0]))
    return clips, labels


def parity(model, preprocess, runner, clips):
    """(max |LiteRT - Keras| / max |Keras| over logits, top-1 agreement) after each clip's last frame."""
    mean = np.asarray(preprocess.mean, "float32") * 255.0
    std = np.asarray(preprocess.std, "float32") * 255.0
    worst, agree = 0.0, 0
    for clip in clips:
        want = np.asarray(model(((clip - mean) / std)[None].astype("float32")))
        state = runner.init_state(1)
        for frame in clip:
            _, got, state = runner.step(frame[None], state)
        worst = max(worst, float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)))
        agree += int(got.argmax() == want.argmax())
    return worst, agree / max(len(clips), 1)


def export(flags, model_dir, export_dir, model_name=None):
    """Runs the --streaming / --litert export; returns the paths written (printed by the binary)."""
    from tfvideo import _experiment

    model, config = _experiment.load_trained_model(model_dir)
    if config.task != "recognition":
        raise ValueError(f"--model_dir={model_dir} holds a {config.task!r} model; --streaming/--litert export "
                         "online TSM recognizers (online detectors stream with the plain export).")
    average_last = flags.average_last if flags.average_last is not None else model.num_segments
    stream, preprocess = _stream_recognizer.streaming_from_model(model, config, average_last)
    name = model_name or os.path.basename(os.path.normpath(model_dir))
    if not name or "/" in name:
        raise ValueError(f"--model_name={name!r} must be a non-empty name without '/'")
    written = []
    if flags.streaming:
        with _versions.staged_version_dir(os.path.join(export_dir, name), flags.version) as (tmp, publish):
            _stream_recognizer.export_streaming_recognizer(stream, tmp, preprocess, config.model, config.labels)
            written.append(publish())
    if flags.litert:
        representative = None
        if "int8" in flags.litert_quantization:
            source = flags.representative_data or config.train.train_data
            if not source:
                raise ValueError("--litert_quantization=int8 needs --representative_data (the run has no train_data)")
            representative, _ = _pixel_clips(config, source, flags.representative_clips)
        eval_clips = []
        eval_source = flags.parity_data or config.train.eval_data
        if eval_source and flags.parity_clips:
            eval_clips, _ = _pixel_clips(config, eval_source, flags.parity_clips)
        for quantization in flags.litert_quantization:
            path = os.path.join(export_dir, f"{name}.{quantization}.tflite")
            _stream_recognizer.export_litert(stream, path, preprocess, quantization, representative, config.model,
                                             config.labels)
            written.append(path)
            if eval_clips:
                worst, agree = parity(model, preprocess, _stream_recognizer.LiteRTStream(path), eval_clips)
                written.append(f"  {quantization}: max relative logit difference {worst:.2e}, top-1 agreement "
                               f"{agree:.1%} with Keras on {len(eval_clips)} clips of {eval_source}")
    return written
