"""The input statistics monitoring compares with the training images.

Kept out of the served model's preprocessing: changing a monitoring statistic must not change
the model's fingerprint.
"""

from __future__ import annotations

import numpy as np


def input_statistics(pixels: np.ndarray) -> list[dict[str, float | None]]:
    """Per image: mean intensity (0-255) and the fraction of pixels that are ink.

    An image the model found no digit in (all NaN) has neither: both are None.
    """
    flat = pixels.reshape(len(pixels), -1)
    return [
        {"mean_intensity": float(row.mean()), "ink_fraction": float((row > 127).mean())}
        if np.isfinite(row).all()
        else {"mean_intensity": None, "ink_fraction": None}
        for row in flat
    ]
