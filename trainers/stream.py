"""Runs a trained online detector over a stream in real-time order, printing the action per second.

  tfvideo-stream --model_dir=/tmp/trn --features=/data/rgb/video_1.npy,/data/flow/video_1.npy
  tfvideo-stream --model_dir=/tmp/trn --video=clip.mp4 --feature_model_dir=/tmp/tsn --chunk_frames=6

Chunks are fed one at a time through the detector's `step` (the same computation as the
exported streaming SavedModel). With --video, each chunk's feature is computed as
tfvideo-extract-features computes it with the recognizer of --feature_model_dir, so the
detector sees the features it was trained on. --realtime paces the input at
--chunk_seconds per chunk, as a live camera would.
"""

import itertools
import sys
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from tfvideo import _experiment, data
from tfvideo.export import _stream_recognizer as exported
from trainers import _cli, _features, _flags, _stream_recognizer

FLAGS = flags.FLAGS
_flags.define(flags.DEFINE_string, "model_dir", None, "A model_dir of an online detector written by tfvideo-train.")
_flags.define(flags.DEFINE_list, "features", [], "Precomputed chunk features: .npy files [T, D_i] of one video, "
              "concatenated along D in order (e.g. rgb.npy,flow.npy).")
_flags.define(flags.DEFINE_string, "video", None, "A video file; chunk features come from --feature_model_dir.")
_flags.define(flags.DEFINE_string, "feature_model_dir", None, "A recognizer model_dir whose backbone embeds --video chunks.")
_flags.define(flags.DEFINE_integer, "chunk_frames", 6, "Frames per chunk for --video (as --chunk_size of tfvideo-extract-features).")
_flags.define(flags.DEFINE_integer, "frames_per_chunk", None,
              "Frames of each --video chunk fed to the recognizer (default: its clip length, as tfvideo-extract-features).")
_flags.define(flags.DEFINE_float, "chunk_seconds", None, "Seconds per chunk (default: the run's, or frames / fps for --video).")
_flags.define(flags.DEFINE_boolean, "realtime", False, "Pace the chunks at --chunk_seconds each, as a live stream.")
_flags.define(flags.DEFINE_string, "saved_model", None, "A streaming SavedModel of an online TSM recognizer "
              "(tfvideo-export --streaming): labels --video or --camera frame by frame.")
_flags.define(flags.DEFINE_string, "litert", None, "A streaming LiteRT file of an online TSM (tfvideo-export --litert), "
              "as --saved_model.")
_flags.define(flags.DEFINE_integer, "camera", None, "With --saved_model/--litert: read camera N (OpenCV) instead of --video.")
_flags.define(flags.DEFINE_string, "output_video", None, "With --saved_model/--litert: write the video with the top "
              "labels and a score bar drawn on each frame (.mp4).")
_flags.define(flags.DEFINE_integer, "num_threads", None, "With --litert: interpreter threads.")
_flags.define(flags.DEFINE_integer, "frame_stride", 1, "With --saved_model/--litert: step every N-th frame (match the "
              "frame spacing the model was trained on; the frames between keep the last labels).")


def video_chunk_features(path, feature_model_dir, chunk_frames=6, frames_per_chunk=None):
    """Chunk features [D] of a video file in time order, computed chunk by chunk.

    Returns (fps, generator). Chunks and features are exactly those `tfvideo-extract-features`
    writes for the same video and recognizer (the features the detector was trained on):
    `chunk_frames` consecutive frames a chunk (the last one may be short), `frames_per_chunk`
    frames of it (default: the recognizer's clip length) through the recognizer's feature
    path, averaged.
    """
    recognizer, config = _experiment.load_trained_model(feature_model_dir)
    try:
        extract = _features.feature_extractor(recognizer)
    except ValueError as e:
        raise ValueError(f"--feature_model_dir={feature_model_dir}: {e}") from None
    frames_per_chunk = frames_per_chunk or config.build_sampler(training=False).clip_length
    preprocess = config.build_preprocess(num_crops=1)
    frames, fps = data.read_all_frames(path)

    def generate():
        for start in range(0, len(frames), chunk_frames):
            chunk = frames[start : start + chunk_frames]
            yield _features.chunk_features(extract, chunk, preprocess, chunk_frames, frames_per_chunk, 1)[0]

    return fps, generate()


