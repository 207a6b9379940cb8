"""Predictions on raw images: probabilities, top-k with class names, a random test image, evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from . import checks
from .data import Dataset, as_images, as_labels, is_folder, read_folder, read_npz
from .errors import LabError


def predict_proba(model: keras.Model, images, batch_size: int = 128) -> np.ndarray:
    """Class probabilities (N, classes) for raw images (N, H, W[, C]) or one image (H, W[, C])."""
    batch_size = checks.whole(batch_size, "batch_size", 1)
    expected = tuple(model.input_shape[1:])
    try:
        x = np.asarray(images)
    except (ValueError, TypeError):  # images of different sizes
        x = as_images(images, "images")  # which says so
    if x.shape == expected or (expected[-1] == 1 and x.shape == expected[:2]):
        x = x[None]  # a single image
    x = as_images(x, "images")
    if x.shape[1:] != expected:
        raise LabError("inference.images_shape", shape=str(expected), received=str(x.shape[1:]))
    return np.asarray(model.predict(x, batch_size=min(batch_size, len(x)), verbose=0))


def _names(class_names, what: str = "class_names") -> tuple:
    """The class names as a tuple: a list, tuple or array of names, one per class."""
    if isinstance(class_names, np.ndarray) and class_names.ndim == 1:
        class_names = class_names.tolist()
    if not isinstance(class_names, Sequence):
        raise LabError("inference.names", what=what, type=type(class_names).__name__)
    return tuple(class_names)


def top_k(probabilities: np.ndarray, class_names, k: int = 3) -> list[list[dict]]:
    """For each row of probabilities, the k most likely classes, most likely first."""
    probabilities = np.atleast_2d(checks.numbers(probabilities, "probabilities", finite=False))
    if probabilities.ndim != 2 or probabilities.shape[1] == 0:
        raise LabError("inference.probabilities_shape", shape=str(probabilities.shape))
    if not np.isfinite(probabilities).all():
        raise LabError("inference.probabilities_finite")
    if probabilities.min(initial=0) < -1e-6 or probabilities.max(initial=0) > 1 + 1e-6:
        raise LabError("inference.probabilities_range", low=f"{probabilities.min():g}", high=f"{probabilities.max():g}")
    probabilities = np.clip(probabilities, 0, 1)  # float32 rounding aside
    class_names = _names(class_names)
    if len(class_names) < probabilities.shape[1]:
        raise LabError("inference.too_few_names", classes=str(probabilities.shape[1]), names=str(len(class_names)))
    k = min(checks.whole(k, "k", 1), probabilities.shape[1])
    order = np.argsort(-probabilities, axis=1)[:, :k]
    return [[{"class": int(c), "name": class_names[c], "probability": float(row[c])} for c in top]
            for row, top in zip(probabilities, order)]


def random_test_image(data: Dataset, rng: np.random.Generator | int | None = None) -> tuple[int, np.ndarray, int]:
    """The lecture's "classify one random test image": (index, image, true label)."""
    if len(data.x_test) == 0:
        raise LabError("inference.no_test_images", name=data.name)
    try:
        rng = np.random.default_rng(rng)
    except (TypeError, ValueError, OverflowError):
        raise LabError("inference.rng", value=checks.shown(rng)) from None
    index = int(rng.integers(len(data.x_test)))
    return index, data.x_test[index], int(data.y_test[index])


def evaluate_file(model: keras.Model, class_names, path: str | Path) -> dict:
    """Evaluate on an .npz with x/y or x_test/y_test (grayscale with or without the channel axis), or on
    every image of a folder of class folders whose names are the model's classes (in any order)."""
    if is_folder(path):
        x, y, names = folder_for(model, class_names, path)
        result = evaluate_model(model, x, y, class_names)
        return {"accuracy": result.accuracy, "n": int(len(result.labels)),
                "per_class": dict(zip(result.class_names, map(float, result.per_class_accuracy)))}
    arrays = read_npz(path, [("x", "y"), ("x_test", "y_test")])
    x_key = "x" if "x" in arrays else "x_test"
    result = evaluate_model(model, arrays[x_key], arrays[x_key.replace("x", "y")], class_names)
    return {"accuracy": result.accuracy, "n": int(len(result.labels))}


