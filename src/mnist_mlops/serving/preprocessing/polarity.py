"""Polarity: which readings are ink on paper, and which go to the model to choose from.

Both tones are read. The paper around a local reading's strokes says whether they stand off it
in their ink's direction; a whole-picture reading that sees all of a local one replaces it (the
inside of a loop, a thick stroke cut by the background filter); where the rules cannot decide,
several readings go to the model, which keeps the one it reads most confidently.
"""

from __future__ import annotations

import numpy as np

from mnist_mlops.serving.preprocessing.locate import (
    MIN_CONTRAST,
    Reading,
    background,
    local_reading,
    plot_box,
    whole_picture_readings,
)


def digit_inks(gray: np.ndarray) -> list[np.ndarray]:
    """The digit's ink (0-255, bright on black) cropped to it, for each reading kept.

    Inside a plot's axes, only there and in the one polarity its colour map's paper says.
    """
    box = plot_box(gray)
    if box is not None and (inside := _by_paper_contrast(_plot_readings(gray[box]))):
        return inside
    # No plot, or nothing read inside its box (a form's frame taken for axes): the whole picture.
    # The local background is the picture with features narrower than k closed (dark ink) or
    # opened (light ink): it follows uneven light and shadows.
    inks = (
        (background(gray, light=True) - gray, True),
        (gray - background(gray, light=False), False),
    )
    found = [r for ink, dark in inks if (r := local_reading(gray, ink, dark)) is not None]
    # The picture may also be just a digit and its paper with no margin (a tight crop, an
    # enlarged low-resolution scan, thick strokes), where the paper around the strokes is
    # missing or the strokes are wider than the background filter: its whole-picture readings
    # see all of the digit, so they replace the readings they contain (a loop's inside, part of
    # a thick stroke), and the model keeps the likeliest of what is left.
    whole = whole_picture_readings(gray)
    kept = [r for r in found if not any(_seen_whole(r, w) for w in whole)]
    return _by_paper_contrast(kept) + [reading.ink for reading in whole]


def _plot_readings(inside: np.ndarray) -> list[Reading]:
    """The digit inside a plot's axes, whose paper is one colour, the colour map's low or high
    end: it says which ink is the digit (the dark paper between a light digit's strokes is not
    dark ink). The paper is the inside's median, its majority: the median of its edge was a
    form's frame when a thick frame was taken for axes (2 pictures of 120 in the tuning ranges
    read as nothing or a sliver). Set on more of it, so that a digit filling the axes is not a
    line across the picture."""
    paper = float(np.median(inside))
    gray = np.pad(inside, max(inside.shape) // 4, constant_values=paper)
    ink = np.clip(gray - paper if paper < 128 else paper - gray, 0, None)
    reading = local_reading(gray, ink, paper >= 128)
    return [] if reading is None else [reading]


def _seen_whole(local: Reading, whole: Reading) -> bool:
    """Whether a whole-picture reading sees all a local reading saw: the local one is the other
    tone (the paper between its strokes, or cut by the picture's edges), or lies inside it
    and is the same digit (not a small part of a larger area, such as a digit in a shadow)."""
    if local.dark != whole.dark:
        return True
    top, left, bottom, right = local.box
    o_top, o_left, o_bottom, o_right = whole.box
    inside = top >= o_top - 1 and left >= o_left - 1 and bottom <= o_bottom + 1
    if not (inside and right <= o_right + 1):
        return False
    return (o_bottom - o_top) * (o_right - o_left) <= 2 * (bottom - top) * (right - left)


def _by_paper_contrast(found: list[Reading]) -> list[np.ndarray]:
    """The readings that are ink on paper, the larger first.

    The paper is the majority around the digit, so real strokes differ from it in their ink's
    direction (darker for dark ink), while the wrong polarity's "strokes" are paper (the strips
    between ruled lines, the inside of a loop) and do not. When one reading stands out clearly
    more, it alone is kept; otherwise (thin pens, faint strokes) both go to the model.
    """
    if not found:
        return []
    best = max(reading.contrast for reading in found)
    kept = [r for r in found if 2 * max(r.contrast, 0.0) + MIN_CONTRAST >= best]
    return [reading.ink for reading in sorted(kept, key=lambda reading: -reading.size)]
