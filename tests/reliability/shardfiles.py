"""Tiny TFRecord shard sets for the data reliability tests, and running a binary as a user does."""

import os
import subprocess
import sys

import tensorflow as tf
from framecode import frame_code_frames

from tfvideo import data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def clip_record(index, num_frames=8, size=32):
    """A labelled SequenceExample (label index % 2, media_id v<index>) of frame-coded JPEGs."""
    jpegs = [tf.io.encode_jpeg(f, quality=90).numpy() for f in frame_code_frames(num_frames, size, size)]
    return data.make_sequence_example(jpegs, index % 2, media_id=f"v{index}").SerializeToString()


def write_shard_set(directory, name, num_shards, records):
    """Writes `records` round-robin into `<directory>/<name>-NNNNN-of-MMMMM.tfrecord`; returns the paths."""
    paths = [os.path.join(directory, f"{name}-{i:05d}-of-{num_shards:05d}.tfrecord") for i in range(num_shards)]
    for i, path in enumerate(paths):
        with tf.io.TFRecordWriter(path) as writer:
            for record in records[i::num_shards]:
                writer.write(record)
    return paths


def run_binary(module, args, timeout=300):
    """Runs `python -m trainers.<module>` with this tree first on the path: CompletedProcess (text)."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), CUDA_VISIBLE_DEVICES="",
               TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")
    env.pop("TF_CONFIG", None)
    return subprocess.run([sys.executable, "-m", f"trainers.{module}", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


# A 4-segment 32x32 TSM-tiny: a step takes tens of milliseconds on a CPU.
TINY_TRAIN = ["--model=tsm_tiny", "--num_segments=4", "--crop_size=32", "--resize_short=32", "--batch_size=4",
              "--dropout=0", "--verbose=0", "--learning_rate=0.01", "--num_classes=2"]
