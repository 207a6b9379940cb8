"""Predictions on raw images: probabilities, top-k with class names, a random test image, evaluation."""

from __future__ import annotations

import json
import math
import numbers
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from . import architectures  # noqa: F401  registers cnnlab's custom layers for loading
from .data import DATASETS, Dataset, as_images, as_labels, read_npz


@dataclass(frozen=True)
class TrainedModel:
    """A model with the names of its classes, as loaded from a .keras file or a run directory."""

    model: keras.Model
    class_names: tuple[str, ...]
    path: Path

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.model.input_shape[1:])


def load_trained(path: str | Path) -> TrainedModel:
    """Load a model saved by cnnlab: a run bundle (.zip), a run directory (`cnnlab train --out`),
    or a `.keras` file.

    A bundle is only data: cnnlab builds the network from its checked settings and reads the weights
    into it. A `.keras` file can carry code, so it is read only when given by name, as a file this
    machine wrote itself; a run directory is read through its bundle.
    """
    path = Path(path)
    bundle = path / "bundle.zip" if path.is_dir() else path
    if bundle.suffix == ".zip" and bundle.is_file():
        from .bundle import read_bundle

        run = read_bundle(bundle.read_bytes(), max_bytes=max(bundle.stat().st_size, 1))
        return TrainedModel(run.model, run.class_names, bundle)
    model_file = path / "model.keras" if path.is_dir() else path
    if not model_file.is_file():
        where = f"{path} has no bundle.zip" if path.is_dir() else f"No such model file: {path}"
        raise FileNotFoundError(f"{where}. Give a run bundle (.zip), a .keras file or the directory that "
                                "`cnnlab train --out` wrote.")
    try:
        model = keras.models.load_model(model_file, compile=False)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise ValueError(f"{model_file.name} is not a Keras model that cnnlab can read ({type(error).__name__}).") from None
    classes = int(model.output_shape[-1])
    run_file = model_file.parent / "run.json"
    names = None
    if run_file.is_file():
        try:
            names = tuple(json.loads(run_file.read_text())["class_names"])
        except (ValueError, KeyError, TypeError):
            names = None
    if names is None or len(names) != classes:
        names = default_class_names(tuple(model.input_shape[1:]), classes)
    return TrainedModel(model, names, model_file)


def default_class_names(image_shape: tuple[int, ...], classes: int) -> tuple[str, ...]:
    """The dataset's names when the image shape and class count match one; else 'class 0', ..."""
    for spec in DATASETS.values():
        if spec.image_shape == tuple(image_shape) and spec.num_classes == classes:
            return spec.class_names
    return tuple(f"class {i}" for i in range(classes))


