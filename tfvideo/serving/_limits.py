"""Sizes a request claims, read before anything is allocated for them.

A few bytes can claim gigabytes: a `TensorProto` declaring a large shape with one value
(expanded to the full shape when read), an image whose header claims 6000x6000 pixels
(decoded to that size), a JSON body of short nested lists (~20 bytes of Python objects per
byte). The server reads these claims here and refuses a request over its limits before
expanding, decoding or parsing it:

* `declared_bytes(proto)`: a TensorProto's decoded size, from its shape and dtype.
* `image_size(data)`: (format, width, height, frames) from a JPEG/PNG/GIF/BMP/WebP header.
* `json_structure(body)`: the nesting depth and element count of a JSON text.
"""

import re

import numpy as np
import tensorflow as tf

# Bytes a string element costs once decoded, besides its own bytes: a numpy object slot
# and a TensorFlow tstring.
_STRING_ELEMENT_BYTES = 40


def declared_bytes(proto):
    """(shape, element count, decoded bytes) a TensorProto declares; ValueError for a negative size."""
    shape = [d.size for d in proto.tensor_shape.dim]
    count = 1
    for size in shape:
        if size < 0:
            raise ValueError(f"dimension {size} in its shape {shape} is negative")
        count *= size
    dtype = tf.dtypes.as_dtype(proto.dtype) if proto.dtype else None
    if dtype == tf.string:
        values = list(proto.string_val)
        padding = max(count - len(values), 0)  # Missing values repeat the last one (make_ndarray).
        content = sum(len(v) for v in values) + padding * (len(values[-1]) if values else 0)
        return shape, count, content + count * _STRING_ELEMENT_BYTES
    itemsize = dtype.size if dtype is not None and dtype.size else 1
    return shape, count, count * itemsize


# --- image headers -------------------------------------------------------------------
_PNG = b"\x89PNG\r\n\x1a\n"
# JPEG markers starting a frame (SOF0-SOF15 but DHT C4, JPG C8, DAC CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data):
    """(width, height) from the first frame header, scanning markers as libjpeg does; None if absent."""
    i, n = 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:  # Garbage between segments: libjpeg skips to the next marker.
            i = data.find(b"\xff", i)
            if i < 0:
                return None
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # Fill byte.
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8 or marker == 0x00:  # Markers without a length.
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # End of image / start of scan before any frame header.
            return None
        if i + 4 > n:
            return None
        if marker in _SOF:
            if i + 9 > n:
                return None
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def _gif_size(data):
    """(width, height, frames) of a GIF: its logical screen and the image descriptors in it."""
    if len(data) < 13:
        return None
    width, height = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    i = 13 + (3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    frames, n = 0, len(data)

    def skip_sub_blocks(j):
        while j < n and data[j]:
            j += data[j] + 1
        return j + 1

    while i < n:
        block = data[i]
        if block == 0x3B:  # Trailer.
            break
        if block == 0x21:  # Extension: label, then data sub-blocks.
            i = skip_sub_blocks(i + 2)
        elif block == 0x2C:  # Image descriptor (+ local colour table), LZW code size, data sub-blocks.
            if i + 10 > n:
                break
            frames += 1
            flags = data[i + 9]
            i += 10 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
            i = skip_sub_blocks(i + 1)
        else:
            break
    return width, height, max(frames, 1)


def _webp_size(data):
    if len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def image_size(data):
    """(format, width, height, frames) an encoded image's header claims; None if `data` is no image.

    Formats are the ones `tf.io.decode_image` reads; "frames" counts a GIF's images (the
    decoder holds them all), 1 otherwise. A header too short to read gives (format, 0, 0, 1):
    the decoder rejects it without allocating.
    """
    if data[:3] == b"\xff\xd8\xff":
        size = _jpeg_size(data)
        return ("JPEG", *(size or (0, 0)), 1)
    if data[:8] == _PNG:
        if len(data) < 24:
            return "PNG", 0, 0, 1
        return "PNG", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), 1
    if data[:4] in (b"GIF8",):
        return ("GIF", *(_gif_size(data) or (0, 0, 1)))
    if data[:2] == b"BM":
        if len(data) < 26:
            return "BMP", 0, 0, 1
        width = int.from_bytes(data[18:22], "little", signed=True)
        height = int.from_bytes(data[22:26], "little", signed=True)
        return "BMP", abs(width), abs(height), 1
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ("WebP", *(_webp_size(data) or (0, 0)), 1)
    return None


# --- JSON ----------------------------------------------------------------------------
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# Kept before strings are cut out: the structure, quotes, and the characters that can follow a
# backslash (so escapes still pair up); numbers, space and most string text go first, which
# keeps the copies small.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{},"\\/bfnrtu')
_CHUNK = 1 << 20


def json_structure(body):
    """(nesting depth, elements) of a JSON text (bytes) without parsing it.

    Elements counts values and containers (commas + containers + 1, an upper bound); the
    text inside strings is skipped. Memory: at most one copy of `body` plus a few MB.
    """
    structure = _JSON_STRING.sub(b"", body.translate(None, _NOT_STRUCTURE))
    depth = deepest = 0
    for start in range(0, len(structure), _CHUNK):
        chunk = np.frombuffer(structure, np.uint8, count=min(_CHUNK, len(structure) - start), offset=start)
        step = (chunk == ord("[")).astype(np.int32)
        step += chunk == ord("{")
        step -= chunk == ord("]")
        step -= chunk == ord("}")
        levels = np.cumsum(step)
        levels += depth
        deepest = max(deepest, int(levels.max()))
        depth = int(levels[-1])
    containers = structure.count(b"[") + structure.count(b"{")
    return deepest, structure.count(b",") + containers + 1
