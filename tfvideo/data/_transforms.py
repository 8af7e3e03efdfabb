"""Clip-consistent video transforms (TensorFlow ops, usable in tf.data and in exports).

Every function takes a video `[..., T, H, W, C]` and applies the same spatial operation
to every frame of the clip. Random transforms take a stateless `seed` (int32 [2]) so a
pipeline is deterministic given its seed.
"""

import tensorflow as tf

from tfvideo.api._export import export_constant, tf_export

IMAGENET_MEAN = export_constant("tfvideo.data.IMAGENET_MEAN", (0.485, 0.456, 0.406))
IMAGENET_STD = export_constant("tfvideo.data.IMAGENET_STD", (0.229, 0.224, 0.225))


def _frames_view(video):
    """[..., T, H, W, C] -> [N, H, W, C] and a function restoring the leading dims."""
    shape = tf.shape(video)
    lead = shape[:-3]
    flat = tf.reshape(video, tf.concat([[-1], shape[-3:]], 0))

    def restore(frames):
        return tf.reshape(frames, tf.concat([lead, tf.shape(frames)[1:]], 0))

    return flat, restore


def _resize_frames(frames, size):
    """Bilinear resize of frames [N, H, W, C] to `size` (int32 [2]): float32 [N, h, w, C].

    Antialiased when shrinking. The cheaper paths give the same values: at the same size
    the antialiased resize is the identity (skipped), and when no side shrinks its kernel
    is the plain bilinear one (equal to within float rounding, < 1e-4 on 0..255).
    """
    frames = tf.cast(frames, tf.float32)
    hw = tf.shape(frames)[1:3]
    size = tf.cast(size, tf.int32)

    def shrink():
        return tf.image.resize(frames, size, method="bilinear", antialias=True)

    def enlarge():
        return tf.image.resize(frames, size, method="bilinear", antialias=False)

    def same():
        return frames

    return tf.case(
        [(tf.reduce_all(tf.equal(hw, size)), same), (tf.reduce_all(size >= hw), enlarge)], default=shrink, exclusive=False
    )


@tf_export("tfvideo.data.resize_short_side")
def resize_short_side(video, size):
    """Resizes so the shorter side is `size`, keeping the aspect ratio. Returns float32."""
    flat, restore = _frames_view(video)
    return restore(_resize_frames(flat, short_side_size(tf.shape(flat)[1], tf.shape(flat)[2], size)))


@tf_export("tfvideo.data.resize")
def resize(video, size):
    """Resizes every frame to `size` = (height, width). Returns float32."""
    flat, restore = _frames_view(video)
    return restore(_resize_frames(flat, size))


def _crop(video, top, left, height, width):
    return video[..., top : top + height, left : left + width, :]


@tf_export("tfvideo.data.center_crop")
def center_crop(video, size):
    """Crops the central `size` x `size` square (or (h, w)) of every frame."""
    ch, cw = (size, size) if isinstance(size, int) else size
    h, w = tf.shape(video)[-3], tf.shape(video)[-2]
    return _crop(video, (h - ch) // 2, (w - cw) // 2, ch, cw)


@tf_export("tfvideo.data.three_crop")
def three_crop(video, size):
    """Three `size` crops along the longer side (start, centre, end): adds a views axis.

    [..., T, H, W, C] -> [3, ..., T, size, size, C].
    """
    h, w = tf.shape(video)[-3], tf.shape(video)[-2]
    long_h = h > w
    span = tf.where(long_h, h, w) - size
    offsets = [0, span // 2, span]
    crops = []
    for off in offsets:
        top = tf.where(long_h, off, (h - size) // 2)
        left = tf.where(long_h, (w - size) // 2, off)
        crops.append(_crop(video, top, left, size, size))
    return tf.stack(crops)


@tf_export("tfvideo.data.ten_crop")
def ten_crop(video, size):
    """Four corners + centre, and their horizontal flips: [10, ..., T, size, size, C]."""
    h, w = tf.shape(video)[-3], tf.shape(video)[-2]
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2)]
    crops = [_crop(video, t, lft, size, size) for t, lft in corners]
    crops += [tf.reverse(c, axis=[-2]) for c in crops]
    return tf.stack(crops)


def short_side_size(height, width, size):
    """int32 [2]: (h, w) of `resize_short_side(video, size)` for frames of `height` x `width`."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    scale = float(size) / tf.minimum(h, w)
    return tf.maximum(tf.cast(tf.round(tf.stack([h * scale, w * scale])), tf.int32), size)


def multi_scale_box(h, w, seed, scales=(1.0, 0.875, 0.75, 0.66), max_distort=1, fix_crop=True):
    """(top, left, height, width) int32 of `multi_scale_crop`'s box in an `h` x `w` frame for `seed`."""
    base = tf.cast(tf.minimum(h, w), tf.float32)
    sizes = tf.cast(base * tf.constant(scales, tf.float32), tf.int32)
    pairs = [(i, j) for i in range(len(scales)) for j in range(len(scales)) if abs(i - j) <= max_distort]
    seeds = tf.random.split(seed, 3)
    pick = tf.random.stateless_uniform([], seeds[0], 0, len(pairs), tf.int32)
    pair = tf.gather(tf.constant(pairs, tf.int32), pick)
    ch, cw = tf.gather(sizes, pair[0]), tf.gather(sizes, pair[1])
    if fix_crop:
        dh, dw = (h - ch) // 4, (w - cw) // 4
        offsets = tf.stack(
            [[0, 0], [0, 4 * dw], [4 * dh, 0], [4 * dh, 4 * dw], [2 * dh, 2 * dw]]
        )
        k = tf.random.stateless_uniform([], seeds[1], 0, 5, tf.int32)
        top, left = offsets[k][0], offsets[k][1]
    else:
        top = tf.random.stateless_uniform([], seeds[1], 0, h - ch + 1, tf.int32)
        left = tf.random.stateless_uniform([], seeds[2], 0, w - cw + 1, tf.int32)
    return top, left, ch, cw


@tf_export("tfvideo.data.multi_scale_crop")
def multi_scale_crop(video, size, seed, scales=(1.0, 0.875, 0.75, 0.66), max_distort=1, fix_crop=True):
    """TSN multi-scale crop: a random (scale_h, scale_w) pair and a corner/centre offset.

    The crop side lengths are `scale * min(H, W)` with the two scales' indices at most
    `max_distort` apart; with `fix_crop` the offset is one of the 4 corners or the centre.
    The crop is resized to `size` x `size`. Same box for every frame of the clip.
    """
    h, w = tf.shape(video)[-3], tf.shape(video)[-2]
    top, left, ch, cw = multi_scale_box(h, w, seed, scales, max_distort, fix_crop)
    return resize(_crop(video, top, left, ch, cw), (size, size))


def random_resized_box(h, w, seed, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3)):
    """(top, left, height, width) int32 of `random_resized_crop`'s box in an `h` x `w` frame for `seed`."""
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.stack([h, w, 1]),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        area_range=area_range,
        aspect_ratio_range=aspect_ratio_range,
        min_object_covered=0.0,
        max_attempts=20,
        use_image_if_no_bounding_boxes=True,
    )
    return begin[0], begin[1], crop_size[0], crop_size[1]


