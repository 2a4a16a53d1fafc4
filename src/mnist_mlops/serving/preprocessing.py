"""Turn request payloads into MNIST pixels: raw arrays, or photos made MNIST-like.

Only NumPy and Pillow: this module travels inside the logged model, so it imports nothing of
the project and no TensorFlow.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import numpy as np

SIDE = 28
FIT = 20  # MNIST digits were fitted into 20 x 20, then centred by centre of mass in 28 x 28
MAX_IMAGE_PIXELS = 4096 * 4096


class InvalidInput(ValueError):
    """A request payload that is not a batch of MNIST images; the message says why."""


def pixels_from_array(data: Any) -> np.ndarray:
    """Validate an N x 28 x 28 (or N x 784) batch of 0-255 pixel values.

    Returns:
        A float32 array of shape (N, 28, 28).
    """
    try:
        array = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"pixels must be numbers in nested lists: {exc}") from None
    if array.ndim == 2 and array.shape[1] == SIDE * SIDE:
        array = array.reshape(-1, SIDE, SIDE)
    if array.ndim == 2 and array.shape == (SIDE, SIDE):
        raise InvalidInput("expected a batch of images (N x 28 x 28); wrap one image in a list")
    if array.ndim != 3 or array.shape[1:] != (SIDE, SIDE):
        raise InvalidInput(f"expected shape N x 28 x 28 or N x 784, got {array.shape}")
    if array.shape[0] == 0:
        raise InvalidInput("the batch is empty")
    if not np.isfinite(array).all():
        raise InvalidInput("pixels contain NaN or infinity")
    if array.min() < 0 or array.max() > 255:
        raise InvalidInput(
            f"pixels must be 0-255 (raw MNIST scale), got {array.min():g} to {array.max():g}"
        )
    return array


def pixels_from_image(data: bytes | str) -> np.ndarray:
    """Make an MNIST digit of a photo or scan (PNG or JPEG, raw or base64).

    Grayscale; inverted when the background is light, so the ink is bright on black; cropped to
    the ink; fitted into 20 x 20 keeping the aspect ratio; centred by centre of mass in 28 x 28.

    Returns:
        A float32 array of shape (28, 28) with 0-255 values.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(data, str):
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("image is not valid base64") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InvalidInput(f"image of {image.width} x {image.height} pixels is too large")
            gray = np.asarray(ImageOps.exif_transpose(image).convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidInput(f"not a PNG or JPEG image ({exc.__class__.__name__})") from None

    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    ink = background - gray if background > 127 else gray - background
    ink = np.clip(ink, 0, None)
    if ink.max() < 32:
        raise InvalidInput("no digit found: the image has no contrast")
    ink = ink * (255.0 / ink.max())
    ink[ink < 0.25 * 255] = 0  # paper texture, shadows and JPEG noise are not ink

    rows, cols = np.nonzero(ink)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = FIT / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    fitted = np.asarray(
        Image.fromarray(ink.astype(np.uint8)).resize(size, Image.Resampling.LANCZOS),
        dtype=np.float32,
    )
    return _centre_by_mass(fitted)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    total = digit.sum()
    rows, cols = np.indices(digit.shape)
    centre_row = (rows * digit).sum() / total if total else digit.shape[0] / 2
    centre_col = (cols * digit).sum() / total if total else digit.shape[1] / 2
    top = int(np.clip(round(SIDE / 2 - centre_row), 0, SIDE - digit.shape[0]))
    left = int(np.clip(round(SIDE / 2 - centre_col), 0, SIDE - digit.shape[1]))
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.clip(canvas, 0, 255)


def input_statistics(pixels: np.ndarray) -> list[dict[str, float]]:
    """Per image: mean intensity (0-255) and the fraction of pixels that are ink (monitoring)."""
    flat = pixels.reshape(len(pixels), -1)
    return [
        {"mean_intensity": float(row.mean()), "ink_fraction": float((row > 127).mean())}
        for row in flat
    ]
