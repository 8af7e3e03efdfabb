"""Per-chunk features from a trained recognizer, the inputs of online action detection.

A video of N frames is cut into ceil(N / chunk_size) chunks of `chunk_size` consecutive
frames (6 by default, as in TRN/OadTR-style online detection); each chunk is represented by
`frames_per_chunk` frames at the centres of equal sub-intervals, passed through the backbone
and the global pooling that feed the classifier, and averaged: one [D] vector per chunk.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from tfvideo import data as tfv_data


def feature_extractor(model):
    """A function frames float32 [N, S, S, 3] -> pooled backbone features [N, D].

    Uses the model's own `extract_features` when it has one, else its `backbone` and `pool`
    (the 2D recognizers' feature path before dropout and the classifier).
    """
    if hasattr(model, "extract_features"):
        return model.extract_features
    if hasattr(model, "backbone") and hasattr(model, "pool"):
        return tf.function(lambda frames: model.pool(model.backbone(frames, training=False)))
    raise ValueError(f"{type(model).__name__} exposes no backbone/pool or extract_features: cannot extract features.")


def chunk_frame_indices(num_frames, chunk_size=6, frames_per_chunk=1):
    """int64 [num_chunks, frames_per_chunk]: centre frames of equal parts of each chunk.

    The last chunk may be short; its indices are clamped to the last frame.
    """
    if num_frames < 1 or chunk_size < 1 or frames_per_chunk < 1:
        raise ValueError(f"chunk_frame_indices: num_frames={num_frames}, chunk_size={chunk_size}, "
                         f"frames_per_chunk={frames_per_chunk} must all be >= 1.")
    num_chunks = math.ceil(num_frames / chunk_size)
    starts = np.arange(num_chunks) * chunk_size
    offsets = np.floor((np.arange(frames_per_chunk) + 0.5) * chunk_size / frames_per_chunk).astype(np.int64)
    return np.minimum(starts[:, None] + offsets, num_frames - 1).astype(np.int64)


def chunk_features(extract, frames, preprocess, chunk_size=6, frames_per_chunk=1, chunks_per_batch=16):
    """float32 [num_chunks, D] for uint8 frames [N, H, W, 3] of one video."""
    frames = np.asarray(frames)
    indices = chunk_frame_indices(len(frames), chunk_size, frames_per_chunk)
    out = []
    for lo in range(0, len(indices), chunks_per_batch):
        part = indices[lo : lo + chunks_per_batch]  # [C, F]
        clips = tfv_data.preprocess_eval(tf.constant(frames[part]), preprocess)  # [C, F, S, S, 3]
        flat = tf.reshape(clips, tf.concat([[-1], tf.shape(clips)[2:]], 0))
        feats = keras.ops.convert_to_numpy(extract(flat))
        out.append(feats.reshape(len(part), frames_per_chunk, -1).mean(1))
    return np.concatenate(out).astype(np.float32)
