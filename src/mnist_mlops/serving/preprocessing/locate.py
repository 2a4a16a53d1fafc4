"""Locating the digit: the groups of ink that make it, read in one tone or the other.

Two ways, whose readings the polarity stage weighs. A *local* reading takes as background what
surrounds the strokes locally (so uneven light, shadows, a dark canvas on a white page or a
plot's frame do not decide it); its ink is whatever stands out from that background, and the
digit is the largest group of ink that is neither a line across the picture (ruled or squared
paper, plot axes, page edges) nor a frame, with the strokes near it (the bar of a 5). A
*whole-picture* reading splits the picture into its two tones (Otsu): it needs no paper around
the digit (a tight crop, an enlarged low-resolution scan, thick strokes), and is kept only when
its tone looks like strokes rather than paper, a blob or a frame.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mnist_mlops.serving.preprocessing.masks import (
    grow,
    longest_runs,
    outline,
    quantile,
    ring,
    runs_at_least,
    stroke_width,
    strokes_of,
)

MIN_CONTRAST = 12.0  # grey levels: below this nothing stands out from the paper
PAPER_REACH = 0.25  # the paper around a digit: a quarter of its size on each side
# Strokes wider than this share of their digit's size are a blob (a shadow), not a digit; thick
# markers reach 0.41 (the tuning set's thickest).
BLOB = 0.45
THICK_TONE = 0.3  # strokes this wide for their digit's size are also read by their core
# A thick tone's core: the pixels at least this share of the way from its paper's grey to its
# ink's, without the soft edges of blurred strokes (which close small loops).
CORE = 0.85
AXES_CONTRAST = 40.0  # grey levels: a plot's axes lines, scaled to ``WORK_SIDE``, differ more


class _Part(NamedTuple):
    """Connected ink: its label, pixel count and bounding box (top, left, bottom, right)."""

    label: int
    area: int
    box: tuple[int, int, int, int]


class Reading(NamedTuple):
    """One polarity's digit: its size, its ink cropped to it, and how it stands off the paper."""

    size: int
    ink: np.ndarray
    contrast: float
    box: tuple[int, int, int, int]  # top, left, bottom, right in the picture
    dark: bool  # dark ink on light paper


def local_reading(gray: np.ndarray, ink: np.ndarray, dark: bool) -> Reading | None:
    """The digit found in ``ink`` (``gray``'s dark or light ink), or None if there is none."""
    mask, parts, labels = _digit_parts(ink)
    if not parts:
        return None
    top, left, bottom, right = _union_box(parts)
    chosen = np.zeros(labels.max() + 1, dtype=bool)
    chosen[[part.label for part in parts]] = True
    keep = chosen[labels[top:bottom, left:right]]
    keep = grow(keep & mask[top:bottom, left:right])  # the strokes' soft edges
    crop = np.where(keep, ink[top:bottom, left:right], 0.0)
    size = max(bottom - top, right - left)
    box = (top, left, bottom, right)
    return Reading(size, crop, _paper_contrast(gray, keep, box, dark), box, dark)


def _paper_contrast(
    gray: np.ndarray, strokes: np.ndarray, box: tuple[int, int, int, int], dark: bool
) -> float:
    """How much darker (dark ink) or lighter the strokes are than the paper around their box.

    The paper is the (lower) median grey of a band around the box, ``PAPER_REACH`` of the
    digit's size wide: near enough to stay on a dark canvas around a light digit inside a white
    page (wider, the page would be the paper and the canvas's fragments the ink), wide enough
    to be mostly paper beside dense strokes (narrower, a loop's inside would be lighter than
    its ring of strokes). Zero when the digit fills the picture (no paper to compare with).
    """
    top, left, bottom, right = box
    reach = max(2, int(PAPER_REACH * max(bottom - top, right - left)))
    outer_top, outer_left = max(0, top - reach), max(0, left - reach)
    band = gray[outer_top : bottom + reach, outer_left : right + reach]
    around = np.ones(band.shape, dtype=bool)
    around[top - outer_top : bottom - outer_top, left - outer_left : right - outer_left] = False
    if not around.any():
        return 0.0
    paper = quantile(band[around], 0.5)
    ink = quantile(gray[top:bottom, left:right][strokes], 0.5)
    return paper - ink if dark else ink - paper


