"""Frame-coded test videos: frame i shows i in binary, so a decoded frame tells its index.

A module of its own (not conftest): `from conftest import ...` is ambiguous where several
test folders have a conftest.py.
"""

import numpy as np


def frame_code_frames(num_frames, height=48, width=64, bits=6):
    """uint8 [N, H, W, 3] where frame i shows i in binary: bit b lights column block b."""
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    block = width // bits
    for i in range(num_frames):
        for b in range(bits):
            if (i >> b) & 1:
                frames[i, :, b * block : (b + 1) * block] = 255
    return frames


def read_frame_code(frame, bits=6):
    """Inverse of `frame_code_frames` for one decoded frame (robust to compression)."""
    block = frame.shape[1] // bits
    mid = frame.shape[0] // 2
    return sum(int(frame[mid, b * block + block // 2].mean() > 127) << b for b in range(bits))
