"""A card's MNIST figures and pictures, from one prediction pass over the test set."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from mnist_mlops.registry.model_card.card import (
    CONFUSED_PAIRS_PICTURE,
    CONFUSION_MATRIX_PICTURE,
    ConfusedPair,
    MnistAccuracy,
)

DIGITS = 10
EXAMPLE_SCALE = 3  # MNIST's 28 x 28 pixels shown at 84 x 84
CONFUSED_PAIRS = 5  # the pairs a card shows
EXAMPLES_PER_PAIR = 4  # misread test images shown per pair


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts (10, 10): rows are the true digits, columns the digits read."""
    codes = np.asarray(labels, dtype=np.int64) * DIGITS + np.asarray(predicted, dtype=np.int64)
    return np.bincount(codes, minlength=DIGITS * DIGITS).reshape(DIGITS, DIGITS)


def mnist_accuracy(
    matrix: np.ndarray,
    misread: list[tuple[int, int]],
    test: tuple[np.ndarray, np.ndarray],
    top_pairs: int = CONFUSED_PAIRS,
    examples: int = EXAMPLES_PER_PAIR,
) -> tuple[MnistAccuracy, dict[str, bytes]]:
    """Accuracy overall and per digit, the ``top_pairs`` most confused pairs, and the pictures:
    the confusion matrix and, one row per pair, up to ``examples`` of its misread test images.

    Args:
        matrix: the confusion matrix of the test set.
        misread: ``(test image index, digit read)`` of each wrong prediction.
        test: the test images (N, 28, 28) and labels (N,), indexed as in ``misread``.
        top_pairs: how many pairs to show.
        examples: how many images per pair.
    """
    matrix = np.asarray(matrix)
    images, labels = test
    wrong = matrix * (1 - np.eye(DIGITS, dtype=matrix.dtype))
    pairs, rows = [], []
    for flat in np.argsort(-wrong, axis=None, kind="stable")[:top_pairs]:
        true, read = (int(d) for d in np.unravel_index(flat, matrix.shape))
        if wrong[true, read] == 0:
            break
        pairs.append(ConfusedPair(true=true, read=read, count=int(wrong[true, read])))
        rows.append(images[[i for i, r in misread if r == read and labels[i] == true][:examples]])
    per_digit = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    accuracy = MnistAccuracy(
        images=int(matrix.sum()),
        accuracy=float(matrix.trace() / matrix.sum()),
        per_digit={digit: round(float(a), 4) for digit, a in enumerate(per_digit)},
        confusion_matrix=matrix.tolist(),
        confused_pairs=pairs,
    )
    pictures = {CONFUSION_MATRIX_PICTURE: confusion_matrix_png(matrix)}
    if pairs:
        pictures[CONFUSED_PAIRS_PICTURE] = confused_pairs_png(pairs, rows, examples)
    return accuracy, pictures


def confused_pairs_png(pairs: list[ConfusedPair], rows: list[np.ndarray], examples: int) -> bytes:
    """One row per pair: "4 read as 9", then its misread images enlarged, dark ink on white as
    they would be on paper. One picture, not one per pair: each file is a request to the
    workspace, and the basic-auth servers check the password on every request."""
    size, gap, label_width = 28 * EXAMPLE_SCALE, 4, 130
    sheet = Image.new("L", (label_width + examples * (size + gap), len(rows) * (size + gap)), 255)
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default(size=18)
    for row, (pair, images) in enumerate(zip(pairs, rows, strict=True)):
        top = row * (size + gap)
        draw.text((6, top + size // 2), f"{pair.true} read as {pair.read}", fill=0, font=font,
                  anchor="lm")  # fmt: skip
        for column, image in enumerate(images):
            digit = Image.fromarray(255 - np.asarray(image, dtype=np.uint8))
            digit = digit.resize((size, size), Image.Resampling.NEAREST)
            sheet.paste(digit, (label_width + column * (size + gap), top))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def confusion_matrix_png(matrix: np.ndarray) -> bytes:
    """The confusion matrix as an annotated heat map; the diagonal is left out of the colour
    scale so that the errors, not the hits, decide the colours."""
    matrix = np.asarray(matrix)
    errors = matrix * (1 - np.eye(DIGITS, dtype=matrix.dtype))
    figure = Figure(figsize=(5.2, 4.6), dpi=100)
    axes = figure.subplots()
    shown = axes.imshow(errors, cmap="Reds", vmin=0, vmax=max(int(errors.max()), 1))
    for (true, read), count in np.ndenumerate(matrix):
        axes.text(read, true, str(count), ha="center", va="center", fontsize=7,
                  color="white" if errors[true, read] > errors.max() / 2 else "black")  # fmt: skip
    axes.set(xticks=range(DIGITS), yticks=range(DIGITS), xlabel="digit read", ylabel="true digit")
    axes.set_title("MNIST test set: confusion matrix")
    figure.colorbar(shown, ax=axes, label="misread images")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
