"""Synthetic chunk-feature streams that only a detector with memory can label.

Each stream is background chunks with action instances in between. An instance's class is
visible only in its first chunk (its onset carries a class pattern); its later chunks all
carry one pattern shared by every class. A memoryless per-chunk classifier therefore knows
*that* an action is going on but not *which*, after the onset; a detector that keeps
history can carry the onset's class to the end of the instance.
"""

import numpy as np

from tfvideo.api._export import tf_export


@tf_export("tfvideo.online.make_onset_streams")
def make_onset_streams(num_streams, num_chunks=64, feature_dim=16, num_actions=5, action_length=(6, 12),
                       gap_length=(2, 8), noise=0.3, seed=0):
    """Streams where an action's class shows only at its onset.

    Returns:
      list of (features float32 [num_chunks, feature_dim], targets float32 one-hot
      [num_chunks, num_actions + 1]); column 0 is background.
    """
    if feature_dim < num_actions + 2:
        raise ValueError(f"feature_dim={feature_dim} must be >= num_actions + 2 = {num_actions + 2}.")
    rng = np.random.default_rng(seed)
    # Orthogonal patterns: background, the shared "action in progress", one onset per class.
    basis = np.linalg.qr(np.random.default_rng(1234).normal(size=(feature_dim, feature_dim)))[0].T * 2.0
    background, ongoing, onsets = basis[0], basis[1], basis[2 : 2 + num_actions]
    streams = []
    for _ in range(num_streams):
        labels = np.zeros(num_chunks, np.int64)
        features = np.tile(background, (num_chunks, 1))
        t = int(rng.integers(*gap_length))
        while t < num_chunks:
            c = int(rng.integers(num_actions))
            end = min(t + int(rng.integers(*action_length)), num_chunks)
            labels[t:end] = c + 1
            features[t] = onsets[c]
            features[t + 1 : end] = ongoing
            t = end + int(rng.integers(*gap_length))
        features = features + rng.normal(scale=noise, size=features.shape)
        streams.append((features.astype(np.float32), np.eye(num_actions + 1, dtype=np.float32)[labels]))
    return streams
