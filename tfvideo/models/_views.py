"""Multi-view testing shared by the recognizers: per-view scores averaged."""

from keras import ops


def check_clip(model_name, video, frames, detail=""):
    """Raises unless `video` is `[B, T, H, W, C]` or `[B, V, T, H, W, C]` with `frames` frames."""
    if len(video.shape) not in (5, 6):
        raise ValueError(f"{model_name}: input must be [B, T, H, W, C] or [B, V, T, H, W, C], got {video.shape}.")
    if video.shape[-4] is not None and video.shape[-4] != frames:
        raise ValueError(f"{model_name}: input {video.shape} must have {frames} frames{detail}.")


def flatten_views(video):
    """`[B, V, T, H, W, C]` -> `[B * V, T, H, W, C]`; 5D inputs unchanged."""
    return ops.reshape(video, (-1,) + tuple(ops.shape(video)[2:])) if len(video.shape) == 6 else video


def average_views(scores, video):
    """`[B * V, K]` -> `[B, K]` averaged over the views of a 6D `video`; else unchanged."""
    if len(video.shape) != 6:
        return scores
    return ops.mean(ops.reshape(scores, (-1, ops.shape(video)[1], scores.shape[-1])), axis=1)
