"""Evaluates a trained recognizer: top-1/top-5, mean class accuracy, confusion matrix.

  tfvideo-evaluate --model_dir=/tmp/run --eval_data=val.txt --num_clips=3 --num_crops=3

Two-stream (late fusion of several runs on the same videos, e.g. TSN RGB + flow):

  tfvideo-evaluate --model_dir=runs/rgb,runs/flow --fusion_weights=1,1.5 --eval_data='tfr/val-*'

scores each run on its own clip spec (modality, sampler, crop), matches the videos by media
id and reports the weighted average of the streams' class scores (probabilities; logits
with --average_clips=score) and each stream's top-1; reports go to --output_dir (default: <first model_dir>/eval-fused).

Multi-view testing: --num_clips clips x --num_crops crops per video, averaged as probabilities
(--average_clips=prob, MMAction2's default: each view's softmax, then the mean) or as logits
(--average_clips=score: the views' mean logits, then the softmax); with several model_dirs the
streams are fused in the same space. metrics.json and the printed summary say which.
Writes metrics.json, predictions.csv (one row per video) and confusion_matrix.png (a labelled
figure) under --output_dir (default model_dir/eval), a TensorBoard image under
model_dir/logs/eval, and adds the evaluation to model_dir/report.md. Prints top-1, per-class
accuracy (worst first) and the top confusions ("right_to_left -> left_to_right: 31").
"""

import os

import numpy as np
from absl import app, flags

from tfvideo import _experiment
from tfvideo.data import _formats
from trainers import _cli, _data_formats, _evaluation, _flags, _online, _reports, _task

FLAGS = flags.FLAGS
_flags.define(flags.DEFINE_enum, "task", "recognition", ["recognition", "online_detection"], "What to evaluate.")
_flags.define(flags.DEFINE_string, "model_dir", None, "A model_dir written by tfvideo-train; several, comma-separated "
              "(e.g. an RGB and a flow run), are fused (--fusion_weights).")
_flags.define(flags.DEFINE_string, "eval_data", None, "Annotation list or TFRecord pattern (default: the run's); with "
              "several model_dirs one source for all or one per model_dir, comma-separated.")
flags.DEFINE_list("fusion_weights", None, "Weight of each --model_dir's class probabilities in the fused score "
                  "(default: equal; TSN: 1,1.5 for RGB,flow).")
_flags.define(flags.DEFINE_integer, "num_clips", 1, "Test clips per video.")
_flags.define(flags.DEFINE_integer, "num_crops", 1, "Test crops per clip: 1, 3 or 10.")
_flags.define(flags.DEFINE_integer, "batch_size", 4, "Videos per batch.")
flags.DEFINE_enum("average_clips", "prob", ["prob", "score"], "How a video's views (--num_clips x --num_crops) "
                  "are averaged: prob = each view's softmax, then the mean (MMAction2's default); score = the mean "
                  "of the views' logits, then the softmax. Fused model_dirs are averaged in the same space.")
_flags.define(flags.DEFINE_string, "output_dir", None, "Where reports go (default: model_dir/eval).")

_online.define_flags()
_data_formats.define_flags()


