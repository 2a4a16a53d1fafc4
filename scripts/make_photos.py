"""Draw the digit photos of data/01_raw/photos/images/ (run once; the images are committed).

Each digit is a few pen strokes (polylines on a unit square) drawn with a jittered hand, a pen
width and slant of its own, on paper or a board, then made photo-like: uneven lighting, blur,
noise, slight rotation, JPEG. File names start with the digit they show.

    python scripts/make_photos.py
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

STROKES = {
    0: [[(0.5, 0.1), (0.25, 0.25), (0.2, 0.55), (0.3, 0.85), (0.5, 0.92), (0.7, 0.82),
         (0.8, 0.5), (0.72, 0.2), (0.5, 0.1)]],
    1: [[(0.35, 0.25), (0.55, 0.1), (0.55, 0.92)]],
    2: [[(0.22, 0.3), (0.35, 0.12), (0.6, 0.1), (0.75, 0.28), (0.68, 0.5), (0.25, 0.9),
         (0.8, 0.9)]],
    3: [[(0.25, 0.15), (0.6, 0.1), (0.75, 0.28), (0.5, 0.48), (0.78, 0.68), (0.65, 0.9),
         (0.25, 0.88)]],
    4: [[(0.6, 0.92), (0.6, 0.1), (0.2, 0.65), (0.82, 0.65)]],
    5: [[(0.75, 0.1), (0.3, 0.1), (0.27, 0.45), (0.6, 0.42), (0.78, 0.62), (0.65, 0.88),
         (0.25, 0.88)]],
    6: [[(0.7, 0.1), (0.4, 0.3), (0.25, 0.65), (0.35, 0.9), (0.65, 0.88), (0.72, 0.65),
         (0.5, 0.52), (0.28, 0.65)]],
    7: [[(0.2, 0.12), (0.8, 0.12), (0.45, 0.92)]],
    8: [[(0.5, 0.5), (0.3, 0.3), (0.5, 0.1), (0.7, 0.3), (0.5, 0.5), (0.25, 0.72),
         (0.5, 0.92), (0.75, 0.72), (0.5, 0.5)]],
    9: [[(0.72, 0.35), (0.5, 0.5), (0.28, 0.35), (0.5, 0.1), (0.72, 0.35), (0.68, 0.92)]],
}  # fmt: skip

# digit, size in pixels, dark ink on light paper?, photo-like (JPEG, light, noise)?, seed
PHOTOS = [
    (0, 320, True, True, 1), (1, 200, True, False, 2), (2, 480, True, True, 3),
    (3, 260, False, False, 4), (4, 640, True, True, 5), (5, 180, False, True, 6),
    (6, 400, True, False, 7), (7, 300, True, True, 8), (8, 360, False, False, 9),
    (9, 540, True, True, 10), (2, 150, False, False, 11), (7, 720, False, True, 12),
]  # fmt: skip


def draw(digit: int, size: int, dark_on_light: bool, photo: bool, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = int(size * rng.uniform(0.9, 1.3)), size
    paper, ink = (235, 45) if dark_on_light else (30, 225)
    image = Image.new("L", (width, height), paper)
    pen = ImageDraw.Draw(image)
    slant = rng.uniform(-0.12, 0.12)
    box = 0.6 * height  # the digit fills part of the frame, off-centre
    left = rng.uniform(0.1, 0.9) * (width - box * 0.8)
    top = rng.uniform(0.15, 0.25) * height
    for stroke in STROKES[digit]:
        points = [
            (
                left + (x + slant * (0.5 - y)) * box * 0.8 + rng.normal(0, box * 0.01),
                top + y * box + rng.normal(0, box * 0.01),
            )
            for x, y in stroke
        ]
        pen.line(points, fill=ink, width=max(2, int(box * rng.uniform(0.07, 0.11))), joint="curve")
    image = image.rotate(rng.uniform(-8, 8), fillcolor=paper, resample=Image.Resampling.BICUBIC)
    if photo:
        pixels = np.asarray(image, dtype=np.float32)
        yy, xx = np.mgrid[0:height, 0:width]
        angle = rng.uniform(0, 2 * math.pi)
        light = 1 + 0.18 * (
            (xx / width - 0.5) * math.cos(angle) + (yy / height - 0.5) * math.sin(angle)
        )
        pixels = pixels * light + rng.normal(0, 6, pixels.shape)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 1.8)))
    return image


def main() -> None:
    folder = Path(__file__).resolve().parents[1] / "data" / "01_raw" / "photos" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for digit, size, dark_on_light, photo, seed in PHOTOS:
        background = "dark_on_light" if dark_on_light else "light_on_dark"
        kind, suffix = ("photo", "jpg") if photo else ("scan", "png")
        name = f"{digit}_{background}_{kind}_{size}px_{seed}.{suffix}"
        image = draw(digit, size, dark_on_light, photo, seed)
        if photo:
            image.convert("RGB").save(folder / name, quality=80)
        else:
            image.save(folder / name)
        print(folder / name)


if __name__ == "__main__":
    main()
