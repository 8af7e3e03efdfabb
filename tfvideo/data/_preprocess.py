"""Phase "preprocess": decoded uint8 clips -> normalized float32 network inputs.

Spatial transforms shared by training, evaluation and the exported model
(`PreprocessConfig`, `preprocess_train`, `preprocess_eval`), and the shared-state
preprocessing of every modality of one element (RGB, RGB difference, optical flow), so
that all streams of a clip get the same crop and flip. The pipelines' training crops run
on uint8 in OpenCV (`_train_spatial_uint8`: `preprocess_train`'s boxes and flips, several
times cheaper than its float32 TensorFlow ops); evaluation stays TensorFlow's, so it equals
the exported model's transform.
"""

import dataclasses
import numbers

import cv2
import numpy as np
import tensorflow as tf

from tfvideo.api._export import tf_export
from tfvideo.data import _transforms

_CROPS = {1: None, 3: _transforms.three_crop, 10: _transforms.ten_crop}
MODALITIES = ("rgb", "rgb_diff", "flow", "rgb+flow")


@tf_export("tfvideo.data.PreprocessConfig")
@dataclasses.dataclass
class PreprocessConfig:
    """Spatial preprocessing shared by training, evaluation and the exported model.

    Attributes:
      crop_size: side of the square network input.
      resize_short: shorter side before cropping (None keeps the decoded size).
      train_crop: "multi_scale" (TSN), "random_resized" or "center".
      flip: random horizontal flip in training.
      flip_label_map: class id -> mirrored class id, applied when a clip is flipped.
      color_jitter: brightness/contrast jitter strength (0 disables).
      num_crops: test-time crops per clip: 1 (centre), 3 or 10.
      mean, std: per-channel normalization of [0, 1] values.

    The data pipelines (`video_dataset`, `tfds_dataset`) make training crops on the
    decoded uint8 frames with OpenCV: the boxes and flips of `preprocess_train` for the
    same seeds, the crop resized bilinearly (not antialiased), RGB normalized by table
    look-up. Evaluation (`preprocess_eval`) is TensorFlow's, as in the exported model.
    """

    crop_size: int = 224
    resize_short: int = 256
    train_crop: str = "multi_scale"
    flip: bool = True
    flip_label_map: tuple = None
    color_jitter: float = 0.0
    num_crops: int = 1
    mean: tuple = _transforms.IMAGENET_MEAN
    std: tuple = _transforms.IMAGENET_STD

    def __post_init__(self):
        _check_number("crop_size", self.crop_size, 1, integer=True)
        if self.resize_short is not None:
            _check_number("resize_short", self.resize_short, 0, integer=True)  # 0 (or None): no resizing.
        _check_number("color_jitter", self.color_jitter, 0.0)
        for field in ("mean", "std"):
            values = tuple(getattr(self, field))
            if len(values) not in (2, 3):  # One value a channel: R, G, B, or optical flow's x, y.
                raise ValueError(f"PreprocessConfig.{field}={values} must have 3 values (R, G, B) or 2 (flow x, y).")
        if any(not v > 0 for v in self.std):
            raise ValueError(f"PreprocessConfig.std={tuple(self.std)} must be > 0.")
        if self.train_crop not in ("multi_scale", "random_resized", "center"):
            raise ValueError(f"PreprocessConfig.train_crop={self.train_crop!r} is not one of multi_scale, random_resized, center.")
        if self.num_crops not in _CROPS:
            raise ValueError(f"PreprocessConfig.num_crops={self.num_crops} must be 1, 3 or 10.")
        if self.flip_label_map is not None:
            self.flip_label_map = tuple(int(v) for v in self.flip_label_map)


