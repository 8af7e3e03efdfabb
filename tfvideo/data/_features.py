"""Chunk-feature sources for online action detection.

Two storage forms of the same content, per video ("session"):

* NumPy folders (the layout of the TRN / OadTR reference data): `{features_dir}/{session}.npy`
  float [T, D_i] for each modality folder (e.g. RGB and flow, concatenated on load along
  the feature axis), `{targets_dir}/{session}.npy` float [T, C+1] one-hot targets (column 0
  background, optionally an ambiguous column), and split lists of session names.
* SequenceExample: context `clip/media_id`, `segment/start/index`, `segment/end/index`
  (inclusive chunk indices) and `segment/label/index` (action class c in [0, C), target
  column c + 1), feature list `feature/floats` of [D] floats per chunk.

`feature_window_dataset` turns either into tf.data training windows of `history` chunks.
"""

import os

import numpy as np
import tensorflow as tf

from tfvideo.api._export import export_constant, tf_export
from tfvideo.data import _tfrecord

CHUNK_FEATURES_KEY = export_constant("tfvideo.data.CHUNK_FEATURES_KEY", "feature/floats")
SEGMENT_START_KEY = export_constant("tfvideo.data.SEGMENT_START_KEY", "segment/start/index")
SEGMENT_END_KEY = export_constant("tfvideo.data.SEGMENT_END_KEY", "segment/end/index")
SEGMENT_LABEL_KEY = export_constant("tfvideo.data.SEGMENT_LABEL_KEY", "segment/label/index")
_MEDIA_ID_KEY = "clip/media_id"


@tf_export("tfvideo.data.read_session_list")
def read_session_list(path):
    """Session names, one per line (blank lines and `#` comments skipped)."""
    with open(path) as f:
        names = [line.split("#", 1)[0].strip() for line in f]
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"Session list {path} names no sessions.")
    return names


def _load_npy(path, what):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} file {path} does not exist.")
    array = np.load(path)
    if array.ndim != 2:
        raise ValueError(f"{what} file {path} must hold a [T, D] array, got shape {array.shape}.")
    return array.astype(np.float32)


@tf_export("tfvideo.data.load_chunk_features")
def load_chunk_features(session, features_dirs, targets_dir=None):
    """Features [T, sum D_i] of one session (modalities concatenated) and targets [T, K] or None."""
    if isinstance(features_dirs, str):
        features_dirs = [features_dirs]
    parts = [_load_npy(os.path.join(d, f"{session}.npy"), "features") for d in features_dirs]
    lengths = {p.shape[0] for p in parts}
    if len(lengths) != 1:
        shapes = ", ".join(f"{d}/{session}.npy {p.shape}" for d, p in zip(features_dirs, parts))
        raise ValueError(f"Feature folders disagree on the number of chunks of {session!r}: {shapes}.")
    features = np.concatenate(parts, axis=1)
    if targets_dir is None:
        return features, None
    path = os.path.join(targets_dir, f"{session}.npy")
    return match_chunk_counts(features, _load_npy(path, "targets"), path, session)


def match_chunk_counts(features, targets, path, session):
    """`(features, targets)` cut to their common length when they differ by one chunk
    (reference features sometimes end a chunk early); ValueError naming `path` otherwise."""
    if targets.shape[0] != features.shape[0]:
        if abs(targets.shape[0] - features.shape[0]) > 1:
            raise ValueError(f"targets {path} has {targets.shape[0]} chunks but the features of {session!r} have "
                             f"{features.shape[0]}.")
        n = min(targets.shape[0], features.shape[0])
        features, targets = features[:n], targets[:n]
    return features, targets


