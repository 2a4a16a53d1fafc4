"""Turn request payloads into MNIST pixels: raw arrays, or real pictures made MNIST-like.

One module per stage: ``decode`` (payload to grey levels), ``locate`` (the digit's ink, read in
each tone), ``polarity`` (which readings are ink on paper, or candidates for the model) and
``to_mnist`` (28 x 28 like MNIST), with ``masks`` shared by them. Only NumPy, Pillow and SciPy,
and no module of the project outside this package: all of it travels inside the logged model,
pickled by value, and is part of its fingerprint.
"""

from __future__ import annotations

import numpy as np

from mnist_mlops.serving.preprocessing.decode import (
    SIDE,
    WORK_SIDE,
    InvalidInput,
    picture_bytes,
    pixels_from_array,
    work_grayscale,
)
from mnist_mlops.serving.preprocessing.polarity import digit_inks
from mnist_mlops.serving.preprocessing.to_mnist import FIT, mnist_like

ZOOM = 4  # how much larger a small digit's picture is read again

__all__ = ["InvalidInput", "digit_candidates", "pixels_from_array"]


def digit_candidates(data: bytes | str) -> np.ndarray:
    """Find the digit in a picture (PNG or JPEG, raw or base64) and make it an MNIST digit.

    Which tone is the ink, and where the digit is, is not always decidable from pixels alone
    (a light digit on a dark canvas inside a white page, a thin pen's faint strokes, a tight
    crop): then several readings are returned, and the model keeps the one it reads most
    confidently.

    Raises:
        InvalidInput: not an image, or too large.

    Returns:
        A float32 array of shape (K, 28, 28) with 0-255 values, bright ink on black: K = 0
        when nothing in the picture stands out as a digit.
    """
    picture = picture_bytes(data)
    gray = work_grayscale(picture)
    inks = digit_inks(gray)
    if inks and max(max(ink.shape) for ink in inks) < FIT and max(gray.shape) == WORK_SIDE:
        # A digit smaller than MNIST's own 20 pixels at the working size (a small digit in a
        # large picture) is read again at four times the size, where it has strokes to find.
        inks = digit_inks(work_grayscale(picture, ZOOM * WORK_SIDE)) or inks
    return (
        np.stack([mnist_like(ink) for ink in inks])
        if inks
        else np.empty((0, SIDE, SIDE), np.float32)
    )
