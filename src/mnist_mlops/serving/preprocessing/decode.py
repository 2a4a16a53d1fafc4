"""Decoding: request payloads to validated pixels, or a picture to its grey levels.

A picture is made upright (EXIF), laid on a contrasting backdrop when transparent, and scaled to
at most ``WORK_SIDE`` pixels, so the cost of every later stage is bounded whatever its size.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import numpy as np

SIDE = 28
MAX_IMAGE_PIXELS = 4096 * 4096
ORIENTATION = 0x0112  # the EXIF tag saying how a photo must be turned upright
WORK_SIDE = 96  # the digit is searched for at this size: enough for 20 x 20, cheap to filter


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


def picture_bytes(data: bytes | str) -> bytes:
    """The picture's bytes, sent raw or as base64."""
    if isinstance(data, bytes):
        return data
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("image is not valid base64") from None


def work_grayscale(data: bytes, side: int = WORK_SIDE) -> np.ndarray:
    """Luminance 0-255 of the upright picture, at most ``side`` pixels on its longer side.

    A transparent background is laid on the colour that contrasts with the opaque strokes.
    JPEGs are decoded at a reduced scale directly (``draft``), which bounds the decoding cost.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InvalidInput(f"image of {image.width} x {image.height} pixels is too large")
            image.draft("L" if image.mode in ("L", "RGB") else image.mode, (side, side))
            # Only a rotated picture is transposed: exif_transpose copies even an upright one.
            rotated = image.getexif().get(ORIENTATION, 1) != 1
            upright = ImageOps.exif_transpose(image) if rotated else image
            scale = side / max(upright.size)
            if scale < 1:
                size = (max(1, round(upright.width * scale)), max(1, round(upright.height * scale)))
                upright = upright.resize(size, Image.Resampling.BOX)
            return _luminance(upright)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidInput(f"not a PNG or JPEG image ({exc.__class__.__name__})") from None


def _luminance(image: Any) -> np.ndarray:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    gray = _greys(image)
    if not has_alpha:
        return gray
    alpha = np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float32) / 255
    if alpha.min() > 0.5:
        return gray
    opaque = gray[alpha > 0.5]
    backdrop = 0.0 if opaque.size and opaque.mean() > 127 else 255.0
    return gray * alpha + backdrop * (1 - alpha)


def _greys(image: Any) -> np.ndarray:
    """Grey levels 0-255. A 16-bit grey picture (a scanner's PNG) is scaled from 0-65535:
    Pillow's conversion to 8 bits clips it instead, leaving most of a scan white."""
    if image.mode.startswith("I;16") or image.mode == "I":
        wide = np.asarray(image, dtype=np.float32)
        return wide / 257 if wide.max() > 255 else wide
    return np.asarray(image.convert("L"), dtype=np.float32)
