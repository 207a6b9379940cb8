"""Datasets: the bundled 10% samples, Keras's full downloads, and any .npz in Keras's layout.

Images stay as the raw uint8 pixels, (N, H, W, C); the models do the lecture's preprocessing
themselves (see `architectures.preprocessing`). Labels are flat integer class indices.
"""

from __future__ import annotations

import dataclasses
import math
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LabError, Text

BUNDLED_DIR = Path(__file__).parent / "bundled"
SOURCES = ("bundled", "full")
MAX_CLASSES = 1000               # ImageNet's count; labels run from 0 to MAX_CLASSES - 1
MAX_SEED = 2**31 - 1
SPLITS = ("train", "test")
# What reading an .npz can raise besides OSError and ValueError: a damaged archive or compressed stream.
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
               KeyError, TypeError, SyntaxError, OverflowError)

MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DATASETS: dict[str, DatasetSpec] = {s.name: s for s in [
    DatasetSpec("mnist", "MNIST handwritten digits", (28, 28, 1), MNIST_CLASSES),
    DatasetSpec("cifar10", "CIFAR-10", (32, 32, 3), CIFAR10_CLASSES),
]}


@dataclass(frozen=True)
class Dataset:
    """Train and test images with their labels; uint8 pixels, flat integer labels."""

    name: str
    source: str
    x_train: np.ndarray   # (N, H, W, C) uint8
    y_train: np.ndarray   # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self, split: str = "train") -> np.ndarray:
        """Images per class in "train" or "test"."""
        if not isinstance(split, str) or split not in SPLITS:
            raise ValueError(f"split must be 'train' or 'test'. Received: split={split!r}")
        return np.bincount(getattr(self, f"y_{split}"), minlength=self.num_classes)

    def examples(self, class_index: int, count: int) -> np.ndarray:
        """The first `count` training images of one class."""
        if not _is_whole(class_index) or not 0 <= class_index < self.num_classes:
            raise ValueError(f"class_index must be a whole number from 0 to {self.num_classes - 1}. "
                             f"Received: class_index={class_index!r}")
        if not _is_whole(count) or count < 0:
            raise ValueError(f"count must be a whole number of images, 0 or more. Received: count={count!r}")
        return self.x_train[self.y_train == class_index][:int(count)]

    def sample(self, fraction: float, seed: int = 0) -> "Dataset":
        """A random fraction of train and of test, drawn without replacement, as the lecture does."""
        fraction = check_fraction(fraction)
        if not _is_whole(seed) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED}. Received: seed={seed!r}")
        if fraction == 1.0:
            return self
        rng = np.random.default_rng(seed)
        picks = {}
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            n = max(1, int(round(len(x) * fraction)))
            index = np.sort(rng.choice(len(x), size=n, replace=False))
            picks[f"x_{split}"], picks[f"y_{split}"] = x[index], y[index]
        return dataclasses.replace(self, **picks)


def _is_whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_fraction(fraction) -> float:
    try:
        value = float(fraction)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"The sample fraction must be a number such as 0.1. Received: {fraction!r}") from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"The sample fraction must be above 0 and at most 1 (0.1 is 10%). Received: {fraction!r}")
    return value


def load_dataset(name: str = "mnist", source: str = "bundled", path: str | Path | None = None) -> Dataset:
    """Load a dataset by name from a source, or any .npz in Keras's layout when `path` is given.

    `bundled` is the 10% sample shipped with CNN Lab (no network needed); `full` is Keras's
    download, cached by Keras under ~/.keras/datasets.
    """
    if path is not None:
        return load_npz(path)
    spec = _spec(name)
    if not isinstance(source, str) or source not in SOURCES:
        raise ValueError(f"Unknown data source {source!r}. Choose one of: {', '.join(SOURCES)}.")
    if source == "bundled":
        return load_npz(BUNDLED_DIR / f"{spec.name}.npz", name=spec.name, source="bundled")
    return _download(spec)


def load_npz(path: str | Path, name: str | None = None, source: str = "file") -> Dataset:
    """Read an .npz with x_train, y_train, x_test, y_test (Keras's layout) and check it."""
    arrays = read_npz(path, [("x_train", "y_train"), ("x_test", "y_test")], need_all=True)
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"{Path(path).name}: train images are {x_train.shape[1:]} but test images are "
                         f"{x_test.shape[1:]}; both splits need the same image size.")
    classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    spec = _matching_spec(x_train.shape[1:], classes, name)
    if spec is not None:
        class_names = spec.class_names
    else:
        class_names = tuple(f"class {i}" for i in range(max(classes, 2)))
    return Dataset(name or (spec.name if spec else Path(path).stem), source,
                   x_train, y_train, x_test, y_test, class_names)


