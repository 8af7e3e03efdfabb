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
from trainers import _cli, _features, _flags

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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
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