def evaluate_recognition():
    """model_dir + flags -> metrics dict (reports written)."""
    if not FLAGS.model_dir:
        raise ValueError("--model_dir is required.")
    if FLAGS.num_crops not in (1, 3, 10):
        raise ValueError(f"--num_crops={FLAGS.num_crops} must be 1, 3 or 10.")
    _flags.check_ranges(FLAGS, {"num_clips": ">=1", "batch_size": ">=1"})
    model, config = _experiment.load_trained_model(FLAGS.model_dir)
    source = FLAGS.eval_data or config.train.eval_data
    if not source:
        raise ValueError("--eval_data is required (the run has no eval_data).")
    if not _task.data_exists(source):
        raise ValueError(f"--eval_data={source}: no such file (or no file matches the pattern).")
    if FLAGS.eval_data:  # In the --format given (or detected), with the run's options unless given.
        source, _ = _data_formats.resolve(source, "test", config.train.eval_data or config.train.train_data,
                                          config.labels or None, "mmaction" if config.train.multi_label else None)
    if _formats.parse_source(source) is not None:  # A published layout: every entry labelled, ids in range.
        _task.check_labels(source, config.num_classes, config.labels or None, "--eval_data")
    ds = _task.dataset(config, source, False, FLAGS.batch_size, num_clips=FLAGS.num_clips, num_crops=FLAGS.num_crops)
    multi_label = bool(config.train.multi_label)
    labels, scores, ids = _evaluation.predict(model, ds, multi_label, FLAGS.average_clips)
    if multi_label:
        metrics = _evaluation.multilabel_metrics(labels, scores)
    else:
        metrics = _evaluation.classification_metrics(labels, scores, config.num_classes)
    metrics.update({"num_clips": FLAGS.num_clips, "num_crops": FLAGS.num_crops, "average_clips": FLAGS.average_clips,
                    "eval_data": source})
    output_dir = FLAGS.output_dir or os.path.join(FLAGS.model_dir, "eval")
    if multi_label:  # Sigmoid scores, mean average precision (MMAction2's multi_class evaluation).
        _evaluation.write_multilabel_report(output_dir, metrics, ids, labels, scores, config.labels)
    else:
        _evaluation.write_report(output_dir, metrics, ids, labels, scores, config.labels,
                                 log_dir=os.path.join(FLAGS.model_dir, "logs", "eval"))
    if not FLAGS.output_dir:  # The training report then shows this evaluation.
        _reports.write_training_report(FLAGS.model_dir)
    return metrics, output_dir, config


def _fusion_weights(count):
    if FLAGS.fusion_weights is None:
        return [1.0] * count
    try:
        weights = [float(w) for w in FLAGS.fusion_weights]
    except ValueError:
        raise ValueError(f"--fusion_weights={','.join(FLAGS.fusion_weights)}: not numbers.") from None
    if len(weights) != count:
        raise ValueError(f"--fusion_weights={','.join(FLAGS.fusion_weights)}: {len(weights)} weights for "
                         f"{count} --model_dir entries.")
    if any(not (w >= 0 and np.isfinite(w)) for w in weights) or sum(weights) <= 0:
        raise ValueError(f"--fusion_weights={','.join(FLAGS.fusion_weights)}: must be >= 0 with a positive sum.")
    return weights


