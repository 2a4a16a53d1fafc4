"""Each stage of the preprocessing on its own: decode, locate, polarity, to MNIST."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import ndimage

from mnist_mlops.serving.preprocessing import decode, locate, polarity, to_mnist
from mnist_mlops.serving.preprocessing.masks import stroke_width


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def tight_digit(mnist_raw, index: int = 0, side: int = 120, dark_ink: bool = True) -> np.ndarray:
    """An MNIST test digit enlarged and cropped to its ink: no paper around it."""
    digit = mnist_raw["test_images"][index]
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC))
    rows, cols = np.flatnonzero(big.max(axis=1) > 64), np.flatnonzero(big.max(axis=0) > 64)
    crop = big[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)
    return 255 - crop if dark_ink else crop


def thick_soft(mnist_raw, index: int, dark_ink: bool = True, side: int = 150) -> np.ndarray:
    """An MNIST test digit drawn with a marker and blurred (strokes grown by 12% of its size,
    a blur of 3.5%: a thick soft scene), with a little paper around it, at the working size."""
    alpha = Image.fromarray(mnist_raw["test_images"][index]).resize((side, side))
    alpha = alpha.filter(ImageFilter.MaxFilter(int(0.12 * side) // 2 * 2 + 1))
    alpha = np.pad(np.asarray(alpha.filter(ImageFilter.GaussianBlur(0.035 * side))), side // 6)
    paper, ink = (230, 30) if dark_ink else (30, 230)
    return decode.work_grayscale(png(paper + (ink - paper) * (alpha / 255.0)))


def test_decode_scales_a_picture_to_the_working_size():
    gray = decode.work_grayscale(png(np.full((400, 200), 90)))
    assert gray.shape == (decode.WORK_SIDE, decode.WORK_SIDE // 2) and gray.max() == 90


def test_decode_reads_a_16_bit_grey_scan_as_its_8_bit_greys():
    """Scanners save 16-bit grey PNGs; converted by Pillow they clip to white."""
    greys = np.tile(np.linspace(0, 255, 96).round().astype(np.uint16), (96, 1))
    buffer = io.BytesIO()
    Image.fromarray(greys * 257).save(buffer, format="PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode == "I;16"
    np.testing.assert_allclose(decode.work_grayscale(buffer.getvalue()), greys, atol=0.01)


def test_decode_refuses_what_is_not_a_batch_of_images():
    with pytest.raises(decode.InvalidInput, match="N x 28 x 28"):
        decode.pixels_from_array([[1, 2, 3]])


def test_locate_reads_a_digit_with_no_margin_as_a_tone_of_the_picture(mnist_raw):
    gray = tight_digit(mnist_raw)
    [reading] = [r for r in locate.whole_picture_readings(gray) if r.dark]
    top, left, bottom, right = reading.box  # all of it: nothing cut as a page edge
    assert bottom - top >= 0.95 * gray.shape[0] and right - left >= 0.95 * gray.shape[1]


def test_locate_takes_a_shadow_for_no_digit():
    shade = np.full((96, 96), 230.0)
    shade[:45, :45] = 90  # a corner in shadow: a blob, not strokes; the rest is paper
    assert locate.whole_picture_readings(shade) == []


@pytest.mark.parametrize("dark_ink", [True, False])
def test_polarity_drops_the_inside_of_a_loop_of_a_tight_crop(mnist_raw, dark_ink):
    """MNIST test digit 3 is a 0: its inside is paper, never a candidate of its own."""
    gray = tight_digit(mnist_raw, index=3, side=90, dark_ink=dark_ink)
    inks = polarity.digit_inks(gray)
    assert inks and all(ink.shape[0] >= 0.9 * gray.shape[0] for ink in inks)


def test_to_mnist_thins_thick_strokes_and_thickens_thin_ones():
    thick, thin = np.zeros((80, 80)), np.zeros((80, 80))
    thick[:, 25:55] = 255  # a 1 drawn with a marker: 7.5 pixels wide once fitted in 20 x 20
    thin[:, 39:41] = 255  # and with a hairline pen: half a pixel
    assert 2 <= stroke_width(to_mnist.mnist_like(thick) > 127) <= 5.5  # half-way to MNIST's
    assert 1.5 <= stroke_width(to_mnist.mnist_like(thin) > 127) <= 4.5  # MNIST's: 2-4 pixels


def test_locate_keeps_a_thick_markers_8_whose_loops_nearly_closed():
    """Its ink fills over 3/4 of its box, like a canvas, but it has no canvas's straight sides
    nor a hole the size of a digit."""
    from PIL import ImageDraw

    picture = Image.new("L", (96, 96), 225)
    pen = ImageDraw.Draw(picture)
    pen.ellipse((30, 12, 62, 46), outline=40, width=15)
    pen.ellipse((28, 40, 64, 82), outline=40, width=16)
    gray = np.asarray(picture, np.float32)
    ink = gray[12:83, 28:65] < 128
    assert 0.75 < ink.mean() < 0.85  # what a canvas was taken for
    dark = [r for r in locate.whole_picture_readings(gray) if r.dark]
    assert dark and dark[0].box == (12, 28, 83, 65)


def test_locate_takes_a_slanted_page_round_a_digit_for_paper():
    """A page filling most of its box, slanted (no straight sides), with a digit in it: a
    canvas, not a digit, by the hole its digit leaves."""
    from PIL import ImageDraw

    picture = Image.new("L", (96, 96), 30)  # a dark table
    pen = ImageDraw.Draw(picture)
    pen.polygon([(14, 8), (90, 14), (84, 90), (8, 84)], fill=235)  # the page
    pen.line([(48, 30), (46, 66)], fill=30, width=6)  # a 1 in dark ink
    gray = np.asarray(picture, np.float32)
    assert not [r for r in locate.whole_picture_readings(gray) if not r.dark]


def test_locate_takes_a_short_wedge_of_table_for_no_digit():
    """A page slanted on a dark table leaves a wedge of table along the picture's side, a
    third of it long: the table, not the digit, though it is larger than a thin 1."""
    from PIL import ImageDraw

    picture = Image.new("L", (96, 96), 40)
    pen = ImageDraw.Draw(picture)
    pen.polygon([(0, 0), (95, 0), (95, 95), (36, 95), (0, 84)], fill=230)  # the page
    pen.line([(50, 28), (47, 66)], fill=40, width=3)  # a 1
    gray = np.asarray(picture, np.float32)
    light_paper, _ = locate.backgrounds(gray)
    reading = locate.local_reading(gray, light_paper - gray, dark=True)
    assert reading is not None and reading.box == (27, 45, 68, 53)
    assert [ink.shape for ink in polarity.digit_inks(gray)] == [(39, 6)]


def thick_zero() -> np.ndarray:
    """A thick marker's 0 on light paper: its ring fills 80% of its box round a hole of 11%,
    as a page round its digit does, but its corners are round."""
    from PIL import ImageDraw

    picture = Image.new("L", (96, 96), 225)
    ImageDraw.Draw(picture).rounded_rectangle((22, 8, 73, 87), radius=20, outline=40, width=20)
    return np.asarray(picture, np.float32)


def test_locate_reads_a_thick_zero_not_a_page():
    gray = thick_zero()
    assert 0.75 < (gray[8:88, 22:74] < 128).mean() < 0.85  # what a page was taken for
    dark = [r for r in locate.whole_picture_readings(gray) if r.dark]
    assert dark and dark[0].box == (8, 22, 88, 74)


def test_a_thick_zero_is_no_plot():
    """Its widest rows, as long as a plot's axes, go on beyond them in round caps."""
    gray = thick_zero()
    assert locate.plot_box(gray) is None
    assert all(ink.shape[0] == 80 for ink in polarity.digit_inks(gray))


