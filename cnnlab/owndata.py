"""A learner's own classes: named sets of photos, from files, a zip of folders or the camera.

Every image is read by the lab's safe image reader (`images.read_image`: its size and pixel limits
apply) and kept as the network will receive it, SIDE x SIDE RGB. One workspace's classes live in a
folder of their own:

    <folder>/classes.json       the classes in order, each with its name and its images' numbers
    <folder>/<n>.png            image n, SIDE x SIDE RGB (lossless: what was added is what trains)
    <folder>/frozen/<fp>.npz    a split a run trained on, in Keras's layout with its class names

A run trains on a frozen split (`freeze`), never on the folder itself: images added or removed after
Start change the next run, and the run's own test images stay what it was scored on.

The side is `datasets.OWN_SIDE` (96 pixels; why is written there).

A folder of class folders on disk (Keras's `image_dataset_from_directory` layout) is read the same way,
for the command line (`data.load_folder`).
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import re
import struct
import threading
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from . import checks
from .data import IMAGE_SUFFIXES, Dataset, held_out, split
from .datasets import OWN_SIDE as SIDE
from .datasets import TEST_SHARE
from .errors import LabError, Text
from .files import write_atomic
from .images import MAX_BYTES, read_image

IMAGE_SHAPE = (SIDE, SIDE, 3)
MIN_CLASSES, MAX_CLASSES = 2, 10
MIN_IMAGES = 5                    # per class: four to learn from, one to test on
MAX_NAME = 40                     # characters in a class name
MAX_ZIP_MEMBERS = 5000            # entries a zip may list (folders, junk and images together)
MAX_ZIP_IMAGE_BYTES = 2 * 2**20   # what one image in a zip may inflate to, on average over the zip's images
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
JUNK_FOLDERS = {"__macosx"}
_LOCKS: dict[str, threading.Lock] = {}
_FROZEN: dict[tuple, Path] = {}   # (folder, its index, seed) -> the split written for them
_LOCKS_LOCK = threading.Lock()


@dataclass(frozen=True)
class OwnClass:
    id: int
    name: str
    images: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.images)


@dataclass
class Added:
    """What an upload added: images per class name, and each file left out with why."""

    added: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, Text]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.added.values())


def clean_name(name) -> str:
    """A class name as shown: spaces collapsed, control characters gone; refused when empty or too long."""
    if not isinstance(name, str):
        raise LabError("own.name_text", value=checks.shown(name))
    name = " ".join("".join(c for c in unicodedata.normalize("NFC", name)
                            if unicodedata.category(c)[0] != "C").split())
    if not any(unicodedata.category(c)[0] in "LN" for c in name):
        raise LabError("own.name_empty")
    if len(name) > MAX_NAME:
        raise LabError("own.name_long", name=name[:MAX_NAME] + "...", most=str(MAX_NAME))
    return name


def name_key(name: str) -> str:
    """What two class names that read the same share: 'Mug' and 'mug', 'Straße' and 'STRASSE', 'ｃａｔ' and 'cat'."""
    return unicodedata.normalize("NFKC", name).casefold()


def same_name(a: str, b: str) -> bool:
    return name_key(a) == name_key(b)


class OwnData:
    """One workspace's classes, on disk in `folder`; at most `max_images` images in all.
    Safe to use from several sessions at once: every change is made under one lock per folder and
    written all or nothing."""

    def __init__(self, folder: str | Path, max_images: int = 500):
        self.folder = Path(folder)
        self.max_images = checks.whole(max_images, "own_images", MIN_CLASSES * MIN_IMAGES)
        with _LOCKS_LOCK:
            self._lock = _LOCKS.setdefault(str(self.folder.resolve()), threading.Lock())

    # -- reading --------------------------------------------------------------------------------------

    def classes(self) -> list[OwnClass]:
        return [OwnClass(c["id"], c["name"], tuple(c["images"])) for c in self._index()["classes"]]

    @property
    def total(self) -> int:
        return sum(c.count for c in self.classes())

    def get(self, class_id: int) -> OwnClass:
        found = next((c for c in self.classes() if c.id == class_id), None)
        if found is None:
            raise LabError("own.no_class", id=checks.shown(class_id))
        return found

    def pixels(self, image_id: int) -> np.ndarray:
        """Image `image_id` as stored: SIDE x SIDE x 3, uint8; a LabError when its file is gone or damaged."""
        try:
            with Image.open(self.folder / f"{int(image_id)}.png") as image:
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError, SyntaxError) as error:
            raise LabError("own.image_gone", id=str(image_id), reason=type(error).__name__) from None

    def images(self, class_id: int) -> np.ndarray:
        own = self.get(class_id)
        return np.stack([self.pixels(i) for i in own.images]) if own.images else np.zeros((0, *IMAGE_SHAPE), np.uint8)

    def problems(self) -> list[Text]:
        """Why these classes cannot be trained on yet; none when they can."""
        classes = self.classes()
        found = []
        if len(classes) < MIN_CLASSES:
            found.append(Text("own.too_few_classes", least=MIN_CLASSES, count=len(classes)))
        found += [Text("own.too_few_images", name=c.name, count=c.count, least=MIN_IMAGES)
                  for c in classes if c.count < MIN_IMAGES]
        return found

    # -- changing -------------------------------------------------------------------------------------

    def add_class(self, name: str) -> OwnClass:
        name = clean_name(name)
        with self._lock:
            index = self._index()
            self._check_new_name(index, name)
            if len(index["classes"]) >= MAX_CLASSES:
                raise LabError("own.class_limit", most=str(MAX_CLASSES))
            made = {"id": self._next(index), "name": name, "images": []}
            index["classes"].append(made)
            self._write(index)
        return OwnClass(made["id"], name, ())

    def rename_class(self, class_id: int, name: str) -> None:
        name = clean_name(name)
        with self._lock:
            index = self._index()
            entry = self._entry(index, class_id)
            if entry["name"] != name:
                self._check_new_name(index, name, but=class_id)
                entry["name"] = name
                self._write(index)

    def remove_class(self, class_id: int) -> None:
        with self._lock:
            index = self._index()
            entry = self._entry(index, class_id)
            index["classes"].remove(entry)
            self._write(index)
            for image_id in entry["images"]:
                (self.folder / f"{image_id}.png").unlink(missing_ok=True)

    def remove_image(self, class_id: int, image_id: int) -> None:
        with self._lock:
            index = self._index()
            entry = self._entry(index, class_id)
            if image_id in entry["images"]:
                entry["images"].remove(image_id)
                self._write(index)
                (self.folder / f"{image_id}.png").unlink(missing_ok=True)

    def add_images(self, class_id: int, files: list[tuple[str, bytes]]) -> Added:
        """Files (name, bytes) into one class: each read safely; one that cannot be read is skipped with why."""
        self._check_room(self._index(), len(files))  # before any decoding: a refusal costs nothing
        decoded, added = _decode_all(files)
        with self._lock:
            index = self._index()
            entry = self._entry(index, class_id)
            self._check_room(index, len(decoded))
            self._store(index, entry, decoded)
            self._write(index)
        added.added[entry["name"]] = len(decoded)
        return added

    def add_zip(self, data: bytes, name: str = "") -> Added:
        """A zip of class folders (one top folder around them is allowed): each folder's images join the
        class of that name, made where there is none. Nothing changes when the zip is refused as a whole
        (not a zip, empty, too many classes, too many images)."""
        decoded, skipped = zip_classes(data, name, room=self.max_images - self.total)
        if not decoded:
            raise LabError("own.zip_no_images", name=name or Text("errors.the_upload"))
        with self._lock:
            index = self._index()
            by_name = {name_key(c["name"]): c for c in index["classes"]}
            new = [f for f in decoded if name_key(f) not in by_name]
            if len(index["classes"]) + len(new) > MAX_CLASSES:
                raise LabError("own.too_many_classes", most=str(MAX_CLASSES),
                               count=str(len(index["classes"]) + len(new)))
            self._check_room(index, sum(len(images) for images in decoded.values()))
            result = Added(skipped=skipped)
            for folder, images in decoded.items():
                entry = by_name.get(name_key(folder))
                if entry is None:
                    entry = {"id": self._next(index), "name": folder, "images": []}
                    index["classes"].append(entry)
                    by_name[name_key(folder)] = entry
                self._store(index, entry, images)
                result.added[entry["name"]] = result.added.get(entry["name"], 0) + len(images)
            self._write(index)
        return result

    # -- training -------------------------------------------------------------------------------------

    def dataset(self, seed: int = 0) -> Dataset:
        """The classes as train and test images: TEST_SHARE of each class held out, drawn with `seed`.
        Read whole under the folder's lock, so an image removed in another tab meanwhile is not half-read."""
        with self._lock:
            problems = self.problems()
            if problems:
                raise LabError("own.not_ready", why=problems[0])
            classes = self.classes()
            x = np.stack([self.pixels(i) for c in classes for i in c.images])
        y = np.concatenate([np.full(c.count, k, np.int64) for k, c in enumerate(classes)])
        return split(x, y, tuple(c.name for c in classes), seed, name="own", source="workspace")

    def freeze(self, seed: int = 0, keep: set | frozenset = frozenset()) -> Path:
        """The split a run trains on, written once as an .npz in Keras's layout (see `data.load_npz`);
        the same classes and seed give the same file. Other splits go, but for those in `keep` (the ones
        the workspace's runs trained on)."""
        index = self.folder / "classes.json"
        memo = (str(self.folder), index.read_bytes() if index.is_file() else b"",
                index.stat().st_mtime_ns if index.is_file() else 0, seed)
        known = _FROZEN.get(memo)
        if known is not None and known.is_file():  # the page asks on every rerun: the images are read once
            return known
        data = self.dataset(seed)
        frozen = self.folder / "frozen"
        frozen.mkdir(parents=True, exist_ok=True)
        from_images = fingerprint_of(data)
        path = frozen / f"own-{from_images}.npz"
        if not path.is_file():
            write_atomic(path, lambda f: np.savez(f, **dataset_arrays(data)))
        kept = {Path(p).name for p in keep} | {path.name}
        for old in frozen.glob("own-*.npz"):
            if old.name not in kept:
                old.unlink(missing_ok=True)
        if len(_FROZEN) > 256:
            _FROZEN.clear()
        _FROZEN[memo] = path
        return path

    # -- the index ------------------------------------------------------------------------------------

    def _index(self) -> dict:
        path = self.folder / "classes.json"
        if not path.is_file():
            return {"classes": [], "next": 1}
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
            well_formed = isinstance(index, dict) and isinstance(index.get("next"), int) and \
                isinstance(index.get("classes"), list) and all(
                    isinstance(c, dict) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str)
                    and isinstance(c.get("images"), list) and all(isinstance(i, int) for i in c["images"])
                    for c in index["classes"])
        except (OSError, ValueError):
            well_formed = False
        if not well_formed:
            raise LabError("own.index_damaged")
        return index

    def start_over(self) -> None:
        """Every class and image gone, even when the list of them cannot be read any more."""
        with self._lock:
            for item in self.folder.glob("*.png"):
                item.unlink(missing_ok=True)
            self._write({"classes": [], "next": 1})  # the memo of frozen splits goes by the index's time too

    def _write(self, index: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / "classes.json", json.dumps(index, ensure_ascii=False).encode("utf-8"))

    @staticmethod
    def _next(index: dict) -> int:
        number = index["next"]
        index["next"] = number + 1
        return number

    @staticmethod
    def _entry(index: dict, class_id: int) -> dict:
        entry = next((c for c in index["classes"] if c["id"] == class_id), None)
        if entry is None:
            raise LabError("own.no_class", id=checks.shown(class_id))
        return entry

    @staticmethod
    def _check_new_name(index: dict, name: str, but: int | None = None) -> None:
        taken = next((c["name"] for c in index["classes"] if same_name(c["name"], name) and c["id"] != but), None)
        if taken is not None:
            raise LabError("own.name_taken", name=taken)

    def _check_room(self, index: dict, more: int) -> None:
        held = sum(len(c["images"]) for c in index["classes"])
        if held + more > self.max_images:
            raise LabError("own.full", most=str(self.max_images), held=str(held), more=str(more))

    def _store(self, index: dict, entry: dict, images: list[np.ndarray]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for pixels in images:
            image_id = self._next(index)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")
            write_atomic(self.folder / f"{image_id}.png", buffer.getvalue())
            entry["images"].append(image_id)


def _decode_all(files: list[tuple[str, bytes]]) -> tuple[list[np.ndarray], Added]:
    decoded, added = [], Added()
    for name, data in files:
        try:
            decoded.append(read_image(data, IMAGE_SHAPE, digit=False, name=name))
        except LabError as refused:
            added.skipped.append((name, refused.text))
    return decoded, added


def zip_classes(data: bytes, name: str = "", room: int | None = None
                ) -> tuple[dict[str, list[np.ndarray]], list[tuple[str, Text]]]:
    """A zip's images by class folder, each read as it comes (only its 96 px pixels are kept), and what
    was left out with why. Nothing in the zip is written anywhere: a `../` or absolute name cannot reach
    outside; it is left out, named. One top folder holding all the class folders (as zipping a folder
    makes) is looked through. Refused whole, before an image is read, when the zip lists more entries
    than MAX_ZIP_MEMBERS, more images than `room`, or images that would inflate past MAX_ZIP_IMAGE_BYTES
    each on average (a few kilobytes that claim gigabytes)."""
    shown = name or Text("errors.the_upload")
    listed = _listed_entries(data)
    if listed is not None and listed > MAX_ZIP_MEMBERS:  # read from the zip's last bytes, before its directory
        raise LabError("own.zip_members", name=shown, count=str(listed), most=str(MAX_ZIP_MEMBERS))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, UnicodeDecodeError):
        raise LabError("own.not_zip", name=shown) from None
    if len(archive.infolist()) > MAX_ZIP_MEMBERS:
        raise LabError("own.zip_members", name=shown, count=str(len(archive.infolist())), most=str(MAX_ZIP_MEMBERS))
    skipped, kept = [], []
    for info in entries:
        parts = _parts(info.filename)
        if parts is None:
            skipped.append((info.filename, Text("errors.own.outside")))
        elif any(p.casefold() in JUNK_FOLDERS or p.startswith(".") for p in parts) or \
                parts[-1].casefold() in JUNK_NAMES:
            continue  # a system's own files (.DS_Store, __MACOSX): not the learner's, not worth a word
        elif not parts[-1].casefold().endswith(IMAGE_SUFFIXES):
            skipped.append((info.filename, Text("errors.own.not_image")))
        else:
            kept.append((parts, info))
    if not kept and not skipped:
        raise LabError("own.zip_empty", name=shown)
    tops = {parts[0] for parts, _ in kept}
    if len(tops) == 1 and any(len(parts) >= 3 for parts, _ in kept):
        kept = [(parts[1:], info) for parts, info in kept]  # one folder around the class folders
    if room is not None and len(kept) > room:
        raise LabError("own.zip_full", name=shown, room=str(room), more=str(len(kept)))
    inflated = sum(info.file_size for _, info in kept)
    if inflated > max(1, len(kept)) * MAX_ZIP_IMAGE_BYTES:
        raise LabError("own.zip_inflates", name=shown, mb=f"{inflated / 2**20:,.0f}", count=str(len(kept)))
    folders: dict[str, list[np.ndarray]] = {}
    for parts, info in kept:
        if len(parts) < 2:
            skipped.append((info.filename, Text("errors.own.no_folder")))
            continue
        try:
            folder = clean_name(parts[0])
        except LabError as refused:
            skipped.append((info.filename, refused.text))
            continue
        if info.file_size > MAX_BYTES:
            skipped.append((info.filename, Text("errors.image_too_big", name=parts[-1],
                                                mb=f"{info.file_size / 2**20:.1f}", limit=str(MAX_BYTES // 2**20))))
            continue
        if info.flag_bits & 0x1:
            skipped.append((info.filename, Text("errors.own.encrypted")))
            continue
        try:
            content = archive.read(info)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError, zlib.error,
                lzma.LZMAError) as error:
            skipped.append((info.filename, Text("errors.own.damaged", reason=type(error).__name__)))
            continue
        try:
            pixels = read_image(content, IMAGE_SHAPE, digit=False, name=info.filename)
        except LabError as refused:
            skipped.append((info.filename, refused.text))
            continue
        key = next((k for k in folders if same_name(k, folder)), folder)
        folders.setdefault(key, []).append(pixels)
    if len(folders) > MAX_CLASSES:
        raise LabError("own.too_many_classes", most=str(MAX_CLASSES), count=str(len(folders)))
    return folders, skipped


def _listed_entries(data: bytes) -> int | None:
    """The entry count a zip's end record states (65,535 when it defers to a ZIP64 record), or None
    when there is no end record to read: zipfile then refuses the file."""
    tail = data[-(2**16 + 22):]
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 12:
        return None
    return struct.unpack("<H", tail[at + 10: at + 12])[0]


def _parts(filename: str) -> tuple[str, ...] | None:
    """An entry's path as its folders and file name; None for one that climbs out (`..`) or is absolute."""
    text = filename.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        return None
    parts = tuple(p for p in PurePosixPath(text).parts if p not in ("", "."))
    if not parts or ".." in parts:
        return None
    return parts


def split_counts(counts: list[int], share: float = TEST_SHARE) -> list[tuple[int, int]]:
    """(train, test) images per class that `split` makes of classes of these sizes."""
    return [(n - held_out(n, share), held_out(n, share)) for n in counts]


def dataset_arrays(data: Dataset) -> dict[str, np.ndarray]:
    """A dataset as an .npz's arrays in Keras's layout, with its class names."""
    return {"x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test, "y_test": data.y_test,
            "class_names": np.array(data.class_names, dtype=str)}


def fingerprint_of(data: Dataset) -> str:
    """Identifies a split by its images, labels and class names."""
    digest = hashlib.blake2b(digest_size=12)
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        digest.update(np.ascontiguousarray(array).view(np.uint8))
    digest.update("\n".join(data.class_names).encode("utf-8"))
    return digest.hexdigest()