def stream_detections(model, chunks, chunk_seconds, ambiguous_index=None, realtime=False):
    """Feeds chunks [D] one at a time through `model.step`; yields (second, class, score) per second.

    A second's detection is the arg-max of its chunks' mean class probabilities (the
    ambiguous class never wins).
    """
    spec = tf.TensorSpec([1, model.feature_dim], tf.float32)
    state_spec = {n: tf.TensorSpec([1, *s], tf.float32) for n, s in model.state_shapes().items()}
    step = tf.function(lambda c, s: model.step(c, s), input_signature=[spec, state_spec])
    state = model.init_state(1)
    started, current, pending = time.monotonic(), None, []

    def detection(second):
        mean = np.mean(pending, axis=0)
        if ambiguous_index is not None:
            mean[ambiguous_index] = -1.0
        return second, int(mean.argmax()), float(mean.max())

    for i, chunk in enumerate(chunks):
        if realtime:
            time.sleep(max(0.0, started + i * chunk_seconds - time.monotonic()))
        logits, state = step(tf.constant(np.asarray(chunk, np.float32)[None]), state)
        second = int(np.floor(i * chunk_seconds + 1e-9))
        if current is not None and second != current and pending:
            yield detection(current)
            pending = []
        current = second
        pending.append(tf.nn.softmax(logits[0]).numpy())
    if pending:
        yield detection(current)


def recognize_main():
    """--saved_model / --litert: an online TSM recognizer over --video or --camera (trainers/_stream_recognizer.py)."""
    try:
        _flags.check_ranges(FLAGS, {"camera": ">=0", "num_threads": ">=1", "frame_stride": ">=1"})
        if (FLAGS.video is None) == (FLAGS.camera is None):
            raise ValueError("give one of --video or --camera with --saved_model/--litert.")
        runner = exported.open_stream(FLAGS.saved_model, FLAGS.litert, FLAGS.num_threads)
        if FLAGS.video is not None:
            fps, frames = _stream_recognizer.video_frames(FLAGS.video)
        else:
            fps, frames = _stream_recognizer.camera_frames(FLAGS.camera)
        count = _stream_recognizer.run_stream(runner, fps, frames, FLAGS.realtime, FLAGS.output_video,
                                              echo=lambda line: print(line, flush=True),
                                              frame_stride=FLAGS.frame_stride)
    except (ValueError, FileNotFoundError) as e:
        _cli.report("tfvideo-stream", e)
        return 2
    print(f"streamed {count} frames" + (f"; wrote {FLAGS.output_video}" if FLAGS.output_video else ""), file=sys.stderr)
    return 0


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.saved_model or FLAGS.litert:
        return recognize_main()
    try:
        if not FLAGS.model_dir:
            raise ValueError("--model_dir is required.")
        _flags.check_ranges(FLAGS, {"chunk_frames": ">=1", "frames_per_chunk": ">=1", "chunk_seconds": ">0"})
        model, config = _experiment.load_trained_model(FLAGS.model_dir)
        if config.task != "online_detection":
            raise ValueError(f"--model_dir={FLAGS.model_dir} holds a {config.task!r} model, not an online detector.")
        settings = config.train.online or _experiment.OnlineConfig()
        chunk_seconds = FLAGS.chunk_seconds or settings.chunk_seconds
        if FLAGS.features:
            parts = [np.load(p).astype(np.float32) for p in FLAGS.features]
            if len({len(p) for p in parts}) != 1:
                raise ValueError(f"--features files disagree on the number of chunks: "
                                 f"{[f'{n} {p.shape}' for n, p in zip(FLAGS.features, parts)]}.")
            chunks = np.concatenate(parts, axis=1)
            if chunks.shape[1] != model.feature_dim:
                raise ValueError(f"--features give {chunks.shape[1]} features per chunk; the detector of "
                                 f"--model_dir expects {model.feature_dim}.")
        elif FLAGS.video:
            if not FLAGS.feature_model_dir:
                raise ValueError("--video needs --feature_model_dir (a recognizer model_dir) to embed chunks.")
            fps, chunks = video_chunk_features(FLAGS.video, FLAGS.feature_model_dir, FLAGS.chunk_frames,
                                               FLAGS.frames_per_chunk)
            chunk_seconds = FLAGS.chunk_seconds or FLAGS.chunk_frames / fps
            first = next(chunks, None)
            if first is None:
                raise ValueError(f"--video={FLAGS.video} has no frames.")
            if first.shape[-1] != model.feature_dim:
                raise ValueError(f"--feature_model_dir={FLAGS.feature_model_dir} embeds chunks in {first.shape[-1]} "
                                 f"features; the detector of --model_dir expects {model.feature_dim}.")
            chunks = itertools.chain([first], chunks)
        else:
            raise ValueError("give --features (chunk-feature .npy files) or --video.")
        labels = config.labels or [f"class_{k}" for k in range(model.num_classes)]
        count = 0
        for second, cls, score in stream_detections(model, chunks, chunk_seconds, settings.ambiguous_index,
                                                    FLAGS.realtime):
            print(f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}  {labels[cls]}  {score:.3f}",
                  flush=True)
            count += 1
    except (ValueError, FileNotFoundError) as e:
        _cli.report("tfvideo-stream", e)
        return 2
    print(f"streamed {count} seconds", file=sys.stderr)
    return 0


def run():
    _cli.run(main, "tfvideo-stream")


if __name__ == "__main__":
    run()