def read_npz(path: str | Path, key_pairs: list[tuple[str, str]], need_all: bool = False) -> dict[str, np.ndarray]:
    """Open an .npz and return its (images, labels) pairs, checked.

    Every pair present is returned as uint8 images (N, H, W, C) and flat int64 labels. With
    `need_all`, every pair must be there; otherwise at least one (for `evaluate`: x/y or
    x_test/y_test).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"Give the path of an .npz file. Received: {path!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such data file: {path}")
    keys = [k for pair in key_pairs for k in pair]
    _check_claimed_sizes(path, keys)
    try:
        with np.load(path, allow_pickle=False) as npz:
            found = {k: npz[k] for k in keys if k in npz.files}
    except _UNREADABLE as error:
        raise ValueError(f"{path.name} is not a readable .npz file ({_reason(error)}).") from None
    result = {}
    for x_key, y_key in key_pairs:
        if x_key in found and y_key in found:
            result[x_key] = as_images(found[x_key], f"{path.name}:{x_key}")
            result[y_key] = as_labels(found[y_key], len(result[x_key]), f"{path.name}:{y_key}")
    wanted = (" and " if need_all else " or ").join(f"{x}/{y}" for x, y in key_pairs)
    if not result or (need_all and len(result) < 2 * len(key_pairs)):
        raise ValueError(f"{path.name} needs the arrays {wanted}; it has: {', '.join(sorted(found)) or 'none of them'}.")
    return result


def _check_claimed_sizes(path: Path, keys: list[str]) -> None:
    """Refuse an .npz before NumPy allocates what its arrays' headers claim: one that is not an
    archive of arrays, an array that claims more bytes than the file holds (NumPy would allocate
    the claim first), or arrays that together would not fit in this server's memory."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path.name} is not a readable .npz file: it is not an archive of arrays, as "
                         "numpy.savez writes.")
    claims = []
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                key = info.filename.removesuffix(".npy")
                if key not in keys or not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)  # 3.0 differs only in its text encoding
                    shape, _, dtype = read_header(member)
                claims.append((key, shape, dtype, info.file_size))
    except _UNREADABLE as error:
        raise ValueError(f"{path.name} is not a readable .npz file ({_reason(error)}).") from None
    total = 0
    for key, shape, dtype, stored in claims:
        claimed = math.prod(shape) * dtype.itemsize
        if claimed > stored:
            raise ValueError(f"{path.name} is damaged: {key} claims {claimed / 2**20:,.1f} MB of "
                             f"{'x'.join(map(str, shape)) or 'one value'} but the file holds {stored:,} bytes of it.")
        total += claimed
    from . import memory

    memory.require(total, Text("errors.what_npz", name=path.name), Text("errors.npz_instead"))


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".replace("\n", " ")[:200]


def as_images(x, what: str = "images") -> np.ndarray:
    """(N, H, W) or (N, H, W, C) pixels 0-255 -> uint8 (N, H, W, C)."""
    try:
        x = np.asarray(x)
    except (ValueError, TypeError):
        raise ValueError(f"{what}: expected an array of images, all of one size. "
                         f"Received a {type(x).__name__} whose items differ in size.") from None
    if x.ndim == 3:
        x = x[..., None]  # grayscale without a channel axis
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or x.shape[0] == 0 or min(x.shape[1:3]) < 1:
        raise ValueError(f"{what}: expected images shaped (N, height, width) or (N, height, width, 1 or 3) "
                         f"with N > 0. Received shape {x.shape}.")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{what}: pixels must be numbers. Received dtype {x.dtype}.")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise ValueError(f"{what}: pixels contain NaN or infinity.")
    if x.min() < 0 or x.max() > 255:
        raise ValueError(f"{what}: pixels must lie between 0 and 255 (raw images, not normalised). "
                         f"Received values from {x.min()} to {x.max()}.")
    return x.astype(np.uint8) if x.dtype != np.uint8 else x


