"""tfvideo-predict --sliding_window: class scores over a long video, per second, as a CSV and a plot.

  tfvideo-predict --model_dir=runs/tsm --sliding_window long.mp4 --output_csv=scores.csv --output_plot=scores.png

The video is decoded once, front to back, keeping only the frames of the current window
(resized and centre-cropped as the run's evaluation does): memory does not grow with the
video's length. Every --stride_seconds a window of the last --window_seconds is sampled
into the model's clip (its test-time sampler's frame positions: the centre frame of each
segment) and scored; a window's scores belong to its centre time. Second s of the CSV is
the mean of the windows centred in [s, s + 1) (or the nearest window when none is):

  second,top_label,top_score,<label 0>,<label 1>,...

The plot shows the --plot_classes classes with the highest peak score over time.
"""

import collections
import csv
import os

import numpy as np

from trainers import _stream_recognizer


def _window_positions(clip_length, window_frames):
    """Frame offsets (0 = oldest) of the clip in a window: the centre of each of clip_length segments."""
    return np.minimum(((np.arange(clip_length) + 0.5) * window_frames / clip_length).astype(int), window_frames - 1)


def window_scores(model, config, path, window_seconds, stride_seconds):
    """(centre seconds [W], softmax scores [W, K], duration) of the sliding windows over `path`."""
    import keras

    preprocess = config.build_preprocess()
    crop = {"crop_size": preprocess.crop_size, "resize_short": preprocess.resize_short}
    mean = np.asarray(preprocess.mean, "float32") * 255.0
    std = np.asarray(preprocess.std, "float32") * 255.0
    clip_length = getattr(model, "clip_length", None) or model.num_frames
    fps, frames = _stream_recognizer.video_frames(path)
    window_frames = max(clip_length, int(round(window_seconds * fps)))
    positions = _window_positions(clip_length, window_frames)
    ring = collections.deque(maxlen=window_frames)
    centres, scores = [], []
    next_end, seconds = window_seconds, 0.0

    def score(end):
        clip = np.stack([ring[i] for i in positions])[None]
        logits = model((clip - mean) / std, training=False)
        centres.append(end - window_seconds / 2)
        scores.append(keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))[0])

    for seconds, frame in frames:
        ring.append(_stream_recognizer.network_input(frame, crop)[0])
        if len(ring) == window_frames and seconds + 0.5 / fps >= next_end:
            score(seconds + 1 / fps)
            next_end += stride_seconds
    duration = seconds + 1 / fps if ring else 0.0
    if not scores:
        if not ring:
            raise ValueError(f"{path}: no frames")
        while len(ring) < window_frames:  # Shorter than one window: its frames, the last one repeated.
            ring.append(ring[-1])
        window_seconds = duration
        score(duration)
    return np.asarray(centres), np.stack(scores), duration


def per_second(centres, scores, duration):
    """Scores [S, K] of each second 0..ceil(duration) - 1."""
    seconds = max(1, int(np.ceil(duration - 1e-6)))
    out = np.zeros((seconds, scores.shape[1]), np.float32)
    for s in range(seconds):
        inside = (centres >= s) & (centres < s + 1)
        out[s] = scores[inside].mean(0) if inside.any() else scores[np.abs(centres - (s + 0.5)).argmin()]
    return out


def write_csv(path, per_sec, labels):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["second", "top_label", "top_score", *labels])
        for s, row in enumerate(per_sec):
            k = int(row.argmax())
            writer.writerow([s, labels[k], f"{row[k]:.4f}", *(f"{v:.4f}" for v in row)])


def write_plot(path, per_sec, labels, title, classes=5):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    order = np.argsort(-per_sec.max(0))[:classes]
    seconds = np.arange(len(per_sec)) + 0.5
    fig, ax = plt.subplots(figsize=(max(6.0, min(20.0, len(per_sec) / 4)), 3.5), dpi=100)
    for k in order:
        ax.plot(seconds, per_sec[:, k], label=labels[k], linewidth=1.8)
    ax.set_xlim(0, len(per_sec))
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title=f"top {len(order)} classes")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _output(path, video, suffix, many):
    """The output file of `video`: `path` itself for one video, `<stem>.<video name><suffix>` for several."""
    if not many:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}.{os.path.splitext(os.path.basename(video))[0]}{ext or suffix}"


def run(flags, paths, echo=print):
    """Scores every video of `paths`; returns the number that failed (each reported through `echo`)."""
    from tfvideo import _experiment

    if not flags.model_dir:
        raise ValueError("--sliding_window needs --model_dir (a training run; a served model takes whole clips)")
    model, config = _experiment.load_trained_model(flags.model_dir)
    if config.task != "recognition":
        raise ValueError(f"--model_dir={flags.model_dir} holds a {config.task!r} model, not a recognizer")
    labels = config.labels or [f"class_{k}" for k in range(config.num_classes)]
    failures = 0
    for path in paths:
        try:
            centres, scores, duration = window_scores(model, config, path, flags.window_seconds, flags.stride_seconds)
        except ValueError as e:
            echo(f"error: {e}")
            failures += 1
            continue
        per_sec = per_second(centres, scores, duration)
        top = [labels[k] for k in per_sec.argmax(1)]
        echo(f"{path}\t{len(per_sec)} s, {len(centres)} windows: " + " ".join(
            f"{s}s:{label}" for s, label in enumerate(top) if s == 0 or label != top[s - 1]))
        if flags.output_csv:
            write_csv(_output(flags.output_csv, path, ".csv", len(paths) > 1), per_sec, labels)
        if flags.output_plot:
            write_plot(_output(flags.output_plot, path, ".png", len(paths) > 1), per_sec, labels,
                       f"{os.path.basename(path)}: {flags.window_seconds:g} s windows every {flags.stride_seconds:g} s",
                       flags.plot_classes)
    return failures