def evaluate_fused(model_dirs):
    """Several model_dirs on the same videos -> fused metrics (reports written)."""
    weights = _fusion_weights(len(model_dirs))
    _flags.check_ranges(FLAGS, {"num_clips": ">=1", "batch_size": ">=1"})
    sources = FLAGS.eval_data.split(",") if FLAGS.eval_data else [None] * len(model_dirs)
    if len(sources) == 1:
        sources = sources * len(model_dirs)
    if len(sources) != len(model_dirs):
        raise ValueError(f"--eval_data: {len(sources)} sources for {len(model_dirs)} --model_dir entries.")
    streams, configs, used = [], [], []
    for model_dir, source in zip(model_dirs, sources):
        if not os.path.isdir(model_dir):
            raise ValueError(f"--model_dir={model_dir}: no such directory.")
        model, config = _experiment.load_trained_model(model_dir)
        if configs and (config.num_classes != configs[0].num_classes or config.labels != configs[0].labels):
            raise ValueError(f"--model_dir={model_dir} has other classes ({config.num_classes}: "
                             f"{', '.join(config.labels[:4])}...) than {model_dirs[0]} ({configs[0].num_classes}).")
        source = source or config.train.eval_data
        if not source:
            raise ValueError(f"--eval_data is required (the run {model_dir} has no eval_data).")
        if not _task.data_exists(source):
            raise ValueError(f"--eval_data={source}: no such file (or no file matches the pattern).")
        ds = _task.dataset(config, source, False, FLAGS.batch_size, num_clips=FLAGS.num_clips,
                           num_crops=FLAGS.num_crops)
        labels, scores, ids = _evaluation.predict_scores(model, ds, average=FLAGS.average_clips)
        streams.append((model_dir, labels, scores, ids))
        configs.append(config)
        used.append(source)
    labels, fused, ids, per_stream = _evaluation.fuse_predictions(streams, weights)
    fused = _evaluation.to_probabilities(fused, FLAGS.average_clips)  # score: the fused logits' softmax.
    config = configs[0]
    metrics = _evaluation.classification_metrics(labels, fused, config.num_classes)
    metrics["streams"] = [
        {"model_dir": d, "modality": c.clip_spec.modality, "weight": w, "eval_data": s,
         "top1": _evaluation.top_k_accuracy(labels, p, 1),
         "mean_class_accuracy": _evaluation.classification_metrics(labels, p, c.num_classes)["mean_class_accuracy"]}
        for d, c, w, s, p in zip(model_dirs, configs, weights, used, per_stream)]
    metrics.update({"num_clips": FLAGS.num_clips, "num_crops": FLAGS.num_crops, "average_clips": FLAGS.average_clips,
                    "fusion_weights": weights})
    output_dir = FLAGS.output_dir or os.path.join(model_dirs[0], "eval-fused")
    _evaluation.write_report(output_dir, metrics, ids, labels, fused, config.labels)
    return metrics, output_dir, config


def _views_text():
    """How the views were averaged, for the printed summary."""
    views = f"{FLAGS.num_clips} clips x {FLAGS.num_crops} crops"
    if FLAGS.num_clips * FLAGS.num_crops == 1 and "," not in (FLAGS.model_dir or ""):
        return views
    space = "probabilities (softmax, then mean)" if FLAGS.average_clips == "prob" else "logits (mean, then softmax)"
    return f"{views}, averaged as {space}: --average_clips={FLAGS.average_clips}"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.task == "online_detection":
        return _online.evaluate_main(FLAGS)
    model_dirs = [d for d in (FLAGS.model_dir or "").split(",") if d]
    try:
        if FLAGS.num_crops not in (1, 3, 10):
            raise ValueError(f"--num_crops={FLAGS.num_crops} must be 1, 3 or 10.")
        if len(model_dirs) > 1:
            metrics, output_dir, config = evaluate_fused(model_dirs)
        elif FLAGS.fusion_weights is not None:
            raise ValueError("--fusion_weights needs several --model_dir entries (comma-separated).")
        else:
            metrics, output_dir, config = evaluate_recognition()
    except (ValueError, FileNotFoundError) as e:
        _cli.report("tfvideo-evaluate", e)
        return 2
    if "mean_average_precision" in metrics:
        print(f"mAP: {metrics['mean_average_precision']:.4f}")
        print(f"top-1 (top class among the labels): {metrics['top1']:.4f}")
        print(f"videos: {metrics['num_videos']} ({_views_text()}); reports in {output_dir}")
        return 0
    for stream in metrics.get("streams", []):
        print(f"stream {stream['model_dir']} ({stream['modality']}, weight {stream['weight']:g}): "
              f"top-1 {stream['top1']:.4f}")
    if "streams" in metrics:
        print(f"fused ({len(metrics['streams'])} streams, {metrics['num_videos']} videos):")
    print(f"top-1: {metrics['top1']:.4f}")
    print(f"top-5: {metrics['top5']:.4f}")
    print(f"mean class accuracy: {metrics['mean_class_accuracy']:.4f}")
    print(f"videos: {metrics['num_videos']} ({_views_text()}); reports in {output_dir}")
    print("\n".join(_reports.evaluation_text(metrics, config.labels)))
    return 0


def run():
    _cli.run(main, "tfvideo-evaluate")


if __name__ == "__main__":
    run()