def _train_spatial(video, seeds, config):
    """Resize + random crop + flip, clip-consistently: float32 [V, T, S, S, C] and the flip flag.

    The same `seeds` give the same box and flip for any input of the same frame size,
    so RGB and flow of one clip stay aligned.
    """
    if config.resize_short:
        video = _transforms.resize_short_side(video, config.resize_short)
    if config.train_crop == "multi_scale":
        video = _transforms.multi_scale_crop(video, config.crop_size, seeds[0])
    elif config.train_crop == "random_resized":
        video = _transforms.random_resized_crop(video, config.crop_size, seeds[0])
    else:
        video = tf.cast(_transforms.center_crop(video, config.crop_size), tf.float32)
    flipped = tf.constant(False)
    if config.flip:
        flipped = _transforms.flip_decision(seeds[1])
        video = tf.cond(flipped, lambda: tf.reverse(video, axis=[-2]), lambda: video)
    return video, flipped


def _train_box(h, w, seeds, config):
    """The training crop of `_train_spatial` for `h` x `w` frames: (resized h, w) and int32 (top, left, height, width)."""
    if config.resize_short:
        resized = _transforms.short_side_size(h, w, config.resize_short)
        h, w = resized[0], resized[1]
    size = config.crop_size
    if config.train_crop == "multi_scale":
        box = _transforms.multi_scale_box(h, w, seeds[0])
    elif config.train_crop == "random_resized":
        box = _transforms.random_resized_box(h, w, seeds[0])
    else:
        box = ((h - size) // 2, (w - size) // 2, tf.constant(size), tf.constant(size))
    return tf.stack([h, w]), tf.stack(box)


def _crop_resize_flip(video, resized, box, flip, lut, size):
    """NumPy/OpenCV pixel work of the training crop: uint8 [V, T, H, W, C] -> [V, T, S, S, C].

    Per frame: the short-side resize to `resized` (when the decoder has not done it;
    antialiased when shrinking), the `box` crop (a view), bilinear resize to `size`,
    the horizontal flip, and with a `lut` ([1, 256, C] float32 values of 0..255) the
    normalization as one table look-up. All on uint8 except the look-up's output.
    """
    (rh, rw), (top, left, ch, cw), size = (int(v) for v in resized), (int(v) for v in box), int(size)
    *lead, height, width, channels = video.shape
    if top < 0 or left < 0 or top + ch > rh or left + cw > rw:
        raise ValueError(f"training crop {ch}x{cw} at ({top}, {left}) does not fit {rh}x{rw} frames (crop_size "
                         f"{size} larger than the resized frames?)")
    frames = video.reshape(-1, height, width, channels)
    out = np.empty((len(frames), size, size, channels), np.float32 if lut.size else np.uint8)
    squeeze = channels == 1  # OpenCV takes (and gives) one channel as 2-D.
    work = np.empty((2, size, size) + (() if squeeze else (channels,)), np.uint8)
    for k, frame in enumerate(frames):
        if squeeze:
            frame = frame[..., 0]
        if (rh, rw) != (height, width):
            frame = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_AREA if rh < height else cv2.INTER_LINEAR)
        clip = frame[top : top + ch, left : left + cw]
        if (ch, cw) != (size, size):
            clip = cv2.resize(clip, (size, size), dst=work[0], interpolation=cv2.INTER_LINEAR)
        if flip:
            clip = cv2.flip(clip, 1, dst=work[1])
        target = out[k, ..., 0] if squeeze else out[k]
        if lut.size:
            cv2.LUT(clip, lut, dst=target)
        else:
            np.copyto(target, clip)
    return out.reshape(tuple(lead) + out.shape[1:])


def _normalize_table(config):
    """float32 [1, 256, C]: `normalize` of every uint8 value, per channel (the same float32 arithmetic)."""
    std, mean = np.asarray(config.std, np.float32), np.asarray(config.mean, np.float32)
    scale = np.float32(1.0) / (np.float32(255.0) * std)
    return (np.arange(256, dtype=np.float32)[:, None] * scale - mean / std)[None].astype(np.float32)


