"""Reports people read: the confusion-matrix figure, per-class accuracy, top confusions and
the training report (curves of loss, accuracy and learning rate per epoch).

Figures are drawn with matplotlib's Agg backend (no display needed) and written as PNG.
A model_dir after `tfvideo-train` (and `tfvideo-evaluate`) holds:
  metrics.json       per-epoch training figures (loss, accuracy, learning rate, val top-1, seconds)
  report.md          the training report: settings, the curves, and the evaluation when there is one
  report/*.png       loss.png, accuracy.png, learning_rate.png
  eval/              metrics.json, predictions.csv, confusion_matrix.png (tfvideo-evaluate)
"""

import io
import json
import os

import numpy as np
import tensorflow as tf

from tfvideo import _experiment

REPORT_FILE = "report.md"
REPORT_DIR = "report"
METRICS_FILE = "metrics.json"
CELL_NUMBERS_MAX = 30  # Beyond this many classes cells carry colour only.
TICK_LABELS_MAX = 100  # Beyond this many classes the axes show every n-th class id.


def _pyplot():
    import matplotlib  # Only when a figure is drawn: heavy, and its backend must be chosen first.

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot  # After choosing the Agg backend.

    return pyplot


def _short(name, width=32):
    """`name` cut in the middle to `width` characters: long sentence labels (SSv2) keep both ends."""
    name = str(name)
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "\u2026" + name[len(name) - (width - 1 - head):]


