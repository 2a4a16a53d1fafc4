"""Build the two picture sets of data/01_raw/ from MNIST *test* digits (run once; committed).

Each picture puts one MNIST test digit (never a training digit) into a scene real inputs come in:
a page margin around a dark canvas, a plot with axes and ticks, ruled or squared paper, a phone
photo of a page on a table, a photo of a screen, an app screenshot, a thin mouse-drawn stroke,
coloured ink on coloured paper, faint pencil, a form frame, shadows and specks, transparency and
EXIF rotation; and the scenes that have no paper around the digit or look least like MNIST: tight
crops touching 2-4 edges, low-resolution digits enlarged, thick soft strokes, a small digit in a
large empty picture, coloured or textured backgrounds, each in both polarities.

Two sets, each seeded so that the script rebuilds the same files:

- the **tuning set** (``photos/``, seed 14, 20 pictures per category, two of each digit): the
  preprocessing may be tuned on it. It also lists the 12 drawn photos of ``images/`` (made by
  ``make_photos.py``) as the category ``drawn``.
- the **report set** (``report_pictures/``, seed 2026, 100 pictures per category): other MNIST
  test digits (none of the tuning set's), other seeds, and for the new scenes other ranges of
  size, blur, stroke width, crop tightness and JPEG quality (``REPORT_RANGES``). Accuracy is
  reported, gated and written in the model card on it only; never tune on it.

    python scripts/make_real_pictures.py [tuning|report]
"""

from __future__ import annotations

import functools
import io
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from skimage.morphology import skeletonize

from mnist_mlops.datasets import IDXDataset
from mnist_mlops.datasets.picture_set_dataset import PictureSetDataset

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "data" / "01_raw" / "photos"
REPORT = ROOT / "data" / "01_raw" / "report_pictures"

Rgb = tuple[int, int, int]


def digit_alpha(digit: np.ndarray, size: int) -> np.ndarray:
    """The 28 x 28 MNIST digit scaled to ``size`` pixels as ink coverage 0-1 with smooth edges."""
    big = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC))
    return np.clip((big.astype(np.float32) / 255 - 0.2) / 0.5, 0, 1)


def paint(canvas: np.ndarray, alpha: np.ndarray, colour: Rgb, top: int, left: int) -> None:
    """Lay ink of ``colour`` with coverage ``alpha`` onto an RGB float canvas, in place."""
    h, w = alpha.shape
    region = canvas[top : top + h, left : left + w]
    a = alpha[: region.shape[0], : region.shape[1], None]
    region[:] = region * (1 - a) + np.array(colour, dtype=np.float32) * a


def blank(height: int, width: int, colour: Rgb) -> np.ndarray:
    return np.full((height, width, 3), colour, np.float32)


def to_image(canvas: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(canvas, 0, 255).round().astype(np.uint8))


def photo_effects(image: Image.Image, rng: np.random.Generator, noise: float = 6) -> Image.Image:
    """Uneven light, sensor noise and lens blur, as a phone camera adds them."""
    pixels = np.asarray(image, dtype=np.float32)
    h, w = pixels.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, 2 * math.pi)
    light = 1 + rng.uniform(0.1, 0.3) * (
        (xx / w - 0.5) * math.cos(angle) + (yy / h - 0.5) * math.sin(angle)
    )
    pixels = pixels * light[..., None] + rng.normal(0, noise, pixels.shape)
    return to_image(pixels).filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.4)))


def perspective(
    image: Image.Image, rng: np.random.Generator, amount: float, fill: Rgb
) -> Image.Image:
    """The picture seen at a slant: each corner moved by up to ``amount`` of the size."""
    w, h = image.size
    corners = np.array([(0, 0), (w, 0), (w, h), (0, h)], dtype=np.float64)
    moved = corners + rng.uniform(-amount, amount, (4, 2)) * (w, h)
    rows = []
    for (x, y), (u, v) in zip(corners, moved, strict=True):
        rows.append([u, v, 1, 0, 0, 0, -x * u, -x * v])
        rows.append([0, 0, 0, u, v, 1, -y * u, -y * v])
    coefficients = np.linalg.solve(np.array(rows), corners.reshape(-1))
    return image.transform(
        image.size,
        Image.Transform.PERSPECTIVE,
        tuple(coefficients),
        Image.Resampling.BICUBIC,
        fillcolor=fill,
    )