def _train_spatial_uint8(video, seeds, config, normalize=False):
    """`_train_spatial` of uint8 frames with OpenCV on uint8 (the decoded element's training path).

    The same box and flip as `_train_spatial` for the same seeds (computed by the same
    TensorFlow ops); the pixels differ only by interpolation: OpenCV's bilinear resize of
    the crop (not antialiased; a multi-scale crop shrinks by at most 1.14x), and the
    short-side resize, when the decoder has not already made it, antialiased when
    shrinking (`INTER_AREA`) as the frame-folder reader's. With `normalize`, returns
    `normalize(video, config.mean, config.std)` of the result (a table look-up, exact),
    else uint8. Several times cheaper than the float32 TensorFlow ops it replaces.
    """
    shape = tf.shape(video)
    resized, box = _train_box(shape[-3], shape[-2], seeds, config)
    flipped = _transforms.flip_decision(seeds[1]) if config.flip else tf.constant(False)
    lut = _normalize_table(config) if normalize else np.zeros([0], np.float32)
    out = tf.numpy_function(
        lambda v, r, b, f, t: _crop_resize_flip(v, r, b, f, t, config.crop_size),
        [video, resized, box, flipped, lut], tf.float32 if normalize else tf.uint8, stateful=False)
    size = config.crop_size
    # The static shape the TensorFlow ops kept (views, frames, channels): what the feature
    # layer checks the pipeline's clips against (a numpy_function's output has none).
    return tf.ensure_shape(out, [video.shape[0], video.shape[1], size, size, video.shape[-1]]), flipped


