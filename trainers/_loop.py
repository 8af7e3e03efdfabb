"""The distributed training loop: checkpoints, resumption, TensorBoard and progress.

Resumption (BackupAndRestore-style): model, optimizer (its step counter included) are saved
with `tf.train.CheckpointManager` under model_dir/checkpoints every N steps and at each epoch
end. A restarted run restores the latest one and continues at the saved step; the rest of an
interrupted epoch runs on a fresh data iterator (same epoch seed), so the step count matches an
uninterrupted run. Non-chief workers write their copies under model_dir/backup/.
"""

import json
import os
import shutil
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfvideo import _experiment
from trainers import _strategy, _task

HISTORY_FILE = "train_history.jsonl"


def _write_dir(model_dir, sub):
    """Chief writes model_dir/sub; other workers a private folder under backup/ (removed at the end)."""
    if _strategy.is_chief():
        return os.path.join(model_dir, sub)
    task_type, index = _strategy.task_role()
    return os.path.join(model_dir, "backup", f"{task_type}-{index}", sub)


def _is_terminal(stream):
    """Whether `stream` is an interactive terminal (a progress bar can redraw itself there)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # No isatty, or closed.
        return False


def _sample_clip_images(video, max_frames=4):
    """First clip of a normalized batch as uint8-range images [T, S, S, 3] for TensorBoard."""
    clip = video[0, 0, :max_frames]
    lo = tf.reduce_min(clip)
    hi = tf.reduce_max(clip)
    return (clip - lo) / tf.maximum(hi - lo, 1e-6)


class Checkpoints:
    """A run's resumable state: model + optimizer (its step counter included) + `extra` trackables.

    Saved with `tf.train.CheckpointManager` as model_dir/checkpoints/ckpt-<step> (non-chief
    workers: under backup/), the newest `max_to_keep` (`TrainConfig.keep_checkpoints`) kept. Recognition (`Trainer`) and online detection training
    (trainers/_online.py) both checkpoint and resume through this class.
    """

    def __init__(self, model, optimizer, model_dir, max_to_keep, **extra):
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, **extra)
        self.directory = _write_dir(model_dir, _experiment.CHECKPOINT_DIR)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=max_to_keep)

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def restore(self):
        """Restores the newest readable checkpoint; returns its path (None when there is none).

        A checkpoint whose files cannot be read (truncated or corrupt: a copy cut short, a
        disk that failed) is named in a warning line and the one before it is tried, as Keras
        BackupAndRestore and Orbax fall back; its files stay (the resumed run overwrites
        them when it saves that step again). ModelDirError when none is readable.
        """
        candidates = list(reversed(self.manager.checkpoints))  # Newest first.
        if self.manager.latest_checkpoint and self.manager.latest_checkpoint not in candidates:
            candidates.insert(0, self.manager.latest_checkpoint)
        unreadable = []
        for path in candidates:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (IndexError, ValueError, OSError, tf.errors.OpError) as e:
                # Variables restored before the failure are all overwritten by the next restore.
                unreadable.append(f"{_unreadable_file(path)}: {_one_line(e)}")
                continue
            for bad in unreadable:
                logging.warning("Unreadable checkpoint %s; resuming from %s, the newest readable one.", bad, path)
            return path
        if unreadable:
            raise _experiment.ModelDirError(
                f"no readable checkpoint in {self.directory}: {'; '.join(unreadable)}. Move the checkpoints away "
                "to train from the start.")
        return None

    def save(self, step):
        """Writes ckpt-<step>. On a write error (full disk, permissions) the partial files are
        removed and ModelDirError names the directory; the earlier checkpoints stay loadable."""
        try:
            return self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:
            recorded = tf.train.latest_checkpoint(self.directory)  # What a restart restores (the state file).
            if not (recorded and recorded.endswith(f"ckpt-{step}")):
                self._remove_partial(step)
            reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
            kept = f"the last complete checkpoint {recorded} is intact" if recorded else "no earlier checkpoint"
            raise _experiment.ModelDirError(
                f"cannot write checkpoint {os.path.join(self.directory, f'ckpt-{step}')}: "
                f"{reason.strip().splitlines()[0]}; {kept}.") from e

    def _remove_partial(self, step):
        for path in tf.io.gfile.glob(os.path.join(self.directory, f"ckpt-{step}[._]*")):
            try:
                if tf.io.gfile.isdir(path):
                    tf.io.gfile.rmtree(path)
                else:
                    tf.io.gfile.remove(path)
            except (OSError, tf.errors.OpError):
                logging.warning("Could not remove the partial checkpoint file %s", path)


def _unreadable_file(prefix):
    """The file of checkpoint `prefix` that fails to read: its index when that does not load, else its data."""
    try:
        tf.train.load_checkpoint(prefix)
    except (ValueError, OSError, tf.errors.OpError):
        return f"{prefix}.index"
    data = tf.io.gfile.glob(f"{prefix}.data-*")
    return data[0] if len(data) == 1 else f"{prefix} (data files)"


def _one_line(error):
    text = (getattr(error, "message", None) or str(error)).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def save_model(model, model_dir):
    """model_dir/model.keras; ModelDirError naming it when it cannot be written."""
    path = os.path.join(model_dir, _experiment.MODEL_FILE)
    try:
        model.save(path)
    except OSError as e:
        raise _experiment.ModelDirError(f"cannot write {path}: {e.strerror or e}; the checkpoints are intact.") from e
    return path


class Trainer:
    """Trains `config`'s model on `config.train.train_data` under `strategy`."""

    def __init__(self, config, model_dir, strategy):
        self.config = config
        self.model_dir = model_dir
        self.strategy = strategy
        t = config.train
        self.global_batch = int(t.batch_size)
        if t.jit_compile and t.sync_batchnorm:
            raise ValueError("--jit_compile cannot be combined with --sync_batchnorm (a cross-replica sum inside XLA).")
        replicas = strategy.num_replicas_in_sync
        if self.global_batch % replicas:
            raise ValueError(f"--batch_size={self.global_batch} is not divisible by the {replicas} replicas.")
        if t.steps_per_epoch:
            self.steps_per_epoch = int(t.steps_per_epoch)
        else:
            n = _task.count_examples(t.train_data, config.labels or None, t.on_error)
            self.steps_per_epoch = max(1, n // self.global_batch)
        if t.train_steps:
            self.total_steps = int(t.train_steps)
        else:
            self.total_steps = int(t.epochs or 1) * self.steps_per_epoch
        self.num_epochs = -(-self.total_steps // self.steps_per_epoch)
        with strategy.scope():
            self.model = _task.build_model(config)
            _task.init_from_checkpoint(self.model, t)  # A resumed run's checkpoint overrides it in fit().
            self.optimizer = _task.build_optimizer(t, self.total_steps, self.steps_per_epoch)
            self.optimizer.build(self.model.trainable_variables)
        self.checkpoints = Checkpoints(self.model, self.optimizer, model_dir, t.keep_checkpoints)
        self._train_step = self._make_train_step(bool(t.jit_compile))

    @property
    def step(self):
        return int(keras.ops.convert_to_numpy(self.optimizer.iterations))

    def restore(self):
        """Restores the latest checkpoint; returns the restored step (0 when none)."""
        latest = self.checkpoints.restore()
        if not latest:
            return 0
        step = self.step
        logging.info("Resumed from %s at step %d (epoch %d)", latest, step, step // self.steps_per_epoch + 1)
        return step

    def _make_train_step(self, jit_compile):
        model, optimizer, strategy, batch = self.model, self.optimizer, self.strategy, self.global_batch
        multi_label = bool(self.config.train.multi_label)
        scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

        # XLA compiles the forward/backward pass; the optimizer update (cross-replica
        # all-reduce) stays outside the compiled function.
        def forward_backward(video, label):
            with tf.GradientTape() as tape:
                logits = model(video, training=True)
                loss = tf.nn.compute_average_loss(_task.per_example_loss(label, logits, multi_label),
                                                  global_batch_size=batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                scaled_loss = optimizer.scale_loss(loss) if scaled else loss
            grads = tape.gradient(scaled_loss, model.trainable_variables)
            correct = tf.reduce_sum(_task.top1_hits(label, logits))
            return loss, grads, correct

        if jit_compile:
            forward_backward = tf.function(forward_backward, jit_compile=True)

        def replica_fn(video, label):
            loss, grads, correct = forward_backward(video, label)
            optimizer.apply(grads, model.trainable_variables)
            return loss, correct

        @tf.function
        def train_step(element):
            loss, correct = strategy.run(replica_fn, args=(element["video"], element["label"]))
            return (strategy.reduce("SUM", loss, axis=None),
                    strategy.reduce("SUM", correct, axis=None) / batch)

        return train_step

    def _train_dataset(self, epoch):
        t = self.config.train
        seed = int(t.seed) * 1000 + epoch
        ds = _task.dataset(self.config, t.train_data, True, self.global_batch, seed=seed, repeat=True,
                           drop_remainder=True)
        return self.strategy.experimental_distribute_dataset(ds)

    def evaluate(self, source, max_batches=None):
        """Top-1 accuracy of the current model on `source` (centre view)."""
        ds = _task.dataset(self.config, source, False, self.global_batch)
        correct = total = 0
        for i, element in enumerate(ds):
            if max_batches and i >= max_batches:
                break
            logits = self.model(element["video"], training=False)
            correct += int(np.sum(keras.ops.convert_to_numpy(_task.top1_hits(element["label"], logits))))
            total += int(element["label"].shape[0])
        return correct / max(total, 1)

    def fit(self, verbose=1):
        """Runs (or resumes) training to `total_steps`; saves model_dir/model.keras. Returns the last logs.

        verbose=1 draws a progress bar on a terminal; elsewhere (a log file, a pipe) it prints a plain
        line every `log_every_steps` steps and at the end of each epoch.
        """
        t = self.config.train
        chief = _strategy.is_chief()
        start = self.restore()
        log_dir = _write_dir(self.model_dir, "logs")
        os.makedirs(log_dir, exist_ok=True)
        writer = tf.summary.create_file_writer(os.path.join(log_dir, "train")) if chief else tf.summary.create_noop_writer()
        history_path = os.path.join(log_dir, HISTORY_FILE)
        every = int(t.checkpoint_every_steps or 0)
        log_every = max(1, int(t.log_every_steps))
        logs = {}
        step = start
        with writer.as_default(), open(history_path, "a") as history:
            if start:
                history.write(json.dumps({"event": "resume", "step": start}) + "\n")
            for epoch in range(start // self.steps_per_epoch, self.num_epochs):
                epoch_steps = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)
                first = step - epoch * self.steps_per_epoch
                if first >= epoch_steps:
                    continue
                if verbose and chief:
                    print(f"Epoch {epoch + 1}/{self.num_epochs}")
                # Not a terminal (a log file, a pipe): plain periodic lines, no bar redrawn with escape codes.
                plain = verbose == 1 and chief and not _is_terminal(sys.stdout)
                progbar = keras.utils.Progbar(epoch_steps, verbose=0 if plain or not chief else verbose)
                iterator = iter(self._train_dataset(epoch))
                tic = time.perf_counter()
                for i in range(first, epoch_steps):
                    element = next(iterator)
                    if step == start and chief:
                        local = self.strategy.experimental_local_results(element["video"])[0]
                        tf.summary.image("sample_clip", _sample_clip_images(local), step=step, max_outputs=4)
                    loss, acc = self._train_step(element)
                    step += 1
                    loss, acc = float(loss), float(acc)
                    if not np.isfinite(loss):
                        raise FloatingPointError(f"Training loss is {loss} at step {step}.")
                    now = time.perf_counter()
                    clips_per_s = self.global_batch / max(now - tic, 1e-9)
                    tic = now
                    lr = float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
                    logs = {"step": step, "epoch": epoch + 1, "loss": loss, "accuracy": acc, "learning_rate": lr,
                            "clips_per_s": clips_per_s}
                    history.write(json.dumps(logs) + "\n")
                    history.flush()
                    if step % log_every == 0 or i == epoch_steps - 1:
                        for key in ("loss", "accuracy", "learning_rate", "clips_per_s"):
                            tf.summary.scalar(key, logs[key], step=step)
                    progbar.update(i + 1, [("loss", loss), ("accuracy", acc)])
                    if plain and (step % log_every == 0 or i == epoch_steps - 1):
                        print(f"step {i + 1}/{epoch_steps} - loss: {loss:.4f} - accuracy: {acc:.4f} - "
                              f"{clips_per_s:.1f} clips/s", flush=True)
                    if every and step % every == 0 and i != epoch_steps - 1:
                        self.checkpoints.save(step)
                self.checkpoints.save(step)
                if t.eval_data:
                    logs["val_accuracy"] = self.evaluate(t.eval_data, t.eval_batches)
                    tf.summary.scalar("val_accuracy", logs["val_accuracy"], step=step)
                    history.write(json.dumps({"step": step, "val_accuracy": logs["val_accuracy"]}) + "\n")
                    if verbose and chief:
                        print(f"val_accuracy: {logs['val_accuracy']:.4f}")
        if chief:
            save_model(self.model, self.model_dir)
        else:
            task_type, index = _strategy.task_role()
            shutil.rmtree(os.path.join(self.model_dir, "backup", f"{task_type}-{index}"), ignore_errors=True)
        return logs
