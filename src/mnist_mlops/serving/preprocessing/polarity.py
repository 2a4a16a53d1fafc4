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
    background_size,
    backgrounds,
    local_reading,
    plot_box,
    whole_picture_readings,
)
from mnist_mlops.serving.preprocessing.masks import quantile, stroke_width, strokes_of

# Strokes wider than this share of the background filter are cut in pieces by it, where they
# run close (measured: thick soft strokes of 13-27 px against a filter of 19 at 96 px).
WIDE = 0.7
SOFT_EDGE = 3  # pixels: a local reading's soft edges beyond a whole-picture reading's box
# Grey levels: a local reading further than this in its ink's direction is other ink.
SAME_INK = 40.0


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
    light_paper, dark_paper = backgrounds(gray)
    inks = ((light_paper - gray, True), (gray - dark_paper, False))
    found = [r for ink, dark in inks if (r := local_reading(gray, ink, dark)) is not None]
    # The picture may also be just a digit and its paper with no margin (a tight crop, an
    # enlarged low-resolution scan, thick strokes), where the paper around the strokes is
    # missing or the strokes are wider than the background filter: its whole-picture readings
    # see all of the digit, so they replace the readings they contain (a loop's inside, part of
    # a thick stroke), and the model keeps the likeliest of what is left.
    whole = whole_picture_readings(gray)
    wide = [_wider_than_background(w, gray) for w in whole]
    kept = [
        r
        for r in found
        if not any(
            _seen_whole(r, w, gray, too_wide) for w, too_wide in zip(whole, wide, strict=True)
        )
    ]
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


def _seen_whole(local: Reading, whole: Reading, gray: np.ndarray, wide: bool) -> bool:
    """Whether a whole-picture reading sees all a local reading saw: the local one is the other
    tone (the paper between its strokes, or cut by the picture's edges), or lies inside it
    and is the same digit (not a small part of a larger area, such as a digit in a shadow), or
    is a piece of its strokes wider than the background filter (see ``_piece_of_wide``)."""
    if local.dark != whole.dark:
        return True
    if wide and _piece_of_wide(local, whole, gray):
        return True
    if not _inside(local.box, whole.box, 1):
        return False
    top, left, bottom, right = local.box
    o_top, o_left, o_bottom, o_right = whole.box
    return (o_bottom - o_top) * (o_right - o_left) <= 2 * (bottom - top) * (right - left)


def _wider_than_background(whole: Reading, gray: np.ndarray) -> bool:
    """Whether a whole-picture reading's strokes are wider than ``WIDE`` of the background
    filter: the filter takes such strokes, and the loops between them, for paper."""
    return stroke_width(strokes_of(whole.ink)) >= WIDE * background_size(gray)


def _piece_of_wide(local: Reading, whole: Reading, gray: np.ndarray) -> bool:
    """Whether a local reading is pieces of a whole-picture reading's wide strokes: within its
    box (give or take the soft edges Otsu's threshold leaves out) and of the same grey (a digit
    in a shadow is darker than the shadow: another ink). The model read such pieces (a 2 from
    a thick 5's lower half) more confidently than the whole digit."""
    if not _inside(local.box, whole.box, SOFT_EDGE):
        return False
    further = _stroke_grey(gray, whole) - _stroke_grey(gray, local)
    return (further if local.dark else -further) <= SAME_INK


def _inside(box: tuple[int, int, int, int], outer: tuple[int, int, int, int], slack: int) -> bool:
    top, left, bottom, right = box
    o_top, o_left, o_bottom, o_right = outer
    return (
        top >= o_top - slack
        and left >= o_left - slack
        and bottom <= o_bottom + slack
        and right <= o_right + slack
    )


def _stroke_grey(gray: np.ndarray, reading: Reading) -> float:
    """The median grey of a reading's strokes."""
    top, left, bottom, right = reading.box
    return quantile(gray[top:bottom, left:right][strokes_of(reading.ink)], 0.5)


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