def _check_number(field, value, minimum, integer=False):
    """ValueError naming the PreprocessConfig field when `value` is not a number >= `minimum`."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not value >= minimum:
        what = "an integer" if integer else "a number"
        raise ValueError(f"PreprocessConfig.{field}={value!r} must be {what} >= {minimum}.")


@tf_export("tfvideo.data.preprocess_train")
def preprocess_train(video, label, seed, config):
    """uint8 [V, T, H, W, C] -> normalized float32 [V, T, S, S, C] with random crop/flip."""
    seeds = tf.random.split(seed, 3)
    video, flipped = _train_spatial(video, seeds, config)
    if config.flip and config.flip_label_map is not None:
        label = tf.where(flipped, tf.gather(tf.constant(config.flip_label_map, tf.int32), label), label)
    if config.color_jitter:
        video = _transforms.color_jitter(video, seeds[2], config.color_jitter, config.color_jitter)
    video = _transforms.normalize(video, config.mean, config.std)
    return tf.ensure_shape(video, [None, None, config.crop_size, config.crop_size, None]), label


def eval_spatial(video, config):
    """Resize + test views: float [V * num_crops, T, S, S, C] (views clip-major)."""
    if config.resize_short:
        video = _transforms.resize_short_side(video, config.resize_short)
    size = config.crop_size
    crop = _CROPS[config.num_crops]
    if crop is None:
        return tf.cast(_transforms.center_crop(video, size), tf.float32)
    crops = crop(video, size)  # [crops, V, T, S, S, C]
    return tf.reshape(tf.transpose(crops, [1, 0, 2, 3, 4, 5]), tf.concat([[-1], tf.shape(crops)[2:]], 0))


@tf_export("tfvideo.data.preprocess_eval")
def preprocess_eval(video, config):
    """uint8 [V, T, H, W, C] -> float32 [V * num_crops, T, S, S, C]: resize, crops, normalize."""
    video = _transforms.normalize(eval_spatial(video, config), config.mean, config.std)
    size = config.crop_size
    return tf.ensure_shape(video, [None, None, size, size, None])


# The flow presets' normalisation: MMAction2's TSN flow config (mean = std = 128 on 0..255 values).
FLOW_MEAN = (128 / 255, 128 / 255)
FLOW_STD = (128 / 255, 128 / 255)


def normalize_flow(flow, config, flipped=False):
    """Quantized flow 0..255 [..., 2] -> float32 network input; a mirrored clip reverses x.

    With two-value `config.mean` / `config.std` (the flow presets' `FLOW_MEAN` / `FLOW_STD`):
    `(v - 255 mean) / (255 std)`, and a mirrored clip's x is inverted first (255 - v), as
    MMAction2 does (`Flip` inverts flow-x, `ActionDataPreprocessor` normalises with
    mean = std = 128). With RGB (three-value) mean/std: flow / bound in [-1, 1]
    (`v / 127.5 - 1`), x negated when mirrored.
    """
    flow = tf.cast(flow, tf.float32)
    flipped = tf.convert_to_tensor(flipped)
    if len(config.mean) == 2:
        flow = tf.where(flipped, tf.concat([255.0 - flow[..., :1], flow[..., 1:]], -1), flow)
        return _transforms.normalize(flow, config.mean, config.std)
    sign = tf.where(flipped, tf.constant([-1.0, 1.0]), tf.constant([1.0, 1.0]))
    return (flow / 127.5 - 1.0) * sign


def _preprocess_modalities(element, seed, *, training, config, modality, snippet_length):
    """Shared-state preprocessing of every stream of one element (DMVR style)."""
    label = element["label"]
    size = config.crop_size
    out = {}
    normalized = False
    if training:
        # Decoded uint8 frames: crop, resize and flip on uint8 with OpenCV, and the RGB
        # normalization as a table look-up (the float32 TensorFlow ops cost ~3x the read
        # of a sparse clip). Same boxes and flips as `preprocess_train`.
        seeds = tf.random.split(seed, 3)
        flipped = tf.constant(False)
        if "frames" in element:
            normalized = modality in ("rgb", "rgb+flow") and not config.color_jitter and len(config.mean) == 3
            rgb, flipped = _train_spatial_uint8(element["frames"], seeds, config, normalize=normalized)
            if config.color_jitter:
                rgb = _transforms.color_jitter(rgb, seeds[2], config.color_jitter, config.color_jitter)
        if "flow" in element:
            flow, flipped = _train_spatial_uint8(element["flow"], seeds, config)
        if config.flip and config.flip_label_map is not None:
            label = tf.where(flipped, tf.gather(tf.constant(config.flip_label_map, tf.int32), label), label)
    else:
        flipped = tf.constant(False)
        if "frames" in element:
            rgb = eval_spatial(element["frames"], config)
        if "flow" in element:
            flow = eval_spatial(element["flow"], config)
    if modality in ("rgb", "rgb+flow"):
        out["video"] = rgb if normalized else _transforms.normalize(rgb, config.mean, config.std)
    elif modality == "rgb_diff":
        out["video"] = _transforms.rgb_difference(rgb, snippet_length) / 255.0
    if modality in ("flow", "rgb+flow"):
        out["flow" if modality == "rgb+flow" else "video"] = normalize_flow(flow, config, flipped)
    out = {key: tf.ensure_shape(value, [None, None, size, size, None]) for key, value in out.items()}
    out["label"] = label
    out["media_id"] = element["media_id"]
    return out


def check_modality(modality, preprocess):
    if modality not in MODALITIES:
        raise ValueError(f"modality={modality!r} must be one of {MODALITIES}.")
    if preprocess is False and modality == "rgb_diff":
        raise ValueError("modality='rgb_diff' needs preprocessing (preprocess=False returns raw frames).")


def element_preprocessor(preprocess, *, training, modality, snippet_length):
    """preprocess(element, seed) -> {video[, flow], label, media_id} for decoded elements.

    `preprocess=False` passes the decoded uint8 frames through untouched.
    """

    def preprocess_element(element, seed):
        if preprocess is False:
            out = {"video": element["frames"] if "frames" in element else element["flow"]}
            if modality == "rgb+flow":
                out["flow"] = element["flow"]
            return {**out, "label": element["label"], "media_id": element["media_id"]}
        return _preprocess_modalities(element, seed, training=training, config=preprocess, modality=modality,
                                      snippet_length=snippet_length)

    return preprocess_element
