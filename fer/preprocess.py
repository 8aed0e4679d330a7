"""One conversion from any PIL image to the model's input, shared by training data and live photos."""

from __future__ import annotations

import numpy as np
from PIL import Image

FACE_SIZE = 48


def to_face_array(image: Image.Image) -> np.ndarray:
    """A (48, 48) uint8 grayscale array: ITU-R 601 luma, area-averaged resize when the size differs."""
    gray = image.convert("L")
    if gray.size != (FACE_SIZE, FACE_SIZE):
        # BOX averages all source pixels when shrinking a large crop, like a camera sensor would;
        # BICUBIC is better when enlarging a tiny one.
        shrinking = gray.size[0] > FACE_SIZE
        gray = gray.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC)
    return np.asarray(gray, dtype=np.uint8)
