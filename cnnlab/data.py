"""Datasets: the bundled data (all of MNIST's training images, CIFAR-10's 10% sample), Keras's full
downloads, and any .npz in Keras's layout.

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

import keras
import numpy as np

from . import checks, memory
from .datasets import DATASETS, MAX_CLASSES, OWN_SIDE, SOURCES, TEST_SHARE, DatasetSpec
from .errors import LabError, Text
from .images import read_image

BUNDLED_DIR = Path(__file__).parent / "bundled"
MAX_SEED = 2**31 - 1
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jpe", ".mpo")  # what the safe image reader takes (images.FORMATS)
# What reading an .npz can raise besides OSError and ValueError: a damaged archive or compressed stream.
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
               KeyError, TypeError, SyntaxError, OverflowError)

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
        split = checks.choice(split, "split", SPLITS)
        return np.bincount(getattr(self, f"y_{split}"), minlength=self.num_classes)

    def examples(self, class_index: int, count: int) -> np.ndarray:
        """The first `count` training images of one class."""
        class_index = checks.whole(class_index, "class_index", 0, self.num_classes - 1)
        count = checks.whole(count, "count", 0)
        return self.x_train[self.y_train == class_index][:count]

    def sample(self, fraction: float, seed: int = 0) -> Dataset:
        """A random fraction of train and of test, drawn without replacement, as the lecture does."""
        fraction = checks.fraction(fraction)
        seed = checks.whole(seed, "seed", 0, MAX_SEED)
        if fraction == 1.0:
            return self
        rng = np.random.default_rng(seed)
        picks = {}
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            n = sample_size(len(x), fraction)
            index = np.sort(rng.choice(len(x), size=n, replace=False))
            picks[f"x_{split}"], picks[f"y_{split}"] = x[index], y[index]
        return dataclasses.replace(self, **picks)

    def sizes(self, fraction: float) -> tuple[int, int]:
        """The training and test images that `sample(fraction)` keeps, without drawing them."""
        fraction = checks.fraction(fraction)
        return sample_size(len(self.x_train), fraction), sample_size(len(self.x_test), fraction)


def sample_size(n: int, fraction: float) -> int:
    """The images a sample of `fraction` draws from `n`: at least one."""
    return max(1, round(n * fraction))


def is_folder(path: str | Path) -> bool:
    """A folder (of class folders), or a path written as one (`DIR/`), rather than an .npz file."""
    return isinstance(path, (str, os.PathLike)) and (Path(path).is_dir() or str(path).endswith(("/", os.sep)))


def load_dataset(name: str = "mnist", source: str = "bundled", path: str | Path | None = None,
                 seed: int = 0) -> Dataset:
    """Load a dataset by name from a source, or the file or folder `path` names: any .npz in Keras's
    layout, or a folder of class folders (`load_folder`: its test share split off with `seed`).

    `bundled` is the data shipped with CNN Lab (no network needed); `full` is Keras's
    download, cached by Keras under ~/.keras/datasets.
    """
    if path is not None:
        return load_folder(path, seed) if is_folder(path) else load_npz(path)
    spec = _spec(name)
    checks.choice(source, "source", SOURCES)
    if source == "bundled":
        return load_npz(BUNDLED_DIR / f"{spec.name}.npz", name=spec.name, source="bundled")
    return _download(spec)


def load_npz(path: str | Path, name: str | None = None, source: str = "file") -> Dataset:
    """Read an .npz with x_train, y_train, x_test, y_test (Keras's layout) and check it."""
    arrays = read_npz(path, [("x_train", "y_train"), ("x_test", "y_test")], need_all=True)
    named = class_names_in(path)
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    if x_train.shape[1:] != x_test.shape[1:]:
        raise LabError("npz_splits_differ", name=Path(path).name, train=str(x_train.shape[1:]),
                       test=str(x_test.shape[1:]))
    classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    spec = _matching_spec(x_train.shape[1:], classes, name)
    if named is not None and len(named) >= classes:
        return Dataset(name or Path(path).stem, source, x_train, y_train, x_test, y_test, named)
    if spec is not None:
        class_names = spec.class_names
    else:
        class_names = tuple(f"class {i}" for i in range(max(classes, 2)))
    return Dataset(name or (spec.name if spec else Path(path).stem), source,
                   x_train, y_train, x_test, y_test, class_names)


def class_names_in(path: str | Path) -> tuple[str, ...] | None:
    """The class names an .npz carries as `class_names` (as the lab writes a learner's own classes), if any."""
    try:
        _check_claimed_sizes(Path(path), ["class_names"])  # a header may claim terabytes: refused before reading
        with np.load(path, allow_pickle=False) as npz:
            if "class_names" not in npz.files:
                return None
            names = npz["class_names"]
    except (*_UNREADABLE, LabError, MemoryError):
        return None
    if names.ndim != 1 or names.dtype.kind != "U" or not 2 <= len(names) <= MAX_CLASSES:
        return None
    shown = tuple("".join(c for c in " ".join(str(n).split()) if c.isprintable())[:100] for n in names)
    if not all(shown) or len(set(shown)) != len(shown):  # blank or repeated names are not names
        return None
    return shown


def read_npz(path: str | Path, key_pairs: list[tuple[str, str]], need_all: bool = False) -> dict[str, np.ndarray]:
    """Open an .npz and return its (images, labels) pairs, checked.

    Every pair present is returned as uint8 images (N, H, W, C) and flat int64 labels. With
    `need_all`, every pair must be there; otherwise at least one (for `evaluate`: x/y or
    x_test/y_test).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise LabError("npz_path", value=checks.shown(path))
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such data file: {path}")
    keys = [k for pair in key_pairs for k in pair]
    _check_claimed_sizes(path, keys)
    try:
        with np.load(path, allow_pickle=False) as npz:
            found = {k: npz[k] for k in keys if k in npz.files}
    except _UNREADABLE as error:
        raise LabError("npz_unreadable", name=path.name, reason=_reason(error)) from None
    result = {}
    for x_key, y_key in key_pairs:
        if x_key in found and y_key in found:
            result[x_key] = as_images(found[x_key], f"{path.name}:{x_key}")
            result[y_key] = as_labels(found[y_key], len(result[x_key]), f"{path.name}:{y_key}")
    wanted = (" and " if need_all else " or ").join(f"{x}/{y}" for x, y in key_pairs)
    if not result or (need_all and len(result) < 2 * len(key_pairs)):
        raise LabError("npz_arrays", name=path.name, wanted=wanted, found=", ".join(sorted(found)) or "-")
    return result


def _check_claimed_sizes(path: Path, keys: list[str]) -> None:
    """Refuse an .npz before NumPy allocates what its arrays' headers claim: one that is not an
    archive of arrays, an array that claims more bytes than the file holds (NumPy would allocate
    the claim first), or arrays that together would not fit in this server's memory."""
    if not zipfile.is_zipfile(path):
        raise LabError("npz_not_archive", name=path.name)
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
        raise LabError("npz_unreadable", name=path.name, reason=_reason(error)) from None
    total = 0
    for key, shape, dtype, stored in claims:
        claimed = math.prod(shape) * dtype.itemsize
        if claimed > stored:
            raise LabError("npz_damaged", name=path.name, member=key, mb=f"{claimed / 2**20:,.1f}",
                           shape="x".join(map(str, shape)) or "1", stored=f"{stored:,}")
        total += claimed
    memory.require(total, Text("errors.what_npz", name=path.name), Text("errors.npz_instead"))


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".replace("\n", " ")[:200]


def as_images(x, what: str = "images") -> np.ndarray:
    """(N, H, W) or (N, H, W, C) pixels 0-255 -> uint8 (N, H, W, C)."""
    try:
        x = np.asarray(x)
    except (ValueError, TypeError):
        raise LabError("images_ragged", what=what, type=type(x).__name__) from None
    if x.ndim == 3:
        x = x[..., None]  # grayscale without a channel axis
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or x.shape[0] == 0 or min(x.shape[1:3]) < 1:
        raise LabError("images_shape", what=what, shape=str(x.shape))
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise LabError("pixels_numbers", what=what, dtype=str(x.dtype))
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise LabError("pixels_finite", what=what)
    if x.min() < 0 or x.max() > 255:
        raise LabError("pixels_range", what=what, low=str(x.min()), high=str(x.max()))
    return x.astype(np.uint8) if x.dtype != np.uint8 else x


def as_labels(y, n: int, what: str = "labels") -> np.ndarray:
    """(N,) or (N, 1) integer class indices -> int64 (N,)."""
    try:
        y = np.asarray(y)
    except (ValueError, TypeError):
        raise LabError("labels_ragged", what=what, n=str(n), type=type(y).__name__) from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise LabError("labels_shape", what=what, n=str(n), shape=str(y.shape))
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.isfinite(y).all() or (y != np.round(y)).any():
            raise LabError("labels_whole", what=what, dtype=str(y.dtype))
    if len(y) and y.min() < 0:
        raise LabError("labels_negative", what=what, low=str(y.min()))
    if len(y) and y.max() >= MAX_CLASSES:
        raise LabError("labels_range", what=what, largest=str(MAX_CLASSES - 1), high=str(y.max()))
    return y.astype(np.int64)


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise LabError("unknown_dataset", name=checks.shown(name), names=", ".join(DATASETS)) from None


def _matching_spec(image_shape, classes: int, name: str | None) -> DatasetSpec | None:
    if name in DATASETS:
        return DATASETS[name]
    for spec in DATASETS.values():
        if spec.image_shape == tuple(image_shape) and classes <= spec.num_classes:
            return spec
    return None


def _download(spec: DatasetSpec) -> Dataset:
    """Keras's own loader: it downloads once and caches in its own folder, which we never write to."""
    loader = {"mnist": keras.datasets.mnist.load_data, "cifar10": keras.datasets.cifar10.load_data}[spec.name]
    try:
        (x_train, y_train), (x_test, y_test) = loader()
    except Exception as error:  # noqa: BLE001 - Keras wraps network failures in several exception types
        raise LabError("full_dataset", title=spec.title, reason=f"{type(error).__name__}: {error}") from None
    return Dataset(spec.name, "full", as_images(x_train), as_labels(y_train, len(x_train)),
                   as_images(x_test), as_labels(y_test, len(x_test)), spec.class_names)


def held_out(n: int, share: float = TEST_SHARE) -> int:
    """The test images `split` holds out of a class of `n`: `share` of them, at least one, none of a class of one."""
    return max(1, round(n * share)) if n > 1 else 0


def split(x: np.ndarray, y: np.ndarray, class_names: tuple[str, ...], seed: int = 0, share: float = TEST_SHARE,
          name: str = "own", source: str = "folder") -> Dataset:
    """Train and test, stratified: `share` of every class (at least one image) held out, drawn with `seed`."""
    seed = checks.whole(seed, "seed", 0, MAX_SEED)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for k in range(len(class_names)):
        members = rng.permutation(np.flatnonzero(y == k))
        n_test = held_out(len(members), share)
        test += list(members[:n_test])
        train += list(members[n_test:])
    train, test = np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(test, dtype=np.int64))
    return Dataset(name, source, x[train], y[train], x[test], y[test], tuple(class_names))