@tf_export("tfvideo.data.random_resized_crop")
def random_resized_crop(video, size, seed, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3)):
    """Inception-style random resized crop, one box for the whole clip."""
    h, w = tf.shape(video)[-3], tf.shape(video)[-2]
    top, left, ch, cw = random_resized_box(h, w, seed, area_range, aspect_ratio_range)
    return resize(_crop(video, top, left, ch, cw), (size, size))


def flip_decision(seed):
    """The coin `random_flip` tosses for `seed` (shared so other modalities follow it)."""
    return tf.random.stateless_uniform([], seed) < 0.5


@tf_export("tfvideo.data.random_flip")
def random_flip(video, seed, label=None, flip_label_map=None):
    """Flips the whole clip horizontally with probability 1/2.

    With `flip_label_map` (a list: class id -> class id of the mirrored action, e.g.
    "move left" <-> "move right"), the label follows the flip. Returns (video, label).
    """
    flip = flip_decision(seed)
    video = tf.cond(flip, lambda: tf.reverse(video, axis=[-2]), lambda: video)
    if label is not None and flip_label_map is not None:
        mapped = tf.gather(tf.constant(flip_label_map, tf.int32), label)
        label = tf.where(flip, mapped, label)
    return video, label


@tf_export("tfvideo.data.color_jitter")
def color_jitter(video, seed, brightness=0.2, contrast=0.2):
    """Random brightness/contrast, the same factors for every frame. Input in [0, 255]."""
    s = tf.random.split(seed, 2)
    video = tf.cast(video, tf.float32)
    b = tf.random.stateless_uniform([], s[0], -brightness, brightness) * 255.0
    c = tf.random.stateless_uniform([], s[1], 1.0 - contrast, 1.0 + contrast)
    mean = tf.reduce_mean(video)
    return tf.clip_by_value((video - mean) * c + mean + b, 0.0, 255.0)


@tf_export("tfvideo.data.normalize")
def normalize(video, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """[0, 255] values -> (x / 255 - mean) / std, float32; mean/std per channel."""
    # One multiply-add: x * 1 / (255 std) - mean / std (equal to the three-step form to ~1e-6).
    scale = 1.0 / (255.0 * tf.constant(std, tf.float32))
    return tf.cast(video, tf.float32) * scale - tf.constant(mean, tf.float32) / tf.constant(std, tf.float32)


@tf_export("tfvideo.data.rgb_difference")
def rgb_difference(video, snippet_length=None):
    """TSN RGB difference: consecutive-frame differences inside each snippet.

    `video` [..., T, H, W, C] holds T / snippet_length snippets of `snippet_length`
    consecutive frames (TSN's segments x new_length); differences never cross a snippet
    boundary. Returns float32 [..., T / L * (L - 1), H, W, C]. `snippet_length=None`
    (or 1) treats the whole clip as one snippet: [..., T - 1, H, W, C].
    """
    video = tf.cast(video, tf.float32)
    if not snippet_length or snippet_length == 1:
        return video[..., 1:, :, :, :] - video[..., :-1, :, :, :]
    shape = tf.shape(video)
    lead, rest = shape[:-4], shape[-3:]
    snippets = tf.reshape(video, tf.concat([lead, [-1, snippet_length], rest], 0))
    diff = snippets[..., 1:, :, :, :] - snippets[..., :-1, :, :, :]
    return tf.reshape(diff, tf.concat([lead, [-1], rest], 0))