@tf_export("tfvideo.data.targets_from_segments")
def targets_from_segments(num_chunks, segments, num_columns):
    """One-hot targets [num_chunks, num_columns] from (start, end inclusive, class) segments.

    Action class c fills column c + 1; chunks outside every segment are background (column 0).
    """
    targets = np.zeros((num_chunks, num_columns), np.float32)
    for start, end, label in segments:
        if not 0 <= label < num_columns - 1:
            raise ValueError(f"segment label {label} is outside the {num_columns - 1} action classes.")
        targets[max(start, 0) : min(end, num_chunks - 1) + 1, label + 1] = 1.0
    targets[targets[:, 1:].sum(axis=1) == 0, 0] = 1.0
    return targets


@tf_export("tfvideo.data.make_chunk_feature_example")
def make_chunk_feature_example(features, segments=(), media_id=""):
    """SequenceExample of one video's chunk features [T, D] and its action segments."""
    ex = tf.train.SequenceExample()
    ctx = ex.context.feature
    ctx[_MEDIA_ID_KEY].bytes_list.value.append(media_id.encode())
    for key, column in ((SEGMENT_START_KEY, 0), (SEGMENT_END_KEY, 1), (SEGMENT_LABEL_KEY, 2)):
        ctx[key].int64_list.value.extend(int(s[column]) for s in segments)
    feature_list = ex.feature_lists.feature_list[CHUNK_FEATURES_KEY]
    for row in np.asarray(features, np.float32):
        feature_list.feature.add().float_list.value.extend(row.tolist())
    return ex


@tf_export("tfvideo.data.parse_chunk_feature_example")
def parse_chunk_feature_example(serialized, feature_dim, num_columns):
    """Parses `make_chunk_feature_example` output: {"features" [T, D], "targets" [T, K], "media_id"}."""
    context, sequences = tf.io.parse_single_sequence_example(
        serialized,
        {
            _MEDIA_ID_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
            SEGMENT_START_KEY: tf.io.VarLenFeature(tf.int64),
            SEGMENT_END_KEY: tf.io.VarLenFeature(tf.int64),
            SEGMENT_LABEL_KEY: tf.io.VarLenFeature(tf.int64),
        },
        {CHUNK_FEATURES_KEY: tf.io.FixedLenSequenceFeature([feature_dim], tf.float32)},
    )
    features = sequences[CHUNK_FEATURES_KEY]
    starts, ends, labels = (tf.sparse.to_dense(context[k]) for k in (SEGMENT_START_KEY, SEGMENT_END_KEY,
                                                                      SEGMENT_LABEL_KEY))
    t = tf.range(tf.shape(features, out_type=tf.int64)[0])
    # inside[s, t]: chunk t lies in segment s.
    inside = tf.logical_and(t[None, :] >= starts[:, None], t[None, :] <= ends[:, None])
    columns = tf.one_hot(labels + 1, num_columns)  # [S, K]
    actions = tf.minimum(tf.einsum("st,sk->tk", tf.cast(inside, tf.float32), columns), 1.0)
    background = tf.cast(tf.reduce_sum(actions, axis=1, keepdims=True) == 0, tf.float32)
    targets = tf.concat([background, actions[:, 1:]], axis=1)
    return {"features": features, "targets": targets, "media_id": context[_MEDIA_ID_KEY]}


def anticipation_targets(targets, steps):
    """[T, K] -> [T, steps, K]: row t holds the targets of chunks t+1 .. t+steps (zeros past the end)."""
    t = tf.shape(targets)[0]
    padded = tf.concat([targets, tf.zeros([steps, tf.shape(targets)[1]], targets.dtype)], axis=0)
    return tf.stack([padded[s + 1 : s + 1 + t] for s in range(steps)], axis=1)