def as_labels(y, n: int, what: str = "labels") -> np.ndarray:
    """(N,) or (N, 1) integer class indices -> int64 (N,)."""
    try:
        y = np.asarray(y)
    except (ValueError, TypeError):
        raise ValueError(f"{what}: expected {n} labels shaped (N,) or (N, 1). "
                         f"Received a {type(y).__name__} whose items differ in size.") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{what}: expected {n} labels shaped (N,) or (N, 1). Received shape {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.isfinite(y).all() or (y != np.round(y)).any():
            raise ValueError(f"{what}: labels must be whole class indices such as 0..9. Received dtype {y.dtype}.")
    if len(y) and y.min() < 0:
        raise ValueError(f"{what}: labels must be class indices from 0. Received {y.min()}.")
    if len(y) and y.max() >= MAX_CLASSES:
        raise ValueError(f"{what}: labels must be class indices from 0 to {MAX_CLASSES - 1}. Received {y.max()}.")
    return y.astype(np.int64)


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown dataset {name!r}. Choose one of: {', '.join(DATASETS)}, "
                         "or give an .npz file in Keras's layout.") from None


def _matching_spec(image_shape, classes: int, name: str | None) -> DatasetSpec | None:
    if name in DATASETS:
        return DATASETS[name]
    for spec in DATASETS.values():
        if spec.image_shape == tuple(image_shape) and classes <= spec.num_classes:
            return spec
    return None


def _download(spec: DatasetSpec) -> Dataset:
    """Keras's own loader: it downloads once and caches in its own folder, which we never write to."""
    import keras

    loader = {"mnist": keras.datasets.mnist.load_data, "cifar10": keras.datasets.cifar10.load_data}[spec.name]
    try:
        (x_train, y_train), (x_test, y_test) = loader()
    except Exception as error:  # Keras wraps network failures in several exception types
        raise LabError("full_dataset", title=spec.title, reason=f"{type(error).__name__}: {error}") from None
    return Dataset(spec.name, "full", as_images(x_train), as_labels(y_train, len(x_train)),
                   as_images(x_test), as_labels(y_test, len(x_test)), spec.class_names)


@dataclass(frozen=True)
class PreprocessingStep:
    step: str
    shape: tuple[int, ...]
    dtype: str
    why: str
    topic: str | None = None   # its longer explanation: "explain.preprocessing.<topic>" in the catalogues

    @property
    def nbytes_whole_array(self) -> int:
        """What the array takes if materialised for the whole split, as the lecture's code does."""
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def preprocessing_steps(model_config, n_images: int, lang: str = "en") -> list[PreprocessingStep]:
    """The lecture's preprocessing for a model, step by step, with the array's shape after each.

    The lecture applies these to the whole array up front; cnnlab's models do the image steps
    in their own layers, per batch (see architectures.preprocessing). Names and reasons are the
    catalogue's ("steps.<id>") in `lang`.
    """
    from .architectures import as_config, get_architecture, pixel_scaling
    from .i18n import LANGUAGES, text

    if not isinstance(lang, str) or lang not in LANGUAGES:
        raise ValueError(f"Unknown language {lang!r}. Choose one of: {', '.join(LANGUAGES)}.")
    if not _is_whole(n_images) or n_images < 0:
        raise ValueError(f"n_images must be a whole number of images, 0 or more. Received: n_images={n_images!r}")

    def step(name, shape, dtype, topic=None, **values):
        return PreprocessingStep(text(f"steps.{name}.name", lang), shape, dtype,
                                 text(f"steps.{name}.why", lang, **values), topic)

    config = as_config(model_config)
    arch = get_architecture(config.arch)
    h, w, c = config.raw_shape
    size = config.input_size
    grey = c == 1
    shape = (n_images, h, w) if grey else (n_images, h, w, c)
    steps = [step("raw", shape, "uint8")]
    if (h, w) != (size, size):
        shape = (n_images, size, size) + (() if grey else (c,))
        if arch.fit == "pad" and size >= max(h, w):
            steps.append(step("pad", shape, "uint8", "pad", border=str((size - h) // 2)))
        else:
            steps.append(step("resize", shape, "float32", "resize", before=f"{h}x{w}", after=f"{size}x{size}"))
    if grey:
        shape = shape + (1,)
        steps.append(step("channel", shape, steps[-1].dtype))
    scaling = pixel_scaling(config)  # EfficientNet ("none") scales pixels in its own first layers
    if scaling != "none":
        steps.append(step(scaling, shape, "float32", "rescale" if scaling == "rescale" else None))
    if arch.labels == "one-hot":
        steps.append(step("onehot", (n_images, config.classes), "float32", "labels"))
    else:
        steps.append(step("integer", (n_images,), "int64", "labels"))
    return steps