def plot_box(gray: np.ndarray) -> tuple[slice, slice] | None:
    """Inside a plot's axes, if the picture is one: a box of straight lines (or a filled image)
    set in from the picture's edges, whose tick labels, title and colour bar are outside it.

    The box's top and bottom are the first and last rows marked across half the picture, over
    the same columns; its sides are marked along nearly all of its height.
    """
    height, width = gray.shape
    marked = np.abs(gray - quantile(ring(gray), 0.5)) > AXES_CONTRAST
    if np.count_nonzero(marked.sum(axis=1) >= 0.5 * width) < 2:
        return None  # no two rows marked across half the picture: no axes (and cheap to see)
    lengths, begins = longest_runs(marked)
    long_rows = np.flatnonzero(lengths >= 0.5 * width)
    if long_rows.size < 2:
        return None
    top, bottom = int(long_rows[0]), int(long_rows[-1])
    left, right = int(begins[top]), int(begins[top] + lengths[top])
    same_columns = (
        abs(begins[bottom] - left) <= 2 and abs(begins[bottom] + lengths[bottom] - right) <= 2
    )
    set_in = top > 0 and left > 0 and bottom < height - 1 and right < width
    large = bottom - top >= max(0.4 * height, 16) and right - left >= 16  # room for a digit
    if not (same_columns and set_in and large):
        return None
    sides = marked[top : bottom + 1, [left, left + 1, right - 2, right - 1]].mean(axis=0)
    if max(sides[:2]) < 0.9 or max(sides[2:]) < 0.9:
        return None
    # Straight lines end at the box: a thick stroke's round cap (a thick 0) goes on beyond it.
    beyond = marked[[max(0, top - 2), min(height - 1, bottom + 2)], left:right].mean(axis=1)
    if max(beyond) >= 0.5:
        return None
    # Two pixels in: the axes' lines, softened by scaling, stay outside.
    return slice(top + 2, bottom - 1), slice(left + 2, right - 2)


