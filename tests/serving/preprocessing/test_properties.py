"""A property of the whole preprocessing: whatever the crop, scale, polarity and blur of an
MNIST digit, the prepared 28 x 28 image keeps at least 80% of the digit's ink."""

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter
from scipy import ndimage

from mnist_mlops.serving.preprocessing import digit_candidates


def picture(digit: np.ndarray, side: int, margin: float, dark_ink: bool, blur: float) -> bytes:
    """The digit drawn ``side`` pixels tall, cropped to its ink with ``margin`` of its size
    around it (0: touching all four edges), dark on light or light on dark, blurred."""
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC))
    rows, cols = np.flatnonzero(big.max(axis=1) > 64), np.flatnonzero(big.max(axis=0) > 64)
    pad = int(margin * side)
    crop = np.pad(big[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], pad)
    image = Image.fromarray(255 - crop if dark_ink else crop)
    buffer = io.BytesIO()
    image.filter(ImageFilter.GaussianBlur(blur * side)).save(buffer, format="PNG")
    return buffer.getvalue()


def ink_box(image: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(image.max(axis=1) > 64), np.flatnonzero(image.max(axis=0) > 64)
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] if rows.size else image[:0, :0]


def kept_ink(prepared: np.ndarray, digit: np.ndarray) -> float:
    """The share of the digit's ink pixels that have ink within a pixel in the prepared image,
    both cropped to their ink and brought to the same size (MNIST fitted its digits with
    antialiased borders: the sizes differ by a pixel or two)."""
    original, found = ink_box(digit.astype(np.float32)), ink_box(prepared)
    if not found.size:
        return 0.0
    resized = Image.fromarray(found).resize(original.shape[::-1], Image.Resampling.BILINEAR)
    near = ndimage.maximum_filter(np.asarray(resized), size=3) > 64
    ink = original > 127
    return float((near & ink).sum() / ink.sum())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    index=st.integers(0, 199),
    side=st.integers(24, 240),
    margin=st.sampled_from([0.0, 0.02, 0.1, 0.3]),
    dark_ink=st.booleans(),
    blur=st.floats(0.0, 0.02),
)
def test_the_prepared_digit_keeps_its_ink(mnist_raw, index, side, margin, dark_ink, blur):
    digit = mnist_raw["test_images"][index]
    candidates = digit_candidates(picture(digit, side, margin, dark_ink, blur))
    assert len(candidates), "no digit found"
    assert max(kept_ink(candidate, digit) for candidate in candidates) >= 0.8
