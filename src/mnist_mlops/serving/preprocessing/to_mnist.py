"""To MNIST: the found ink scaled, its strokes brought toward MNIST's width, fitted into
20 x 20 and centred by mass in 28 x 28, as MNIST's digits were."""

from __future__ import annotations

import numpy as np

from mnist_mlops.serving.preprocessing.decode import SIDE
from mnist_mlops.serving.preprocessing.masks import quantile, stroke_width, strokes_of

FIT = 20  # MNIST digits were fitted into 20 x 20, then centred by centre of mass in 28 x 28
MNIST_STROKE = 0.12  # MNIST strokes are about 2.4 pixels wide in a 20-pixel digit
THICK = 1.6  # strokes this many times MNIST's width are thinned (95% of MNIST's are thinner)


def mnist_like(ink: np.ndarray) -> np.ndarray:
    """Scale the ink to 0-255, bring the strokes toward MNIST's width, fit into 20 x 20,
    centre in 28 x 28."""
    from PIL import Image

    strokes = strokes_of(ink)
    ink = np.clip(ink * (255.0 / quantile(ink[strokes], 0.75)), 0, 255)
    ink = _mnist_stroke_width(ink, stroke_width(strokes))
    scale = FIT / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    fitted = np.asarray(
        Image.fromarray(ink.astype(np.uint8)).resize(size, Image.Resampling.LANCZOS),
        dtype=np.float32,
    )
    return _centre_by_mass(fitted)


def _mnist_stroke_width(ink: np.ndarray, width: float) -> np.ndarray:
    """Thin pens thickened and thick markers (or blurred, enlarged scans) thinned toward
    MNIST's stroke width: the model knows digits drawn with MNIST's pen."""
    from scipy import ndimage

    wanted = MNIST_STROKE * max(ink.shape)
    if width < 0.6 * wanted:
        grow = round(wanted - width)
        return ndimage.grey_dilation(np.pad(ink, grow // 2 + 1), size=(grow + 1, grow + 1))
    if width > THICK * wanted:
        # Half-way: soft strokes measure wider than they are, and eroding all the way broke
        # the loops of thick 8s and 6s (2 more pictures of the tuning set wrong).
        radius = int((width - wanted) / 4)
        across = np.arange(-radius, radius + 1) ** 2
        return ndimage.grey_erosion(ink, footprint=across[:, None] + across[None] <= radius**2)
    return ink


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    total = float(digit.sum())
    rows, cols = digit.sum(axis=1), digit.sum(axis=0)
    centre_row = rows @ np.arange(len(rows)) / total if total else digit.shape[0] / 2
    centre_col = cols @ np.arange(len(cols)) / total if total else digit.shape[1] / 2
    top = int(np.clip(round(SIDE / 2 - centre_row), 0, SIDE - digit.shape[0]))
    left = int(np.clip(round(SIDE / 2 - centre_col), 0, SIDE - digit.shape[1]))
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.clip(canvas, 0, 255)