def folder_for(model: keras.Model, class_names, path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A folder of class folders read at the model's image size, its labels renumbered as the model's
    classes; refused when its class folders are not the model's classes."""
    x, y, names, _ = read_folder(path, tuple(model.input_shape[1:]))
    mine = tuple(_names(class_names))
    if sorted(names) != sorted(mine):
        raise LabError("inference.folder_classes", path=str(path), theirs=", ".join(names), ours=", ".join(mine))
    order = np.array([mine.index(name) for name in names])
    return x, order[y], names


@dataclass(frozen=True)
class Collapse:
    """The predictions piled onto one class, as the lecture's VGG19 run at learning rate 0.001 does."""

    class_index: int
    class_name: str
    share: float      # fraction of test images predicted as that class


def detect_collapse(predicted, class_names, threshold: float = 0.5) -> Collapse | None:
    """A Collapse when one class takes at least `threshold` of all predictions, else None.

    On the balanced 10-class test sets a healthy model gives each class about 10%.
    """
    class_names = _names(class_names)
    threshold = checks.fraction(threshold, "threshold")
    try:
        predicted = np.asarray(predicted)
    except (TypeError, ValueError):
        predicted = np.asarray(None)
    if predicted.ndim != 1 or not (predicted.size == 0 or np.issubdtype(predicted.dtype, np.integer)):
        raise LabError("inference.predicted", shape=str(predicted.shape), dtype=str(predicted.dtype))
    if predicted.size == 0:
        return None
    if predicted.min() < 0 or predicted.max() >= len(class_names):
        raise LabError("inference.predicted_range", last=str(len(class_names) - 1), names=str(len(class_names)),
                       low=str(predicted.min()), high=str(predicted.max()))
    counts = np.bincount(predicted, minlength=len(class_names))
    top = int(counts.argmax())
    share = float(counts[top] / predicted.size)
    return Collapse(top, class_names[top], share) if share >= threshold else None


@dataclass(frozen=True)
class Evaluation:
    """A model on a test set: what it predicted for every image, and the tallies a learner reads."""

    labels: np.ndarray           # (N,) true classes
    probabilities: np.ndarray    # (N, classes)
    class_names: tuple[str, ...]

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float((self.predicted == self.labels).mean())

    @property
    def confusion(self) -> np.ndarray:
        """(classes, classes) counts: row = true class, column = predicted class."""
        n = len(self.class_names)
        return np.bincount(self.labels * n + self.predicted, minlength=n * n).reshape(n, n)

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """Recall of each class; NaN for a class with no test images."""
        confusion = self.confusion
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(confusion) / confusion.sum(axis=1)

    def cell(self, true_class: int, predicted_class: int) -> np.ndarray:
        """Indices of the test images of `true_class` that the model called `predicted_class`."""
        return np.flatnonzero((self.labels == true_class) & (self.predicted == predicted_class))

    def worst_confusion(self) -> tuple[int, int] | None:
        """The off-diagonal cell with the most images, or None when there are no mistakes."""
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        if off.max() == 0:
            return None
        true_class, predicted_class = np.unravel_index(off.argmax(), off.shape)
        return int(true_class), int(predicted_class)


def evaluate_model(model: keras.Model, x, y, class_names, batch_size: int = 128) -> Evaluation:
    class_names = _names(class_names)
    classes = int(model.output_shape[-1])
    if len(class_names) != classes:
        raise LabError("inference.names_count", classes=str(classes), names=str(len(class_names)))
    x = as_images(x, "images")
    labels = as_labels(y, len(x))
    if labels.max() >= classes:
        raise LabError("inference.labels_range", high=str(classes - 1), label=str(labels.max()))
    return Evaluation(labels, predict_proba(model, x, batch_size), class_names)