def test_polarity_reads_a_digit_in_a_thick_frame_taken_for_a_plot():
    """A form's thick frame set in from the edges looks like a plot's axes; its inner side is
    not the paper, and the digit inside is read."""
    from PIL import ImageDraw

    picture = Image.new("L", (96, 96), 252)
    pen = ImageDraw.Draw(picture)
    pen.rectangle((4, 4, 91, 91), outline=0, width=4)
    pen.line([(40, 30), (56, 30), (44, 66)], fill=15, width=4)  # a 7
    gray = np.asarray(picture, np.float32)
    assert locate.plot_box(gray) is not None
    inks = polarity.digit_inks(gray)
    assert inks and 30 <= max(inks[0].shape) <= 45


@pytest.mark.parametrize("dark_ink", [True, False])
@pytest.mark.parametrize("index", [435, 7195, 7492])  # an 8, a 5 and a 2
def test_polarity_drops_the_pieces_of_thick_soft_strokes(mnist_raw, index, dark_ink):
    """The background filter takes strokes wider than it, and the loops between them, for
    paper: the local reading is pieces of the digit (the model read a thick 5's lower half as a
    2 more confidently than the 5). The whole-picture readings, which see all of it, are kept."""
    gray = thick_soft(mnist_raw, index, dark_ink)
    whole = [reading.ink for reading in locate.whole_picture_readings(gray)]
    inks = polarity.digit_inks(gray)
    assert inks and all(any(np.array_equal(ink, w) for w in whole) for ink in inks)


@pytest.mark.parametrize("dark_ink", [True, False])
def test_locate_reads_a_thick_soft_tone_by_its_core_too(mnist_raw, dark_ink):
    """MNIST test digit 3 is a 0: drawn thick and soft, its loop nearly closes (a blob the
    model misreads); the tone's core, without the soft edges, has the loop open."""
    holes = []
    for reading in locate.whole_picture_readings(thick_soft(mnist_raw, 3, dark_ink)):
        strokes = reading.ink > 0.4 * reading.ink.max()
        holes.append((ndimage.binary_fill_holes(strokes) & ~strokes).mean())
    assert len(holes) == 2 and min(holes) < 0.01 and max(holes) > 0.03