def _windows(features, targets, history, stride, anticipation_steps, context=0):
    """One video -> dataset of (features [C + H, D], {"scores": [C + H, K], ("anticipation": [C + H, S, K])}).

    With `context` C > 0 each window also carries the C chunks before it (zero before the
    video start) with zero target rows, and chunks with less than C chunks of real history
    before them get zero target rows too: only chunks with a full real history are scored.
    """
    labels = {"scores": targets}
    if anticipation_steps:
        labels["anticipation"] = anticipation_targets(targets, anticipation_steps)
    count = (tf.shape(targets)[0] + stride - 1) // stride
    if context:
        real = tf.cast(tf.range(tf.shape(targets)[0]) >= context, targets.dtype)
        labels = {k: v * tf.reshape(real, [-1] + [1] * (len(v.shape) - 1)) for k, v in labels.items()}

        def pad(x):
            return tf.concat([tf.zeros(tf.concat([[context], tf.shape(x)[1:]], 0), x.dtype), x], axis=0)

        features, labels = pad(features), {k: pad(v) for k, v in labels.items()}

    def frame(x):
        return tf.signal.frame(x, history + context, stride, pad_end=True, axis=0)[:count]

    scored = tf.concat([tf.zeros([context]), tf.ones([history])], 0)  # a window's context is scored elsewhere

    def frame_labels(y):
        return frame(y) * tf.reshape(tf.cast(scored, y.dtype), [1, -1] + [1] * (len(y.shape) - 1))

    return tf.data.Dataset.from_tensor_slices((frame(features), {k: frame_labels(v) for k, v in labels.items()}))


@tf_export("tfvideo.data.feature_window_dataset")
def feature_window_dataset(source, history, batch_size, stride=None, anticipation_steps=0, training=True,
                           seed=0, feature_dim=None, num_columns=None, context=0):
    """Training windows of `history` chunks over every video of `source`.

    Each window is an independent stream starting at its first chunk (zero history before);
    the last window of a video is zero padded, and zero target rows add no loss.

    Args:
      source: a list of (features [T, D], targets [T, K]) pairs (e.g. from
        `load_chunk_features`), or a TFRecord file pattern of `make_chunk_feature_example`
        records (then `feature_dim` and `num_columns` are required).
      stride: chunks between window starts (default `history`: non-overlapping).
      anticipation_steps: S > 0 adds "anticipation" targets [H, S, K] (chunks t+1 .. t+S).
      context: C > 0 prepends to each window the C chunks of real history before it
        (windows become C + H long; those C chunks, and every chunk of a video with fewer
        than C real chunks before it, have zero targets): what windowed detectors trained
        as their authors need (OadTR: `model.training_context`).
    Returns:
      tf.data of (features [B, C + H, D], {"scores": [B, C + H, K], ...}) batches.
    """
    stride = stride or history
    for name, value, low in (("history", history, 1), ("stride", stride, 1), ("context", context, 0)):
        if int(value) != value or value < low:
            raise ValueError(f"feature_window_dataset: {name}={value!r} must be an integer >= {low}.")
    context = int(context)
    if isinstance(source, str):
        if feature_dim is None or num_columns is None:
            raise ValueError("feature_window_dataset: a TFRecord source needs feature_dim and num_columns.")
        files = _tfrecord.match_shards(source)
        if not files:
            raise FileNotFoundError(f"feature_window_dataset: no file matches {source}.")
        videos = _tfrecord.shard_records(sorted(files)).map(
            lambda s: parse_chunk_feature_example(s, feature_dim, num_columns))
        videos = videos.map(lambda v: (v["features"], v["targets"]))
    else:
        source = list(source)
        if not source:
            raise ValueError("feature_window_dataset: the source holds no videos.")
        d, k = source[0][0].shape[1], source[0][1].shape[1]

        def generate():
            yield from source

        videos = tf.data.Dataset.from_generator(
            generate, output_signature=(tf.TensorSpec([None, d], tf.float32), tf.TensorSpec([None, k], tf.float32)))
        # tf.signal.frame(pad_end=True) makes ceil(T / stride) windows; telling Keras the count
        # lets fit() run every epoch over a finite dataset.
        count = sum(-(-len(f) // stride) for f, _ in source)
    windows = videos.flat_map(lambda f, y: _windows(f, y, history, stride, anticipation_steps, context))
    if not isinstance(source, str):
        windows = windows.apply(tf.data.experimental.assert_cardinality(count))
    if training:
        windows = windows.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    return windows.batch(batch_size).prefetch(tf.data.AUTOTUNE)