def predict_proba(model: keras.Model, images, batch_size: int = 128) -> np.ndarray:
    """Class probabilities (N, classes) for raw images (N, H, W[, C]) or one image (H, W[, C])."""
    if not _whole(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of images, at least 1. Received: batch_size={batch_size!r}")
    expected = tuple(model.input_shape[1:])
    try:
        x = np.asarray(images)
    except (ValueError, TypeError):  # images of different sizes
        x = as_images(images, "images")  # which says so
    if x.shape == expected or (expected[-1] == 1 and x.shape == expected[:2]):
        x = x[None]  # a single image
    x = as_images(x, "images")
    if x.shape[1:] != expected:
        raise ValueError(f"This model takes images of shape {expected} (height, width, channels). "
                         f"Received images of shape {x.shape[1:]}.")
    return np.asarray(model.predict(x, batch_size=min(int(batch_size), len(x)), verbose=0))


def _whole(value) -> bool:
    """An int or NumPy integer, or a float with no fraction; not a bool."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) or (math.isfinite(value) and value == int(value))


def _names(class_names, what: str = "class_names") -> tuple:
    """The class names as a tuple: a list, tuple or array of names, one per class."""
    if isinstance(class_names, np.ndarray) and class_names.ndim == 1:
        class_names = class_names.tolist()
    if not isinstance(class_names, Sequence):
        raise ValueError(f"{what} must be a list of names, one per class. Received: {type(class_names).__name__}")
    return tuple(class_names)


def top_k(probabilities: np.ndarray, class_names, k: int = 3) -> list[list[dict]]:
    """For each row of probabilities, the k most likely classes, most likely first."""
    try:
        probabilities = np.atleast_2d(np.asarray(probabilities))
    except (TypeError, ValueError):
        probabilities = np.asarray(None)
    if probabilities.dtype.kind not in "iuf":
        raise ValueError("probabilities must be numbers: one row per image, one column per class. "
                         f"Received {probabilities.dtype}.")
    probabilities = probabilities.astype(np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] == 0:
        raise ValueError(f"probabilities must have one row per image and one column per class. "
                         f"Received shape {probabilities.shape}.")
    if not np.isfinite(probabilities).all():
        raise ValueError("The model's probabilities are NaN or infinite: its training diverged, as a too high "
                         "learning rate makes it. Train it again with a smaller learning rate.")
    if probabilities.min(initial=0) < -1e-6 or probabilities.max(initial=0) > 1 + 1e-6:
        raise ValueError("probabilities must lie between 0 and 1, as a softmax gives them. Received values from "
                         f"{probabilities.min():g} to {probabilities.max():g}.")
    probabilities = np.clip(probabilities, 0, 1)  # float32 rounding aside
    class_names = _names(class_names)
    if len(class_names) < probabilities.shape[1]:
        raise ValueError(f"There are {probabilities.shape[1]} classes but only {len(class_names)} class names.")
    if not _whole(k) or k < 1:
        raise ValueError(f"k must be a whole number of classes, at least 1. Received: k={k!r}")
    k = min(int(k), probabilities.shape[1])
    order = np.argsort(-probabilities, axis=1)[:, :k]
    return [[{"class": int(c), "name": class_names[c], "probability": float(row[c])} for c in top]
            for row, top in zip(probabilities, order)]


def random_test_image(data: Dataset, rng: np.random.Generator | int | None = None) -> tuple[int, np.ndarray, int]:
    """The lecture's "classify one random test image": (index, image, true label)."""
    if len(data.x_test) == 0:
        raise ValueError(f"{data.name} has no test images to pick from.")
    try:
        rng = np.random.default_rng(rng)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("rng must be a NumPy Generator, a seed (a whole number, 0 or more) or None. "
                         f"Received: rng={rng!r}") from None
    index = int(rng.integers(len(data.x_test)))
    return index, data.x_test[index], int(data.y_test[index])


def evaluate_file(trained: TrainedModel, path: str | Path) -> dict:
    """Evaluate on an .npz with x/y or x_test/y_test (grayscale with or without the channel axis)."""
    arrays = read_npz(path, [("x", "y"), ("x_test", "y_test")])
    x_key = "x" if "x" in arrays else "x_test"
    result = evaluate_model(trained.model, arrays[x_key], arrays[x_key.replace("x", "y")], trained.class_names)
    return {"accuracy": result.accuracy, "n": int(len(result.labels))}


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
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool) or not 0 < threshold <= 1:
        raise ValueError(f"threshold must be a share above 0 and at most 1, such as 0.5. Received: threshold={threshold!r}")
    try:
        predicted = np.asarray(predicted)
    except (TypeError, ValueError):
        predicted = np.asarray(None)
    if predicted.ndim != 1 or not (predicted.size == 0 or np.issubdtype(predicted.dtype, np.integer)):
        raise ValueError("predicted must be a flat list of predicted classes (whole numbers). "
                         f"Received shape {predicted.shape} of {predicted.dtype}.")
    if predicted.size == 0:
        return None
    if predicted.min() < 0 or predicted.max() >= len(class_names):
        raise ValueError(f"predicted classes must lie between 0 and {len(class_names) - 1} for "
                         f"{len(class_names)} class names. Received values from {predicted.min()} to {predicted.max()}.")
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
        raise ValueError(f"This model tells {classes} classes apart, but {len(class_names)} class names were given.")
    x = as_images(x, "images")
    labels = as_labels(y, len(x))
    if labels.max() >= classes:
        raise ValueError(f"The labels must be classes from 0 to {classes - 1}, the ones this model knows. "
                         f"Received a label {labels.max()}.")
    return Evaluation(labels, predict_proba(model, x, batch_size), class_names)