def background_size(gray: np.ndarray) -> int:
    """The background filter's width: features narrower than this are ink."""
    return max(3, max(gray.shape) // 5)


def backgrounds(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper under dark ink and under light ink: a closing (light paper) and an opening
    (dark paper) wider than strokes.

    As 1-D filters of the picture and its negative stacked (the opening is the negated closing
    of the negative): SciPy's ``grey_closing`` does the same with more overhead (measured), and
    the stack halves the calls.
    """
    from scipy import ndimage

    size = background_size(gray)
    both = np.stack([gray, -gray])
    for filter1d in (ndimage.maximum_filter1d, ndimage.minimum_filter1d):
        both = filter1d(filter1d(both, size, axis=1), size, axis=2)
    return both[0], -both[1]


def _digit_parts(ink: np.ndarray) -> tuple[np.ndarray, list[_Part], np.ndarray]:
    """The ink mask, the pieces of it that make the digit, and the labels they refer to.

    Pieces a pixel or two apart are one (a thin stroke that scaling broke up).
    """
    from scipy import ndimage

    standing_out = ink[ink > MIN_CONTRAST]
    if standing_out.size < 4:
        return np.zeros(ink.shape, bool), [], np.zeros(ink.shape, dtype=np.int32)
    # Relative to the strongest ink, so that fainter ruled lines or grids (often more pixels than
    # the digit) fall below it.
    strongest = quantile(standing_out, 0.97)
    mask = ink > max(0.4 * strongest, MIN_CONTRAST)
    mask &= ~_long_thin_lines(mask)
    labels, count = ndimage.label(grow(mask), np.ones((3, 3)))
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    parts = [
        _Part(label, int(areas[label]), (s[0].start, s[1].start, s[0].stop, s[1].stop))
        for label, s in enumerate(ndimage.find_objects(labels), start=1)
        if s is not None and areas[label] >= 4
    ]
    parts = [part for part in parts if not _is_clutter(part, labels, ink.shape)]
    if not parts:
        return mask, [], labels
    main = max(parts, key=lambda part: part.area)
    return mask, _with_neighbours(main, parts), labels


def _long_thin_lines(mask: np.ndarray) -> np.ndarray:
    """Horizontal and vertical lines across most of the picture: rules, grids, frames, axes.

    Only thin lines (a few pixels across) that run at least 85% of the picture's width or height
    qualify: no digit is that long, so a stroke crossing such a line keeps all but the crossing.
    """
    thick = max(3, max(mask.shape) // 40)
    return (_vertical_lines(mask, thick) | _vertical_lines(mask.T, thick).T) & mask


def _vertical_lines(mask: np.ndarray, thick: int) -> np.ndarray:
    """Thin vertical lines (at most ``thick`` across, give or take a pixel of tilt) running 85% of
    the height; searched only in the columns that have that much ink, near them."""
    length = int(0.85 * mask.shape[0])
    counts = mask.sum(axis=0)
    coverage = counts.copy()  # ink in each column and its two neighbours
    coverage[1:] += counts[:-1]
    coverage[:-1] += counts[1:]
    columns = np.flatnonzero(coverage >= length)
    lines = np.zeros(mask.shape, dtype=bool)
    if not columns.size:
        return lines  # no line that long: nothing more to look at
    low = max(0, columns[0] - 1)
    thin = _short_across(mask, low, columns[-1] + 2, thick)
    widened = thin.copy()  # by a pixel either side, for a slight tilt
    widened[:, 1:] |= thin[:, :-1]
    widened[:, :-1] |= thin[:, 1:]
    lines[:, columns] = runs_at_least(widened[:, columns - low], length)
    return lines


def _short_across(mask: np.ndarray, low: int, high: int, thick: int) -> np.ndarray:
    """The pixels of ``mask``'s columns ``low`` to ``high`` in horizontal runs at most ``thick``
    long: a pixel's run, counted up to ``thick`` pixels either side of it. The same pixels as
    the whole picture's run lengths give (tested), 2-3x cheaper."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2 * thick), dtype=bool)
    padded[:, thick:-thick] = mask
    high = min(high, mask.shape[1])
    run = np.ones((mask.shape[0], high - low), dtype=np.int8)
    for side in (-1, 1):
        going = np.ones(run.shape, dtype=bool)
        for step in range(1, thick + 1):
            start = low + thick + side * step
            going &= padded[:, start : start + high - low]
            run += going
    return mask[:, low:high] & (run <= thick)


def _is_clutter(part: _Part, labels: np.ndarray, shape: tuple[int, int]) -> bool:
    """Specks, lines across the picture, page edges and frames: ink that is not a digit."""
    top, left, bottom, right = part.box
    height, width = bottom - top, right - left
    spans = height >= 0.75 * shape[0] or width >= 0.75 * shape[1]
    thin = min(height, width) * 6 <= max(height, width)
    touches = top == 0 or left == 0 or bottom == shape[0] or right == shape[1]
    if spans and (thin or touches):
        return True  # a ruled line, an axis, a page edge, a margin
    if touches and thin and max(height / shape[0], width / shape[1]) >= 0.5:
        return True  # a page's or a table's edge cut by the picture (a phone photo's corner)
    if touches and _in_border(part, labels):
        contact = int(np.count_nonzero(ring(labels) == part.label))
        if _along_a_side(height, width, contact, shape):
            return True  # the table beside a photographed page, slanted: along one side or two
    if min(height, width) < max(8, 0.3 * max(height, width)):
        return False
    # A straight line along three or four sides of it: a frame, a canvas, a screen, plot axes.
    mine = labels[top:bottom, left:right] == part.label
    rows, cols = mine.mean(axis=1), mine.mean(axis=0)
    q_rows, q_cols = max(1, height // 4), max(1, width // 4)
    sides = (rows[:q_rows].max(), rows[-q_rows:].max(), cols[:q_cols].max(), cols[-q_cols:].max())
    return sum(float(side) >= 0.9 for side in sides) >= 3


def _along_a_side(height: int, width: int, contact: int, shape: tuple[int, int]) -> bool:
    """Whether a piece touching the picture's sides ``contact`` pixels long lies along them:
    40% of the picture long, or a fifth and touching along most of its length (a wedge of
    table beside a slanted page; a stroke reaching the edge touches it across its width)."""
    length = max(height / shape[0], width / shape[1])
    return length >= 0.4 or (length >= 0.2 and contact >= 0.8 * max(height, width))


def _in_border(part: _Part, labels: np.ndarray) -> bool:
    """Whether all of a part keeps within a fifth of the picture's size from its sides."""
    band = max(1, int(0.2 * min(labels.shape)))
    return not (labels[band:-band, band:-band] == part.label).any()


def _with_neighbours(main: _Part, parts: list[_Part]) -> list[_Part]:
    """The main piece and the pieces near it that are large enough to be strokes of the digit.

    A long thin piece beside the digit is a rule or a canvas edge, not a stroke.
    """
    top, left, bottom, right = main.box
    size = max(bottom - top, right - left)
    chosen = [main]
    for part in parts:
        p_top, p_left, p_bottom, p_right = part.box
        long_side = max(p_bottom - p_top, p_right - p_left)
        short_side = min(p_bottom - p_top, p_right - p_left)
        if part is main or (long_side >= 0.6 * size and short_side * 5 <= long_side):
            continue
        gap = max(p_top - bottom, top - p_bottom, p_left - right, left - p_right, 0)
        near = gap <= 0.25 * size and part.area >= 0.1 * main.area
        if near or (gap == 0 and part.area >= 0.04 * main.area):
            chosen.append(part)
    return chosen


def _union_box(parts: list[_Part]) -> tuple[int, int, int, int]:
    boxes = np.array([part.box for part in parts])
    return (
        int(boxes[:, 0].min()),
        int(boxes[:, 1].min()),
        int(boxes[:, 2].max()),
        int(boxes[:, 3].max()),
    )


def whole_picture_readings(gray: np.ndarray) -> list[Reading]:
    """The digit read as one of the picture's two tones (Otsu's threshold), with no margin
    needed: the ink is a tone whose pieces look like strokes, not like paper.

    A tone is not ink when it covers most of the picture, or most of its border (paper around
    the digit, or the page of a photo), or when its pieces are blobs (a shadow, the inside of
    a loop) rather than strokes (see ``_stroke_like``).
    """
    levels = np.clip(gray, 0, 255).astype(np.uint8)
    if levels.min() == levels.max():
        return []  # one tone: nothing to read
    counts = np.bincount(levels.ravel(), minlength=256)
    threshold = _otsu(counts)
    dark = levels <= threshold
    # The tones' medians from the histogram: 10x cheaper than sorting the picture's pixels.
    dark_level = _median_level(counts[: threshold + 1])
    light_level = threshold + 1 + _median_level(counts[threshold + 1 :])
    if light_level - dark_level < 2 * MIN_CONTRAST:
        return []
    readings = (
        (dark, np.clip(light_level - gray, 0, None), True),
        (~dark, np.clip(gray - dark_level, 0, None), False),
    )
    found = [
        reading
        for mask, ink, dark in readings
        if _mostly_paper(mask)
        for lines in _line_choices(mask)
        if (reading := _tone_reading(mask & ~lines, ink, dark)) is not None
    ]
    stroke_like = [_stroke_like(reading.ink) for reading in found]
    kept = [reading for reading, like in zip(found, stroke_like, strict=True) if like]
    pairs = zip(found, stroke_like, strict=True)
    thick = {reading.dark for reading, like in pairs if _wants_core(reading.ink, like)}
    return kept + _cores(readings, thick, light_level - dark_level)


def _cores(
    tones: tuple[tuple[np.ndarray, np.ndarray, bool], ...], thick: set[bool], span: float
) -> list[Reading]:
    """The cores (see ``CORE``) of the ``thick`` tones (by darkness) that look like strokes,
    of a picture whose tones' greys are ``span`` apart."""
    cores = (_tone_reading(ink > CORE * span, ink, dark) for _, ink, dark in tones if dark in thick)
    return [core for core in cores if core is not None and _stroke_like(core.ink)]


def _wants_core(ink: np.ndarray, stroke_like: bool) -> bool:
    """Whether a tone's strokes are so thick that its core is read too: thick soft strokes
    (a marker, a blurred scan) whose soft edges close the loops of a 0, 6, 8 or 9 and leave a
    blob the model misreads. Strokes over ``THICK_TONE`` of their digit's size (MNIST's are
    about 0.12) that still look like strokes, or a blob; not a canvas, whose core is garbage
    the model may read confidently (screen photos). ``stroke_like``: ``_stroke_like(ink)``."""
    strokes = strokes_of(ink)
    width = stroke_width(strokes) / max(strokes.shape)
    return width > BLOB or (width >= THICK_TONE and stroke_like)


def _line_choices(mask: np.ndarray) -> list[np.ndarray]:
    """What to take away from a tone: nothing, and its long thin lines if it has some.

    Both are read when there are lines: in a picture with no margin a digit's own stroke (the
    bar of a 7, a 1) runs across the picture like a ruled line does; the model tells them apart.
    A removal never takes most of the ink.
    """
    lines = _long_thin_lines(mask)
    none = np.zeros_like(mask)
    return [none, lines] if 0 < lines.sum() < 0.5 * mask.sum() else [none]


def _mostly_paper(mask: np.ndarray) -> bool:
    """Whether a tone leaves most of the picture and of its border to the other (paper).

    Not asked of a narrow picture, which may be a 1 cropped to its ink, all strokes.
    """
    if _narrow(mask.shape):
        return True
    return mask.mean() <= 0.75 and ring(mask).mean() <= 0.7


def _narrow(shape: tuple[int, ...]) -> bool:
    """Whether a picture is narrow, as a 1 cropped to its ink is (no page, no table)."""
    return min(shape) < 0.4 * max(shape)


def _stroke_like(ink: np.ndarray) -> bool:
    """Whether ink cropped to its box may be a digit's strokes: not a blob (a shadow, a loop's
    inside: wider than ``BLOB`` of its size; 99% of MNIST's are under 0.25) nor a filled
    rectangle with holes (a dark canvas round a light digit, a page or a screen with a digit
    in it: over 85% of its box, or over 3/4 and canvas-like; 1% of MNIST digits fill 3/4,
    all narrow ones)."""
    strokes = strokes_of(ink)
    height, width = strokes.shape
    if stroke_width(strokes) > BLOB * max(height, width):
        return False
    if strokes.mean() <= 0.75 or min(height, width) < 0.4 * max(height, width):
        return True
    return strokes.mean() <= 0.85 and not _canvas_like(strokes)


def _canvas_like(strokes: np.ndarray) -> bool:
    """Whether a tone filling most of its box is a canvas rather than a thick marker's digit
    (an 8 or a 6 whose loops nearly closed fills 74-82% of its box): straight along three of
    its sides, or holding a digit-sized hole (the digit in a page or a screen: 3-9% of the
    box, measured on the tuning set; a marker's loops leave under 1.5%)."""
    from scipy import ndimage

    sides = (strokes[0].mean(), strokes[-1].mean(), strokes[:, 0].mean(), strokes[:, -1].mean())
    if sum(float(side) >= 0.9 for side in sides) >= 3:
        return True
    filled = ndimage.binary_fill_holes(strokes)
    holes, count = ndimage.label(filled & ~strokes)
    largest = np.bincount(holes.ravel())[1:].max() if count else 0
    return bool(largest >= 0.02 * strokes.size) and _square_cornered(filled)


def _square_cornered(filled: np.ndarray) -> bool:
    """Whether a filled shape reaches into at least two corners of its smallest enclosing
    rectangle, at any angle, as a page, a screen or a card does, even slanted or in
    perspective (two to four corners' triangles, a fifth of the sides long, 54-100% filled in
    the tuning ranges); a thick digit's outline is round (16 of 17 thick rings round a hole
    filled one corner at most)."""
    (along, across), area = _in_enclosing_rectangle(filled)
    triangle = 0.02 * area  # a corner's triangle, legs a fifth of the sides
    filled_corners = [
        bool(np.count_nonzero(u + v < 0.2) >= 0.5 * triangle)
        for u in (along, 1 - along)
        for v in (across, 1 - across)
    ]
    return sum(filled_corners) >= 2


def _in_enclosing_rectangle(filled: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], float]:
    """The filled pixels' places (0-1) along the sides of the smallest rectangle enclosing
    them, and its area (in pixels): one of its sides lies along an edge of their convex hull."""
    from scipy.spatial import ConvexHull

    edge = np.argwhere(outline(filled)).astype(float)
    # Each pixel's four corners, so that a row or a column of pixels still has an area.
    corners = np.concatenate([edge + offset for offset in ((0, 0), (0, 1), (1, 0), (1, 1))])
    hull = corners[ConvexHull(corners).vertices]
    rectangles = []
    for start, end in zip(hull, np.roll(hull, -1, axis=0), strict=True):
        side = (end - start) / np.hypot(*(end - start))
        axes = np.array([side, (-side[1], side[0])])
        spans = hull @ axes.T
        low, high = spans.min(axis=0), spans.max(axis=0)
        rectangles.append((float(np.prod(high - low)), axes, low, high))
    area, axes, low, high = min(rectangles, key=lambda rectangle: rectangle[0])
    placed = ((np.argwhere(filled) + 0.5) @ axes.T - low) / (high - low)
    return (placed[:, 0], placed[:, 1]), area


def _tone_reading(mask: np.ndarray, ink: np.ndarray, dark: bool) -> Reading | None:
    """The digit of a tone: without the table or page edges along the picture's sides, nor
    specks far smaller than its largest piece."""
    from scipy import ndimage

    labels, count = ndimage.label(mask, np.ones((3, 3)))
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    areas[_border_pieces(labels, count)] = 0
    areas[0] = 0
    if areas.max() < 4:
        return None
    strokes = (areas >= 0.05 * areas.max())[labels] & (labels > 0)
    rows, cols = np.flatnonzero(strokes.any(axis=1)), np.flatnonzero(strokes.any(axis=0))
    top, left, bottom, right = int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1
    crop = np.where(grow(strokes)[top:bottom, left:right], ink[top:bottom, left:right], 0.0)
    return Reading(max(bottom - top, right - left), crop, 0.0, (top, left, bottom, right), dark)


def _border_pieces(labels: np.ndarray, count: int) -> np.ndarray:
    """The labels of pieces along the picture's sides (``_along_a_side``) that keep within a
    fifth of it from them (as ``_in_border``): a table beside a photographed page, which a
    narrow picture is not (a 1 cropped to its ink lies along its sides)."""
    if _narrow(labels.shape):
        return np.zeros(count + 1, dtype=bool)
    band = max(1, int(0.2 * min(labels.shape)))
    inner = np.zeros(count + 1, dtype=bool)
    inner[labels[band:-band, band:-band]] = True
    contacts = np.bincount(ring(labels), minlength=count + 1)
    pieces = (contacts > 0) & ~inner
    pieces[0] = False
    for label in np.flatnonzero(pieces):  # few: only pieces along the sides
        rows, cols = np.nonzero(labels == label)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        pieces[label] = _along_a_side(height, width, contacts[label], labels.shape)
    return pieces


def _median_level(counts: np.ndarray) -> float:
    """The (lower) median of the levels a histogram counts, from its first level."""
    return float(np.searchsorted(np.cumsum(counts), (counts.sum() - 1) // 2, side="right"))


def _otsu(counts: np.ndarray) -> int:
    """Otsu's threshold of a histogram of 0-255 levels: the one best separating two tones."""
    counts = counts.astype(np.float64)
    weights = np.cumsum(counts)
    sums = np.cumsum(counts * np.arange(256))
    total, total_sum = weights[-1], sums[-1]
    below = weights[:-1]
    above = total - below
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (sums[:-1] * total - total_sum * below) ** 2 / (below * above)
    return int(np.nanargmax(np.where((below > 0) & (above > 0), between, np.nan)))