def read_folder(path: str | Path, image_shape: tuple[int, int, int] = (OWN_SIDE, OWN_SIDE, 3)
                ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], list]:
    """A folder of class folders (Keras's `image_dataset_from_directory` layout): every image in each
    class folder and its subfolders, read safely at `image_shape` (OWN_SIDE x OWN_SIDE RGB unless a model
    asks for its own; 28x28x1 digits are normalised as MNIST's were); the classes in Keras's order (sorted
    by name). Returns images, labels, class names and the files left out with why."""
    root = Path(path)
    if not root.is_dir():
        raise LabError("folder.missing", path=str(path))
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise LabError("folder.classes", path=str(path), count=str(len(classes)), least="2")
    listed = {name: sorted(f for f in (root / name).rglob("*") if f.is_file() and not f.name.startswith("."))
              for name in classes}
    memory.require(sum(map(len, listed.values())) * math.prod(image_shape), Text("errors.folder.what", path=str(path)),
                   Text("errors.folder.instead"))
    images, labels, skipped = [], [], []
    for k, name in enumerate(classes):
        count = 0
        for f in listed[name]:
            if not f.name.casefold().endswith(IMAGE_SUFFIXES):
                skipped.append((str(f), Text("errors.folder.not_image")))
                continue
            try:
                images.append(read_image(f, image_shape))
            except LabError as refused:
                skipped.append((str(f), refused.text))
                continue
            labels.append(k)
            count += 1
        if count == 0:
            raise LabError("folder.empty_class", path=str(root / name))
    return np.stack(images), np.array(labels, dtype=np.int64), tuple(classes), skipped


def image_files(path: str | Path) -> list[Path]:
    """Every PNG or JPEG in a folder and its subfolders, in name order."""
    root = Path(path)
    if not root.is_dir():
        raise LabError("folder.missing", path=str(path))
    return sorted(f for f in root.rglob("*") if f.is_file() and not f.name.startswith(".")
                  and f.name.casefold().endswith(IMAGE_SUFFIXES))


def load_folder(path: str | Path, seed: int = 0) -> Dataset:
    """A folder of class folders, split as `split` does: a seeded, stratified test share of every class."""
    x, y, names, _ = read_folder(path)
    counts = np.bincount(y, minlength=len(names))
    if counts.min() < 2:  # nothing would be left to test on, or to learn from
        raise LabError("folder.too_few", path=str(Path(path) / names[int(counts.argmin())]), count=str(counts.min()))
    return split(x, y, names, seed, name=Path(path).name or "folder", source="folder")
