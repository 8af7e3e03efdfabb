"""The pipeline's phase modules: the one sampled-frame decoder, and small call signatures."""

import ast
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tfvideo.data import _decode

PHASE_MODULES = ("_sources", "_decode", "_preprocess", "_errors", "_pipeline")


def distinct_frames(count, height=8, width=10):
    """uint8 [count, H, W, 3]: frame i is flat at 20 * i + (0, 5, 10) per channel, so JPEG keeps it recognisable."""
    levels = 20 * np.arange(count, dtype=np.int32)[:, None, None, None] + np.array([0, 5, 10])
    return np.broadcast_to(levels, (count, height, width, 3)).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["png", "jpeg", "raw"])
def test_decode_encoded_returns_the_sampled_frames_in_view_order(encoding):
    frames = distinct_frames(9)
    if encoding == "png":
        encoded = tf.stack([tf.io.encode_png(f) for f in frames])
    elif encoding == "jpeg":
        encoded = tf.stack([tf.io.encode_jpeg(f, quality=95) for f in frames])
    else:
        encoded = tf.constant(frames)
    indices = tf.constant([[0, 3, 3, 8], [7, 1, 2, 5]], tf.int64)  # [V=2, T=4], repeats allowed.
    out = _decode.decode_encoded(encoded, indices, 3).numpy()
    assert out.shape == (2, 4, 8, 10, 3) and out.dtype == np.uint8
    expected = frames[indices.numpy()]
    tolerance = 2 if encoding == "jpeg" else 0  # JPEG of a flat image is within a level or two.
    np.testing.assert_allclose(out.astype(int), expected.astype(int), atol=tolerance)


def test_decode_encoded_keeps_the_first_channels_for_flow():
    frames = distinct_frames(4)
    encoded = tf.stack([tf.io.encode_png(f) for f in frames])
    out = _decode.decode_encoded(encoded, tf.constant([[2, 0]], tf.int64), 2).numpy()
    assert out.shape == (1, 2, 8, 10, 2)
    np.testing.assert_array_equal(out, frames[[[2, 0]]][..., :2])


def test_decode_encoded_fails_on_a_sampled_frame_that_does_not_decode():
    good = tf.io.encode_png(distinct_frames(1)[0])
    encoded = tf.stack([good, tf.constant(b"not an image"), good])
    np.testing.assert_array_equal(_decode.decode_encoded(encoded, tf.constant([[0, 2]], tf.int64), 3).shape, [1, 2, 8, 10, 3])
    with pytest.raises(tf.errors.InvalidArgumentError):
        _decode.decode_encoded(encoded, tf.constant([[0, 1]], tf.int64), 3)


def positional_parameters(function):
    args = function.args
    return [a.arg for a in args.posonlyargs + args.args] + ([f"*{args.vararg.arg}"] if args.vararg else [])


def test_phase_functions_take_at_most_eight_positional_parameters():
    # Public functions keep their published signatures (tfvideo/api/golden.txt); the
    # private ones take keyword-only arguments beyond a few positional ones.
    root = pathlib.Path(_decode.__file__).parent
    too_long = []
    for name in PHASE_MODULES:
        tree = ast.parse((root / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            published = any("tf_export" in ast.unparse(d) for d in node.decorator_list)
            params = positional_parameters(node)
            if not published and len(params) > 8:
                too_long.append(f"{name}.py:{node.lineno} {node.name}({', '.join(params)})")
    assert not too_long, "functions with more than 8 positional parameters:\n" + "\n".join(too_long)
