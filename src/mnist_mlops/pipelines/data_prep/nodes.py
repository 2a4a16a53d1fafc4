"""Nodes of the data_prep pipeline."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from mnist_mlops.datasets import ArrayBundle
from mnist_mlops.pipelines.data_prep.parameters import DataPrepParameters

logger = logging.getLogger(__name__)

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


class DataValidationError(ValueError):
    """The raw MNIST arrays are not what the pipeline expects."""


def _validate_split(name: str, images: np.ndarray, labels: np.ndarray) -> None:
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataValidationError(
            f"{name} images have shape {images.shape}, expected (N, {IMAGE_SHAPE[0]}, "
            f"{IMAGE_SHAPE[1]})"
        )
    if images.dtype != np.uint8:
        raise DataValidationError(f"{name} images have dtype {images.dtype}, expected uint8")
    if labels.ndim != 1:
        raise DataValidationError(f"{name} labels have shape {labels.shape}, expected (N,)")
    if len(images) != len(labels):
        raise DataValidationError(
            f"{name} has {len(images)} images but {len(labels)} labels: they must match"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataValidationError(
            f"{name} labels range from {labels.min()} to {labels.max()}, "
            f"expected 0 to {NUM_CLASSES - 1}"
        )
    missing = sorted(set(range(NUM_CLASSES)) - set(np.unique(labels).tolist()))
    if missing:
        raise DataValidationError(f"{name} has no example of digit(s) {missing}")


def validate_mnist(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
) -> dict[str, np.ndarray]:
    """Check shapes, dtypes, label range, class coverage and counts of both MNIST splits.

    Returns:
        The four arrays, keyed ``train_images``, ``train_labels``, ``test_images``,
        ``test_labels``.

    Raises:
        DataValidationError: naming the split and what is wrong with it.
    """
    _validate_split("train", train_images, train_labels)
    _validate_split("test", test_images, test_labels)
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


def split_train_validation(
    mnist: dict[str, np.ndarray], parameters: DataPrepParameters
) -> dict[str, np.ndarray]:
    """Hold out a seeded, stratified validation set and optionally shrink the training set.

    Pixels stay uint8 0-255: the model rescales them itself, so serving takes raw pixels.

    Args:
        mnist: validated arrays from :func:`validate_mnist`.
        parameters: ``validation_images``, ``max_train_images`` (0 = all) and ``seed``.

    Returns:
        ``train_*``, ``validation_*`` and ``test_*`` images and labels.
    """
    seed = parameters.seed
    images, labels = mnist["train_images"], mnist["train_labels"]
    n_validation = parameters.validation_images
    if not NUM_CLASSES <= n_validation < len(images) - NUM_CLASSES:
        raise DataValidationError(
            f"data_prep.validation_images={n_validation} must be between {NUM_CLASSES} and "
            f"{len(images) - NUM_CLASSES - 1} for {len(images)} training images"
        )
    train_x, val_x, train_y, val_y = train_test_split(
        images, labels, test_size=n_validation, stratify=labels, random_state=seed
    )
    train_x, train_y = _at_most(train_x, train_y, parameters.max_train_images, seed)
    logger.info(
        "Prepared %d training, %d validation and %d test images",
        len(train_x),
        len(val_x),
        len(mnist["test_images"]),
    )
    return {
        "train_images": train_x,
        "train_labels": train_y,
        "validation_images": val_x,
        "validation_labels": val_y,
        "test_images": mnist["test_images"],
        "test_labels": mnist["test_labels"],
    }


def _at_most(
    images: np.ndarray, labels: np.ndarray, max_images: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded, stratified subset of ``max_images`` images (0 or more than there are: all)."""
    if not 0 < max_images < len(images):
        return images, labels
    if max_images < NUM_CLASSES:
        raise DataValidationError(
            f"data_prep.max_train_images={max_images} cannot hold one image of each digit"
        )
    images, _, labels, _ = train_test_split(
        images, labels, train_size=max_images, stratify=labels, random_state=seed
    )
    return images, labels


def build_data_report(model_input: ArrayBundle) -> dict[str, Any]:
    """Count images per class in each split and fingerprint every array.

    The SHA-256 digests identify the exact data a model was trained on (registration tags).
    """
    arrays = model_input.load()
    report: dict[str, Any] = {"splits": {}, "sha256": {}}
    for split in ("train", "validation", "test"):
        labels = arrays[f"{split}_labels"]
        counts = np.bincount(labels, minlength=NUM_CLASSES)
        report["splits"][split] = {
            "images": len(labels),
            "class_counts": {str(digit): int(n) for digit, n in enumerate(counts)},
        }
    for name, array in sorted(arrays.items()):
        report["sha256"][name] = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    return report