def _png(fig, path=None, dpi=100):
    """Encodes (and writes) a figure as PNG; returns the bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    data = buffer.getvalue()
    if path:
        with open(path, "wb") as f:
            f.write(data)
    return data


# ---------------------------------------------------------------- evaluation texts


def per_class_accuracy(matrix, names):
    """[(name, accuracy, videos)] of the classes with videos, worst first (ties by name)."""
    matrix = np.asarray(matrix)
    names = _names(names, len(matrix))
    support = matrix.sum(1)
    rows = [(names[k], float(matrix[k, k] / support[k]), int(support[k])) for k in range(len(matrix)) if support[k]]
    return sorted(rows, key=lambda r: (r[1], r[0]))


def top_confusions(matrix, names, k=10):
    """The `k` largest off-diagonal cells: [(true name, predicted name, count)], largest first."""
    matrix = np.array(matrix, np.int64)
    names = _names(names, len(matrix))
    np.fill_diagonal(matrix, 0)
    order = np.argsort(-matrix, axis=None, kind="stable")[:k]
    out = []
    for flat in order:
        i, j = divmod(int(flat), matrix.shape[1])
        if matrix[i, j] <= 0:
            break
        out.append((names[i], names[j], int(matrix[i, j])))
    return out


def evaluation_text(metrics, names, max_classes=20, max_confusions=10):
    """The lines `tfvideo-evaluate` prints after top-1: per-class accuracy (worst first), top confusions."""
    matrix = metrics["confusion_matrix"]
    rows = per_class_accuracy(matrix, names)
    width = max((len(r[0]) for r in rows[:max_classes]), default=5)
    lines = ["per-class accuracy (worst first):"]
    lines += [f"  {name:<{width}}  {acc:6.1%}  ({int(round(acc * n))}/{n})" for name, acc, n in rows[:max_classes]]
    if len(rows) > max_classes:
        lines.append(f"  ... {len(rows) - max_classes} more classes in metrics.json (per_class_accuracy)")
    confusions = top_confusions(matrix, names, max_confusions)
    lines.append("top confusions (true -> predicted: videos):" if confusions else "top confusions: none")
    lines += [f"  {a} -> {b}: {n}" for a, b, n in confusions]
    return lines


def _names(names, k):
    names = list(names or [])
    return names if len(names) == k else [str(i) for i in range(k)]


# ---------------------------------------------------------------- confusion matrix figure


def confusion_png(matrix, names, top1=None, path=None):
    """`confusion_figure` as PNG bytes (also written to `path` when given)."""
    return _png(confusion_figure(matrix, names, top1), path)


def confusion_figure(matrix, names, top1=None, title=None):
    """The confusion matrix as a matplotlib figure.

    Rows are true classes, columns predictions, both labelled with the class names (up to
    `TICK_LABELS_MAX` classes; beyond, every n-th class id); cell colour is the
    row-normalised share and, up to `CELL_NUMBERS_MAX` classes, each non-zero cell shows
    its count of videos. The title carries top-1 and the number of videos.
    """
    plt = _pyplot()
    matrix = np.asarray(matrix, np.int64)
    k = matrix.shape[0]
    names = _names(names, k)
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    # Inches: cells big enough for their numbers up to 30 classes, then just for a label line each.
    side = float(np.clip(2.5 + 0.42 * k, 5.0, 15.0) if k <= CELL_NUMBERS_MAX else min(12.0 + 0.08 * (k - 30), 22.0))
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("share of the true class's videos")
    if k <= TICK_LABELS_MAX:
        font = 10 if k <= 12 else 8 if k <= 60 else 6
        ticks = np.arange(k)
        ax.set_xticks(ticks, [_short(n) for n in names], rotation=60, ha="right", rotation_mode="anchor",
                      fontsize=font)
        ax.set_yticks(ticks, [_short(n) for n in names], fontsize=font)
    else:
        step = int(np.ceil(k / 40))
        ticks = np.arange(0, k, step)
        ax.set_xticks(ticks, [str(t) for t in ticks], rotation=90, fontsize=7)
        ax.set_yticks(ticks, [str(t) for t in ticks], fontsize=7)
    if k <= CELL_NUMBERS_MAX:
        font = 11 if k <= 10 else 9 if k <= 20 else 7
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=font,
                            color="white" if shares[i, j] > 0.55 else "black")
    ax.set_xlabel("predicted class" + ("" if k <= TICK_LABELS_MAX else " (id; names in labels.txt)"))
    ax.set_ylabel("true class" + ("" if k <= TICK_LABELS_MAX else " (id)"))
    heading = title or "Confusion matrix"
    if top1 is not None:
        heading += f": top-1 {top1:.1%} ({int(matrix.sum())} videos)"
    ax.set_title(heading + ("" if k <= CELL_NUMBERS_MAX else "\n(colour: row share)"), fontsize=12 if k <= 30 else 15)
    return fig


def decode_png(data):
    """uint8 [H, W, 4|3] of PNG bytes (via TensorFlow, which the trainers already use)."""
    return tf.io.decode_png(data, channels=3).numpy()


# ---------------------------------------------------------------- training report


def epoch_summary(history):
    """Per-epoch figures from train_history.jsonl records.

    Returns a list of dicts: epoch, steps, loss (mean), accuracy (mean), learning_rate
    (at the epoch's last step) and val_accuracy when measured. A resumed run's repeated
    steps count once per record, as written.
    """
    epochs = {}
    last_step = {}
    for record in history:
        if "loss" in record:
            e = epochs.setdefault(int(record["epoch"]), {"loss": [], "accuracy": [], "lr": []})
            e["loss"].append(record["loss"])
            e["accuracy"].append(record["accuracy"])
            e["lr"].append(record["learning_rate"])
            last_step[int(record["step"])] = int(record["epoch"])
        elif "val_accuracy" in record:
            epoch = last_step.get(int(record["step"]))
            if epoch in epochs:
                epochs[epoch]["val_accuracy"] = record["val_accuracy"]
    out = []
    for epoch in sorted(epochs):
        e = epochs[epoch]
        row = {"epoch": epoch, "steps": len(e["loss"]), "loss": float(np.mean(e["loss"])),
               "accuracy": float(np.mean(e["accuracy"])), "learning_rate": float(e["lr"][-1])}
        if "val_accuracy" in e:
            row["val_accuracy"] = float(e["val_accuracy"])
        out.append(row)
    return out


def _read_history(model_dir):
    path = os.path.join(model_dir, "logs", "train_history.jsonl")
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # A line cut by a kill; the rest of the history stands.
    return records


def _step_seconds(history, batch_size):
    """Seconds per epoch from the per-step clips/s (step time = batch / clips_per_s)."""
    seconds = {}
    for r in history:
        if "loss" in r and r.get("clips_per_s"):
            seconds[int(r["epoch"])] = seconds.get(int(r["epoch"]), 0.0) + batch_size / r["clips_per_s"]
    return seconds


def _curve(path, title, ylabel, series, xlabel="epoch"):
    """One line plot: series = [(label, x, y, style dict)]."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, x, y, style in series:
        ax.plot(x, y, label=label, **style)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return _png(fig, path)


def training_curves(history, steps_per_epoch, out_dir):
    """loss.png, accuracy.png, learning_rate.png under `out_dir`; returns {name: path}.

    x axis: epochs (a step s sits at s / steps_per_epoch). Faint lines: every step; bold
    markers: the epoch means (loss, training accuracy) and the validation top-1.
    """
    os.makedirs(out_dir, exist_ok=True)
    steps = [r for r in history if "loss" in r]
    summary = epoch_summary(history)
    if not steps:
        return {}
    x = np.array([r["step"] for r in steps], np.float64) / max(steps_per_epoch, 1)
    ex = [row["epoch"] for row in summary]
    paths = {name: os.path.join(out_dir, f"{name}.png") for name in ("loss", "accuracy", "learning_rate")}
    _curve(paths["loss"], "Training loss", "cross-entropy", [
        ("per step", x, [r["loss"] for r in steps], {"color": "tab:blue", "alpha": 0.3, "linewidth": 0.8}),
        ("epoch mean", ex, [row["loss"] for row in summary], {"color": "tab:blue", "marker": "o"})])
    acc = [("training (step)", x, [r["accuracy"] for r in steps], {"color": "tab:orange", "alpha": 0.25,
                                                                  "linewidth": 0.8}),
           ("training (epoch mean)", ex, [row["accuracy"] for row in summary], {"color": "tab:orange", "marker": "o"})]
    val = [(row["epoch"], row["val_accuracy"]) for row in summary if "val_accuracy" in row]
    if val:
        acc.append(("validation top-1", [v[0] for v in val], [v[1] for v in val], {"color": "tab:green", "marker": "s"}))
    _curve(paths["accuracy"], "Accuracy", "accuracy", acc)
    _curve(paths["learning_rate"], "Learning rate", "learning rate",
           [("per step", x, [r["learning_rate"] for r in steps], {"color": "tab:purple"})])
    return paths


def write_training_report(model_dir, config=None):
    """Writes model_dir/metrics.json (per-epoch figures), report/*.png and report.md.

    The report shows the run's resolved settings, the three curves, and when
    model_dir/eval/metrics.json exists (tfvideo-evaluate) top-1, the confusion matrix
    picture, per-class accuracy and the top confusions. Returns the report's path.
    """
    if config is None:
        with open(os.path.join(model_dir, "config.json")) as f:
            config = json.load(f)
    train = _experiment.TrainConfig.from_dict(config.get("train") or {})
    history = _read_history(model_dir)
    summary = epoch_summary(history)
    batch = int(train.batch_size or 1)
    seconds = _step_seconds(history, batch)
    for row in summary:
        row["seconds"] = round(seconds.get(row["epoch"], 0.0), 3)
    steps_per_epoch = max((row["steps"] for row in summary), default=1)
    with open(os.path.join(model_dir, METRICS_FILE), "w") as f:
        json.dump({"epochs": summary, "final": summary[-1] if summary else {}}, f, indent=2)
    curves = training_curves(history, steps_per_epoch, os.path.join(model_dir, REPORT_DIR))
    lines = [f"# Training report: {config.get('model')}", ""]
    pre = (config.get("clip") or {}).get("preprocess") or config.get("preprocess", {})
    lines += ["| setting | value |", "|---|---|"]
    settings = [("model", config.get("model")), ("classes", config.get("num_classes")),
                ("recipe", f"{train.recipe}" + (f" ({train.recipe_basis})" if train.recipe_basis else "")),
                ("optimizer", f"{train.optimizer.name}, lr {train.optimizer.learning_rate:.4g}, {train.schedule.name}"
                 f", warm-up {train.schedule.warmup_epochs} epochs"),
                ("batch size", train.batch_size), ("input", f"crop {pre.get('crop_size', 224)} of frames resized "
                                                                   f"to {pre.get('resize_short', 256)} (short side), "
                                                                   f"{pre.get('train_crop', 'multi_scale')} in training"),
                ("horizontal flip", ("on" if pre.get("flip", True) else "off") + (
                    f", flip label map {pre['flip_label_map']} ({train.flip_label_map_source or 'flag'})"
                    if pre.get("flip_label_map") else ""))]
    lines += [f"| {k} | {v} |" for k, v in settings if v is not None]
    lines += ["", "## Training", ""]
    if summary:
        lines += ["| epoch | loss | accuracy | val top-1 | learning rate | seconds |", "|---|---|---|---|---|---|"]
        for row in summary:
            val = f"{row['val_accuracy']:.3f}" if "val_accuracy" in row else "-"
            lines.append(f"| {row['epoch']} | {row['loss']:.4f} | {row['accuracy']:.3f} | {val} | "
                         f"{row['learning_rate']:.3g} | {row['seconds']:.1f} |")
        lines.append("")
        for name, title in (("loss", "Loss"), ("accuracy", "Accuracy"), ("learning_rate", "Learning rate")):
            if name in curves:
                lines.append(f"![{title}]({REPORT_DIR}/{name}.png)")
        lines.append("")
    else:
        lines += ["No training steps recorded yet.", ""]
    eval_metrics = os.path.join(model_dir, "eval", METRICS_FILE)
    if os.path.exists(eval_metrics):
        with open(eval_metrics) as f:
            metrics = json.load(f)
    if os.path.exists(eval_metrics) and "mean_average_precision" in metrics:  # A multi-label run.
        lines += ["## Evaluation", "", f"mAP {metrics['mean_average_precision']:.4f}, top-1 (among the labels) "
                  f"{metrics['top1']:.4f} on {metrics['num_videos']} videos", ""]
    elif os.path.exists(eval_metrics):
        lines += ["## Evaluation", "",
                  f"top-1 {metrics['top1']:.4f}, top-5 {metrics['top5']:.4f}, mean class accuracy "
                  f"{metrics['mean_class_accuracy']:.4f} on {metrics['num_videos']} videos "
                  f"({metrics.get('num_clips', 1)} clips x {metrics.get('num_crops', 1)} crops"
                  + (f", averaged as {'probabilities' if metrics['average_clips'] == 'prob' else 'logits'}: "
                     f"average_clips={metrics['average_clips']}" if "average_clips" in metrics else "") + ")", ""]
        if os.path.exists(os.path.join(model_dir, "eval", "confusion_matrix.png")):
            lines += ["![Confusion matrix](eval/confusion_matrix.png)", ""]
        lines += ["```"] + evaluation_text(metrics, config.get("labels")) + ["```", ""]
    path = os.path.join(model_dir, REPORT_FILE)
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path
