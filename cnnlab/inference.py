"""Predictions on raw images: probabilities, top-k with class names, a random test image, evaluation."""

from __future__ import annotations

import json
import zipfile
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
    """Load a model saved by cnnlab: a `.keras` file, or a run directory holding model.keras and run.json.

    Only for files this machine wrote itself: `.keras` files can carry code.
    """
    path = Path(path)
    model_file = path / "model.keras" if path.is_dir() else path
    if not model_file.is_file():
        where = f"{path} has no model.keras" if path.is_dir() else f"No such model file: {path}"
        raise FileNotFoundError(f"{where}. Give a .keras file or the directory that `cnnlab train --out` wrote.")
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
    expected = tuple(model.input_shape[1:])
    x = np.asarray(images)
    if x.shape == expected or (expected[-1] == 1 and x.shape == expected[:2]):
        x = x[None]  # a single image
    x = as_images(x, "images")
    if x.shape[1:] != expected:
        raise ValueError(f"This model takes images of shape {expected} (height, width, channels). "
                         f"Received images of shape {x.shape[1:]}.")
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def top_k(probabilities: np.ndarray, class_names, k: int = 3) -> list[list[dict]]:
    """For each row of probabilities, the k most likely classes, most likely first."""
    probabilities = np.atleast_2d(probabilities)
    k = max(1, min(int(k), probabilities.shape[1]))
    order = np.argsort(-probabilities, axis=1)[:, :k]
    return [[{"class": int(c), "name": class_names[c], "probability": float(row[c])} for c in top]
            for row, top in zip(probabilities, order)]


def random_test_image(data: Dataset, rng: np.random.Generator | int | None = None) -> tuple[int, np.ndarray, int]:
    """The lecture's "classify one random test image": (index, image, true label)."""
    rng = np.random.default_rng(rng)
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
    predicted = np.asarray(predicted)
    if predicted.size == 0:
        return None
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
    x = as_images(x, "images")
    return Evaluation(as_labels(y, len(x)), predict_proba(model, x, batch_size), tuple(class_names))