def jpeg(image: Image.Image, quality: int, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, **kwargs)
    return buffer.getvalue()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# Each scene draws one digit (28 x 28 uint8) and returns (file suffix, encoded bytes).
def margin(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """A light digit on a dark canvas, pasted on a white page with uneven margins."""
    side = int(rng.integers(140, 260))
    canvas = blank(side, side, tuple(int(v) for v in rng.integers(0, 45, 3)))
    paint(canvas, digit_alpha(digit, side), (250, 250, 250), 0, 0)
    top, left, bottom, right = (int(v) for v in rng.integers(12, 70, 4))
    page = blank(side + top + bottom, side + left + right, (255, 255, 255))
    page[top : top + side, left : left + side] = canvas
    return "png", png(to_image(page))


def plot(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """The digit as a plotted image: axes, ticks, tick labels, a title, sometimes a colour bar."""
    cmap = ["gray", "gray_r", "viridis", "binary", "magma", "Greys"][int(rng.integers(6))]
    figure, axes = plt.subplots(figsize=(rng.uniform(2.6, 4), rng.uniform(2.6, 4)), dpi=80)
    shown = axes.imshow(
        digit, cmap=cmap, interpolation=["nearest", "bilinear"][int(rng.integers(2))]
    )
    axes.set_title(["sample", "test image", "input", "prediction?"][int(rng.integers(4))])
    if rng.random() < 0.4:
        figure.colorbar(shown, ax=axes)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return "png", buffer.getvalue()


def lined_paper(height: int, width: int, rng: np.random.Generator, squared: bool) -> np.ndarray:
    paper = blank(height, width, (250, 250, 245))
    step = int(rng.integers(14, 22) if squared else rng.integers(24, 36))
    colour = np.array((150, 180, 225) if squared else (120, 160, 220), np.float32)
    weight = rng.uniform(0.5, 0.8)
    for y in range(int(rng.integers(0, step)), height, step):
        paper[y : y + 2] = paper[y : y + 2] * (1 - weight) + colour * weight
    if squared:
        for x in range(int(rng.integers(0, step)), width, step):
            paper[:, x : x + 2] = paper[:, x : x + 2] * (1 - weight) + colour * weight
    else:
        x = int(width * rng.uniform(0.05, 0.15))
        paper[:, x : x + 2] = (225, 90, 90)
    return paper


def on_paper(digit: np.ndarray, rng: np.random.Generator, squared: bool) -> Image.Image:
    h = int(rng.integers(240, 360))
    w = h + int(rng.integers(0, 120))
    paper = lined_paper(h, w, rng, squared)
    side = int(h * rng.uniform(0.45, 0.7))
    ink = [(20, 20, 30), (20, 40, 140), (10, 10, 10)][int(rng.integers(3))]
    paint(
        paper,
        digit_alpha(digit, side),
        ink,
        int(rng.integers(0, h - side)),
        int(rng.integers(w // 6, w - side)),
    )
    return to_image(paper).rotate(
        rng.uniform(-4, 4), Image.Resampling.BICUBIC, fillcolor=(250, 250, 245)
    )


def ruled(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """Pen on ruled paper: blue lines across the digit, a red margin line."""
    return "jpg", jpeg(on_paper(digit, rng, squared=False), int(rng.integers(80, 95)))


def squared(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """Pen on squared (grid) paper."""
    return "jpg", jpeg(on_paper(digit, rng, squared=True), int(rng.integers(80, 95)))


def phone_photo(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """A phone photo of a page on a table: page edges, perspective, light, noise, blur, JPEG."""
    size = int(rng.integers(360, 560))
    table = tuple(int(v) for v in rng.integers((60, 40, 20), (140, 100, 70)))
    scene = blank(size, size, table)
    inset = [int(v) for v in rng.integers(-size // 10, size // 6, 4)]  # page edges, some cut
    top, left, bottom, right = (max(0, v) for v in inset)
    scene[top : size - bottom, left : size - right] = (238, 236, 228)
    side = int(size * rng.uniform(0.3, 0.5))
    paint(
        scene,
        digit_alpha(digit, side),
        (25, 25, 35),
        int(size * 0.5 - side * rng.uniform(0.4, 0.6)),
        int(size * 0.5 - side * rng.uniform(0.4, 0.6)),
    )
    image = perspective(to_image(scene), rng, 0.08, table)
    return "jpg", jpeg(photo_effects(image, rng), int(rng.integers(60, 85)))


def screen_photo(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """A photo of a screen showing a light digit: bezel, room around it, glare, moire, JPEG."""
    size = int(rng.integers(360, 520))
    scene = blank(size, size, tuple(int(v) for v in rng.integers(120, 200, 3)))
    bezel = int(size * rng.uniform(0.08, 0.14))
    scene[bezel // 2 : size - bezel // 2, bezel // 2 : size - bezel // 2] = (15, 15, 18)
    scene[bezel : size - bezel, bezel : size - bezel] = (35, 38, 45)
    side = int((size - 2 * bezel) * rng.uniform(0.55, 0.85))
    offset = bezel + int(rng.integers(0, size - 2 * bezel - side + 1))
    paint(
        scene,
        digit_alpha(digit, side),
        (235, 240, 250),
        offset,
        bezel + (size - 2 * bezel - side) // 2,
    )
    yy, xx = np.mgrid[0:size, 0:size]
    scene += 10 * np.sin(xx * rng.uniform(0.8, 1.3) + yy * rng.uniform(0.2, 0.6))[..., None]
    scene += (
        60
        * np.exp(
            -(
                ((xx - rng.uniform(0, size)) ** 2 + (yy - rng.uniform(0, size)) ** 2)
                / (2 * (size / 4) ** 2)
            )
        )[..., None]
    )
    image = perspective(to_image(scene), rng, 0.06, (150, 150, 150))
    return "jpg", jpeg(photo_effects(image, rng, noise=5), int(rng.integers(65, 88)))


def screenshot(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """A drawing app's window: title bar, toolbar buttons, a bordered white canvas."""
    w, h = int(rng.integers(300, 420)), int(rng.integers(300, 400))
    window = Image.new("RGB", (w, h), (236, 236, 236))
    pen = ImageDraw.Draw(window)
    pen.rectangle((0, 0, w, 28), fill=(210, 210, 215))
    for i, colour in enumerate([(237, 106, 94), (245, 191, 79), (98, 197, 84)]):
        pen.ellipse((10 + 20 * i, 8, 22 + 20 * i, 20), fill=colour)
    pen.text(
        (w // 2 - 40, 8), "Sketch - untitled", fill=(60, 60, 60), font=ImageFont.load_default(12)
    )
    for i in range(int(rng.integers(3, 7))):
        pen.rectangle(
            (8 + 34 * i, 36, 34 + 34 * i, 60), fill=(250, 250, 250), outline=(150, 150, 150)
        )
        pen.rectangle(
            (15 + 34 * i, 43, 27 + 34 * i, 53), fill=tuple(int(v) for v in rng.integers(30, 200, 3))
        )
    box = (12, 70, w - 12, h - 12)
    pen.rectangle(box, fill=(255, 255, 255), outline=(120, 120, 120), width=2)
    canvas = np.asarray(window, dtype=np.float32).copy()
    side = int(min(box[2] - box[0], box[3] - box[1]) * rng.uniform(0.5, 0.9))
    top = int(rng.integers(box[1] + 4, box[3] - side - 3))
    left = int(rng.integers(box[0] + 4, box[2] - side - 3))
    paint(canvas, digit_alpha(digit, side), (0, 0, 0), top, left)
    return "png", png(to_image(canvas))


def thin_pen(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """A thin mouse stroke: the digit's skeleton drawn 1-3 pixels wide on a large canvas."""
    size = int(rng.integers(220, 420))
    skeleton = skeletonize(digit_alpha(digit, size) > 0.5)
    width = int(rng.integers(1, 4))
    if width > 1:
        skeleton = np.asarray(
            Image.fromarray(skeleton).filter(ImageFilter.MaxFilter(2 * (width // 2) + 1))
        )
    canvas = blank(size, size, (255, 255, 255))
    paint(canvas, skeleton.astype(np.float32), (0, 0, 0), 0, 0)
    return "png", png(to_image(canvas))


def coloured_ink(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """Coloured ink on coloured paper: a sticky note with blue, red, green or purple pen."""
    size = int(rng.integers(220, 360))
    paper = [(252, 238, 120), (250, 200, 210), (200, 240, 200), (200, 225, 250), (255, 220, 170)]
    ink = [(30, 60, 200), (200, 30, 40), (20, 130, 60), (110, 40, 150)]
    canvas = blank(size, size, paper[int(rng.integers(len(paper)))])
    side = int(size * rng.uniform(0.55, 0.85))
    paint(
        canvas,
        digit_alpha(digit, side),
        ink[int(rng.integers(len(ink)))],
        int(rng.integers(0, size - side)),
        int(rng.integers(0, size - side)),
    )
    image = to_image(canvas).rotate(
        rng.uniform(-10, 10),
        Image.Resampling.BICUBIC,
        fillcolor=tuple(int(v) for v in canvas[0, 0]),
    )
    return "jpg", jpeg(photo_effects(image, rng, noise=4), int(rng.integers(75, 92)))


def low_contrast(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """Faint pencil on grey paper, or dim chalk on a grey board: 25-60 levels of contrast."""
    size = int(rng.integers(200, 340))
    paper = float(rng.uniform(150, 215))
    contrast = float(rng.uniform(25, 60)) * (1 if rng.random() < 0.3 else -1)
    canvas = blank(size, size, (paper, paper, paper))
    side = int(size * rng.uniform(0.5, 0.8))
    level = paper + contrast
    paint(
        canvas,
        digit_alpha(digit, side),
        (level, level, level),
        int(rng.integers(0, size - side)),
        int(rng.integers(0, size - side)),
    )
    canvas += rng.normal(0, 3, canvas.shape)
    return "jpg", jpeg(to_image(canvas).filter(ImageFilter.GaussianBlur(0.7)), 90)


def framed(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """A digit written in a form's box: frames of other colours, one sometimes cut by the edge."""
    size = int(rng.integers(200, 340))
    canvas = Image.new("RGB", (size, size), (252, 252, 252))
    pen = ImageDraw.Draw(canvas)
    frame = [(0, 0, 0), (200, 40, 40), (40, 90, 200), (90, 90, 90)][int(rng.integers(4))]
    outer = int(rng.integers(-10, 12))
    pen.rectangle(
        (outer, outer, size - 1 - outer, size - 1 - outer),
        outline=frame,
        width=int(rng.integers(2, 7)),
    )
    inner = outer + int(rng.integers(10, 22))
    if rng.random() < 0.5:
        pen.rectangle((inner, inner, size - 1 - inner, size - 1 - inner), outline=frame, width=2)
    pixels = np.asarray(canvas, dtype=np.float32).copy()
    room = size - 2 * (inner + 8)
    side = int(room * rng.uniform(0.75, 1.0))
    paint(
        pixels,
        digit_alpha(digit, side),
        (15, 15, 15),
        inner + 8 + int(rng.integers(0, room - side + 1)),
        inner + 8 + int(rng.integers(0, room - side + 1)),
    )
    return "png", png(to_image(pixels))


def shadow_specks(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """A page under a hand's or phone's shadow, with dust specks and crumbs, photographed."""
    size = int(rng.integers(260, 420))
    canvas = blank(size, size, (240, 238, 232))
    side = int(size * rng.uniform(0.4, 0.65))
    paint(
        canvas,
        digit_alpha(digit, side),
        (20, 20, 25),
        int(rng.integers(0, size - side)),
        int(rng.integers(0, size - side)),
    )
    shade = Image.new("L", (size, size), 0)
    corner = [(0, 0), (size, 0), (size, size), (0, size)][int(rng.integers(4))]
    points = [corner] + [tuple(int(v) for v in rng.uniform(0, size, 2)) for _ in range(3)]
    ImageDraw.Draw(shade).polygon(points, fill=255)
    shade = np.asarray(shade.filter(ImageFilter.GaussianBlur(size / 15)), np.float32) / 255
    canvas *= (1 - rng.uniform(0.35, 0.6) * shade)[..., None]
    for _ in range(int(rng.integers(15, 50))):
        y, x = (int(v) for v in rng.integers(0, size - 3, 2))
        r = int(rng.integers(1, 3))
        canvas[y : y + r, x : x + r] = rng.uniform(20, 120)
    return "jpg", jpeg(photo_effects(to_image(canvas), rng, noise=4), int(rng.integers(70, 90)))


def transparent_or_rotated(digit: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """A PNG whose background is transparent, or a phone JPEG stored sideways with an EXIF tag."""
    size = int(rng.integers(200, 340))
    alpha = digit_alpha(digit, size)
    if rng.random() < 0.5:
        colour = [(0, 0, 0), (255, 255, 255), (30, 60, 200)][int(rng.integers(3))]
        rgba = np.zeros((size, size, 4), np.uint8)
        rgba[..., :3] = colour
        rgba[..., 3] = (alpha * 255).round().astype(np.uint8)
        return "png", png(Image.fromarray(rgba, "RGBA"))
    canvas = blank(size, size, (235, 235, 230))
    paint(canvas, alpha, (30, 30, 30), 0, 0)
    orientation = [3, 6, 8][int(rng.integers(3))]  # stored turned; the tag says how to turn back
    stored = {
        3: Image.Transpose.ROTATE_180,
        6: Image.Transpose.ROTATE_90,
        8: Image.Transpose.ROTATE_270,
    }
    exif = Image.Exif()
    exif[0x0112] = orientation
    return "jpg", jpeg(
        photo_effects(to_image(canvas), rng).transpose(stored[orientation]), 85, exif=exif
    )


@dataclass(frozen=True)
class Ranges:
    """The new scenes' parameters in one set: the report set draws from other ranges."""

    side: tuple[int, int]  # picture side, pixels
    low_res: tuple[int, int]  # a low-resolution digit's drawn size, pixels
    blur: tuple[float, float]  # blur radius, as a fraction of the digit's size
    thicken: tuple[float, float]  # stroke growth, as a fraction of the digit's size
    quality: tuple[int, int]  # JPEG quality
    small: tuple[float, float]  # a small digit's size, as a fraction of the picture


TUNING_RANGES = Ranges((140, 240), (10, 16), (0.01, 0.03), (0.02, 0.05), (80, 95), (0.1, 0.16))
REPORT_RANGES = Ranges((90, 320), (8, 20), (0.005, 0.045), (0.01, 0.07), (55, 92), (0.07, 0.2))


def colours(rng: np.random.Generator, dark_ink: bool) -> tuple[Rgb, Rgb]:
    """Paper and ink of a scene, grey or tinted, ``dark_ink`` on light paper or the reverse."""
    light = tuple(int(v) for v in rng.integers(185, 256, 3))
    dark = tuple(int(v) for v in rng.integers(0, 70, 3))
    return (light, dark) if dark_ink else (dark, light)


def thick_alpha(digit: np.ndarray, size: int, rng: np.random.Generator, r: Ranges) -> np.ndarray:
    """The digit at ``size`` with strokes grown and softened (a felt pen, a blurred scan)."""
    alpha = Image.fromarray((digit_alpha(digit, size) * 255).astype(np.uint8))
    grow = int(size * rng.uniform(*r.thicken)) // 2 * 2 + 1
    if grow > 1:
        alpha = alpha.filter(ImageFilter.MaxFilter(grow))
    alpha = alpha.filter(ImageFilter.GaussianBlur(size * rng.uniform(*r.blur)))
    return np.asarray(alpha, np.float32) / 255


def ink_box(alpha: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(alpha.max(axis=1) > 0.3), np.flatnonzero(alpha.max(axis=0) > 0.3)
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def tight_crop(digit: np.ndarray, rng: np.random.Generator, r: Ranges) -> tuple[str, bytes]:
    """A digit cut out of a form or a scan: its box touches 2-4 of the picture's edges."""
    size = int(rng.integers(*r.side))
    paper, ink = colours(rng, dark_ink=rng.random() < 0.5)
    alpha = thick_alpha(digit, size, rng, r)
    canvas = blank(size, size, paper)
    paint(canvas, alpha, ink, 0, 0)
    top, left, bottom, right = ink_box(alpha)
    touching = rng.permutation(4)[: int(rng.integers(2, 5))]
    margins = [0 if side in touching else int(rng.integers(2, size // 8)) for side in range(4)]
    crop = canvas[
        max(0, top - margins[0]) : bottom + margins[2],
        max(0, left - margins[1]) : right + margins[3],
    ]
    return "jpg", jpeg(to_image(crop), int(rng.integers(*r.quality)))


def low_resolution(digit: np.ndarray, rng: np.random.Generator, r: Ranges) -> tuple[str, bytes]:
    """A digit scanned at 8-20 pixels, then enlarged with bilinear or bicubic interpolation."""
    small = int(rng.integers(r.low_res[0], r.low_res[1] + 1))
    paper, ink = colours(rng, dark_ink=rng.random() < 0.5)
    alpha = digit_alpha(digit, 4 * small)
    top, left, bottom, right = ink_box(alpha)
    pad = int(rng.integers(0, small // 2 + 1))  # from a tight crop to some paper
    alpha = np.pad(alpha[top:bottom, left:right], pad)
    canvas = blank(*alpha.shape, paper)
    paint(canvas, alpha, ink, 0, 0)
    scale = small / max(alpha.shape)
    shrunk = to_image(canvas).resize(
        (max(1, round(alpha.shape[1] * scale)), max(1, round(alpha.shape[0] * scale))),
        Image.Resampling.BOX,
    )
    factor = rng.uniform(*r.side) / max(shrunk.size)
    method = [Image.Resampling.BILINEAR, Image.Resampling.BICUBIC][int(rng.integers(2))]
    enlarged = shrunk.resize((round(shrunk.width * factor), round(shrunk.height * factor)), method)
    return "jpg", jpeg(enlarged, int(rng.integers(*r.quality)))


def thick_soft(digit: np.ndarray, rng: np.random.Generator, r: Ranges) -> tuple[str, bytes]:
    """Thick, soft strokes (a marker, an out-of-focus photo) with a little paper around them."""
    size = int(rng.integers(*r.side))
    paper, ink = colours(rng, dark_ink=rng.random() < 0.5)
    side = int(size * rng.uniform(0.6, 0.9))
    canvas = blank(size, size, paper)
    stronger = Ranges(
        r.side, r.low_res, r.blur, (2 * r.thicken[0], 2 * r.thicken[1]), r.quality, r.small
    )
    paint(
        canvas, thick_alpha(digit, side, rng, stronger), ink, *rng.integers(0, size - side + 1, 2)
    )
    return "jpg", jpeg(to_image(canvas), int(rng.integers(*r.quality)))


def small_digit(digit: np.ndarray, rng: np.random.Generator, r: Ranges) -> tuple[str, bytes]:
    """A small digit somewhere in a large, nearly empty picture."""
    size = int(rng.integers(3 * r.side[0], 3 * r.side[1]))
    paper, ink = colours(rng, dark_ink=rng.random() < 0.5)
    side = max(16, int(size * rng.uniform(*r.small)))
    canvas = blank(size, size, paper)
    paint(canvas, digit_alpha(digit, side), ink, *rng.integers(0, size - side + 1, 2))
    canvas += rng.normal(0, 3, canvas.shape)
    return "jpg", jpeg(to_image(canvas), int(rng.integers(*r.quality)))


def textured(digit: np.ndarray, rng: np.random.Generator, r: Ranges) -> tuple[str, bytes]:
    """Coloured ink on a coloured, textured background: grain, stripes and blotches."""
    size = int(rng.integers(*r.side))
    dark_ink = rng.random() < 0.5
    paper, ink = colours(rng, dark_ink)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, period = rng.uniform(0, math.pi), rng.uniform(4, 20)
    stripes = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
    blotches = np.asarray(
        Image.fromarray(rng.integers(0, 255, (8, 8)).astype(np.uint8)).resize(
            (size, size), Image.Resampling.BICUBIC
        ),
        np.float32,
    )
    texture = rng.uniform(5, 15) * stripes + rng.uniform(0.05, 0.15) * (blotches - 128)
    canvas = blank(size, size, paper) + (texture + rng.normal(0, 6, (size, size)))[..., None]
    side = int(size * rng.uniform(0.45, 0.85))
    paint(canvas, thick_alpha(digit, side, rng, r), ink, *rng.integers(0, size - side + 1, 2))
    return "jpg", jpeg(to_image(canvas), int(rng.integers(*r.quality)))


Scene = Callable[[np.ndarray, np.random.Generator], tuple[str, bytes]]


SCENES: dict[str, Scene] = {
    scene.__name__: scene
    for scene in (margin, plot, ruled, squared, phone_photo, screen_photo, screenshot, thin_pen,
                  coloured_ink, low_contrast, framed, shadow_specks, transparent_or_rotated)
}  # fmt: skip


NEW_SCENES = (tight_crop, low_resolution, thick_soft, small_digit, textured)


def drawn_photos() -> list[dict]:
    """The 12 photos of make_photos.py, listed in the set as the category ``drawn``."""
    return [
        {"file": f"images/{path.name}", "digit": int(path.name[0]), "category": "drawn",
         "image": path.read_bytes()}
        for path in sorted((PHOTOS / "images").glob("[0-9]_*"))
    ]  # fmt: skip


def scenes(ranges: Ranges) -> dict[str, Scene]:
    """Every category's scene; the new ones with this set's ranges."""
    bound = {scene.__name__: functools.partial(scene, r=ranges) for scene in NEW_SCENES}
    return SCENES | bound


def tuning_indices() -> set[int]:
    """The MNIST test digits of the tuning set (the number ending each file's name)."""
    files = PictureSetDataset(filepath=str(PHOTOS / "labels.csv")).load()["file"]
    return {int(Path(name).stem.rsplit("_", 1)[1]) for name in files if name.startswith("real/")}


def build(
    seed: int, per_category: int, ranges: Ranges, excluded: set[int], rows: list[dict]
) -> pd.DataFrame:
    """The set's pictures: ``per_category`` per scene, a tenth of each digit, each MNIST test
    digit at most once and none of ``excluded``."""
    mnist = ROOT / "data" / "01_raw" / "mnist"
    images = IDXDataset(filepath=str(mnist / "t10k-images-idx3-ubyte.gz")).load()
    labels = IDXDataset(filepath=str(mnist / "t10k-labels-idx1-ubyte.gz")).load()
    rng = np.random.default_rng(seed)
    unused = {d: list(rng.permutation(np.flatnonzero(labels == d))) for d in range(10)}
    unused = {d: [i for i in indices if int(i) not in excluded] for d, indices in unused.items()}
    for category, scene in scenes(ranges).items():
        for n in range(per_category):
            digit = n % 10
            index = int(unused[digit].pop())  # each test digit at most once
            suffix, payload = scene(images[index], rng)
            rows.append({"file": f"real/{category}/{digit}_{category}_{index}.{suffix}",
                         "digit": digit, "category": category, "image": payload})  # fmt: skip
    return pd.DataFrame(rows)


def main(which: str) -> None:
    if which == "tuning":
        pictures = build(14, 20, TUNING_RANGES, set(), drawn_photos())
        PictureSetDataset(filepath=str(PHOTOS / "labels.csv")).save(pictures)
    else:
        pictures = build(2026, 100, REPORT_RANGES, tuning_indices(), [])
        PictureSetDataset(filepath=str(REPORT / "labels.csv")).save(pictures)
    print(f"{len(pictures)} pictures in {pictures['category'].nunique()} categories ({which})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tuning")
