"""A run bundle: one .zip that keeps a learner's work (configuration, weights, optimizer state,
history) so that it can be uploaded again later to predict with or to continue training.

Reading a bundle never runs anything from the file. A `.keras` file can name layers, functions
and objects to recreate, and Keras's safe mode has been bypassed more than once; a bundle holds
only data. Its configuration goes through the same checks as a run typed in by hand, cnnlab
builds the network from it, and only arrays are read into that network: plain `.npy` arrays whose
headers are checked against the shapes the network expects before a byte of them is read.

The network is built last. The zip's directory and the arrays' headers are its manifest: which
arrays it holds, their shapes, and the bytes each will unpack to. They are checked against the
weights the configuration needs, counted from a build without weights (as the layer table counts
them), so a small file that names a large network and does not carry its weights costs the server
a few milliseconds, not the network's memory.

    run.json              format, version, config, class names, dataset, history, result
    weights/00000.npy     the model's weights, in `model.weights` order
    optimizer/00000.npy   the optimizer's variables (absent for transfer learning's head)
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import re
import zipfile
from dataclasses import dataclass

import keras
import numpy as np

from . import checks, memory, snapshots
from .architectures import ModelConfig, build_model, build_without_weights, get_architecture
from .errors import LabError, Text
from .training import RECIPES, History, Run, TrainConfig, make_optimizer, one_cycle

FORMAT, VERSION = "cnnlab-run", 1
MAX_JSON_BYTES = 20 * 2**20        # a run.json holds a few thousand history rows at most
MAX_PACKING = 10                   # trained weights hardly compress (this lab's bundles: to 90%); zeros pack 1000:1
_MEMBER = re.compile(r"(weights|optimizer)/(\d{5})\.npy")


@dataclass(frozen=True)
class Packed:
    """A run as the bytes of its bundle, with its last test predictions and epochs: how a run trained in
    another process reaches the server's disk without its network being built there."""

    bundle: bytes
    predictions: np.ndarray | None
    epochs: int
    snapshots: bytes | None = None  # its snapshots so far (snapshots.encode), kept beside its bundle


def pack(run: Run) -> Packed:
    """The run as it stands, packed as a checkpoint is kept (arrays stored, not compressed)."""
    out = io.BytesIO()
    write_bundle(run, out, compress=False)
    return Packed(out.getvalue(), run.test_predictions, run.epochs_completed,
                  snapshots.encode(run.snapshots) if run.snapshots else None)


def bundle_bytes(run: Run) -> bytes:
    """The run as the bytes of a bundle .zip, for a download."""
    out = io.BytesIO()
    write_bundle(run, out)
    return out.getvalue()


def write_bundle(run: Run, out, compress: bool = True) -> None:
    """The run as a bundle .zip, written into the binary file `out` one array at a time: a checkpoint
    of a large network never holds a second copy of its weights and optimizer state in memory.
    Without `compress` the arrays are stored as they are: trained weights pack only to about 90%, and
    storing them is several times faster (bench/checkpoint_cost.py)."""
    record = {"format": FORMAT, "version": VERSION, "config": run.config.to_dict(),
              "class_names": list(run.class_names), "dataset": run.dataset, "history": run.history.to_dict(),
              "result": run.summary(), "stopped": run.stopped, "train_seconds": run.train_seconds,
              "test_loss": run.test_loss, "test_accuracy": run.test_accuracy,
              "versions": {"keras": keras.__version__, "backend": keras.backend.backend()}}
    optimizer = run.optimizer.variables if _own_optimizer(run) else []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED, compresslevel=1) as zf:
        zf.writestr("run.json", json.dumps(record, indent=1), compress_type=zipfile.ZIP_DEFLATED)
        for folder, variables in (("weights", run.model.weights), ("optimizer", optimizer)):
            for i, variable in enumerate(variables):
                array = np.array(keras.ops.convert_to_numpy(variable), order="C")  # (ascontiguousarray: scalars 1-d)
                with zf.open(f"{folder}/{i:05d}.npy", "w") as member:
                    np.save(member, array, allow_pickle=False)


def _own_optimizer(run: Run) -> bool:
    """The optimizer's state belongs in the bundle when it trained the whole model (where only a new
    head trains, on a frozen base's features, its variables are the head's, not the model's)."""
    trained_whole = get_architecture(run.config.model.arch).head is None
    return run.optimizer is not None and bool(run.optimizer.variables) and trained_whole


@dataclass(frozen=True)
class _Listing:
    record: dict
    weights: list[zipfile.ZipInfo]
    optimizer: list[zipfile.ZipInfo]


def read_bundle(data: bytes, max_bytes: int, optimizer: bool = True) -> Run:
    """A Run rebuilt from a bundle's bytes: the model built by cnnlab from the bundle's checked
    configuration, with the bundle's weights in it (and, with `optimizer`, the optimizer's state to
    train on from; a run only looked at goes without). Anything oversized, damaged, or not matching
    its own configuration is refused with a LabError that says which."""
    if not isinstance(data, (bytes, bytearray)):
        raise LabError("bundle.not_bytes", type=type(data).__name__)
    if len(data) > max_bytes:
        raise LabError("bundle.too_big", size=_mb(len(data)), limit=_mb(max_bytes))
    _check_directory(bytes(data[-(2**16 + 22 + 20):]))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            listing = _list(zf, max_bytes)
            config, class_names = _checked_config(listing.record)
            weight_bytes = _check_manifest(zf, listing, _weights_needed(config.model), max_bytes)
            model = _model_for(config, weight_bytes)
            _fill(zf, listing.weights, model.weights, "weights")
            _settle(model)
            run = _run(listing.record, config, class_names, model)
            if listing.optimizer and optimizer:
                run.optimizer = _optimizer(zf, listing.optimizer, model, config)
    except LabError:
        raise
    except Exception as error:  # noqa: BLE001 - zip, zlib, lzma, JSON, .npy or type errors: one damaged file
        raise LabError("bundle.unreadable", reason=_short(error)) from None
    return run


MAX_MEMBERS = 4096                 # a bundle of the largest zoo base has a few hundred arrays
MAX_DIRECTORY_BYTES = 2**20


def _check_directory(tail: bytes) -> None:
    """Refuse a zip whose central directory is huge before Python's zipfile reads all of it (a
    directory of millions of entries would take gigabytes and seconds of the server). Bundles are
    plain zips: a zip64 directory is refused too."""
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) - end < 22:
        raise LabError("bundle.unreadable", reason="no zip directory at its end")
    entries = int.from_bytes(tail[end + 10:end + 12], "little")
    size = int.from_bytes(tail[end + 12:end + 16], "little")
    zip64 = end >= 20 and tail[end - 20:end - 16] == b"PK\x06\x07"
    if zip64 or entries > MAX_MEMBERS or size > MAX_DIRECTORY_BYTES:
        raise LabError("bundle.unreadable", reason=f"its directory lists {entries:,} entries"
                       + (" in zip64 form" if zip64 else ""))


def _list(zf: zipfile.ZipFile, max_bytes: int) -> _Listing:
    infos = zf.infolist()
    names = [info.filename for info in infos]
    strange = [name for name in names if name != "run.json" and not _MEMBER.fullmatch(name)]
    if "run.json" not in names or strange or len(set(names)) != len(names):
        raise LabError("bundle.not_a_bundle", found=", ".join(sorted(names)[:5]) or "nothing")
    if sum(info.file_size for info in infos) > 2 * max_bytes:  # a zip bomb unpacks to far more than it weighs
        raise LabError("bundle.too_big", size=_mb(sum(info.file_size for info in infos)), limit=_mb(max_bytes))
    run_info = zf.getinfo("run.json")
    if run_info.file_size > MAX_JSON_BYTES:
        raise LabError("bundle.unreadable", reason=f"run.json is {_mb(run_info.file_size)} MB")
    if run_info.file_size > MAX_PACKING * max(run_info.compress_size, 1):  # the lab's own pack about 4:1
        raise LabError("bundle.unreadable", reason=f"run.json unpacks to {_mb(run_info.file_size)} MB "
                                                   f"from {run_info.compress_size:,} bytes")
    record = json.loads(zf.read(run_info).decode("utf-8"))
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise LabError("bundle.not_a_bundle", found="run.json without format " + repr(FORMAT))
    if record.get("version") != VERSION:
        raise LabError("bundle.version", version=repr(record.get("version"))[:20], supported=VERSION)
    members = lambda folder: sorted((i for i in infos if i.filename.startswith(folder + "/")),  # noqa: E731
                                    key=lambda i: i.filename)
    return _Listing(record, members("weights"), members("optimizer"))


def _checked_config(record: dict) -> tuple[TrainConfig, tuple[str, ...]]:
    """The bundle's configuration, checked like one typed in by hand. A path to data in it is
    dropped: a file from elsewhere never chooses what this server reads."""
    config = TrainConfig.from_dict(record.get("config"))
    if config.model.raw_shape is None or config.model.classes is None:
        raise LabError("bundle.unreadable", reason="its configuration has no image shape or class count")
    config = dataclasses.replace(config, data_path=None, source="bundled").resolved()  # the model resolved too
    names = record.get("class_names")
    if (not isinstance(names, list) or len(names) != config.model.classes
            or not all(isinstance(n, str) and 0 < len(n) <= 100 for n in names)):
        raise LabError("bundle.unreadable", reason=f"it needs {config.model.classes} class names, one per output")
    return config, tuple(names)


def _weights_needed(model: ModelConfig) -> tuple[tuple[tuple[int, ...], np.dtype], ...]:
    """Each weight's shape and type, in `model.weights` order, from a build without weights."""
    return _needed(json.dumps(model.to_dict(), sort_keys=True))


@functools.lru_cache(maxsize=64)
def _needed(config_json: str) -> tuple[tuple[tuple[int, ...], np.dtype], ...]:
    model = build_without_weights(ModelConfig.from_dict(json.loads(config_json)))
    return tuple((tuple(w.shape), np.dtype(w.dtype)) for w in model.weights)


def _check_manifest(zf: zipfile.ZipFile, listing: _Listing, needed, max_bytes: int) -> int:
    """The bytes the network's weights take, once the bundle's weights match them without a byte of
    their data read: the network's size against this server's limit, how many arrays there are,
    how tightly they are packed, then each one's header (shape, type) and declared size. The
    optimizer's arrays, whose shapes are known only once it is built, are checked against their
    own headers."""
    weight_bytes = sum(math.prod(shape) * dtype.itemsize for shape, dtype in needed)
    if weight_bytes > 2 * max_bytes:
        raise LabError("bundle.too_big", size=_mb(weight_bytes), limit=_mb(max_bytes))
    if len(listing.weights) != len(needed):
        raise LabError("bundle.mismatch", what="weights", found=len(listing.weights), expected=len(needed))
    unpacked, packed = (sum(getattr(i, size) for i in listing.weights) for size in ("file_size", "compress_size"))
    if unpacked > MAX_PACKING * max(packed, 1):
        raise LabError("bundle.packed", size=_mb(unpacked), packed=_mb(packed))
    for info, (shape, dtype) in zip(listing.weights, needed):
        with zf.open(info) as f:
            _header(f, info, shape, dtype, "weights")
    for info in listing.optimizer:
        with zf.open(info) as f:
            _header(f, info, None, None, "optimizer")
    return weight_bytes


def _model_for(config: TrainConfig, weight_bytes: int) -> keras.Model:
    """The network, built only when it fits in memory with its weights being read in."""
    memory.require(2 * weight_bytes, Text("errors.bundle.what"))
    return build_model(config.model, load_weights=False)


def _settle(model: keras.Model) -> None:
    """Layers that compute from their variables once they are set: a Normalization's mean and variance
    (transfer learning's head) are read from its variables by `finalize_state`, as Keras's own loading
    does. Without it, a head read back from a bundle standardises with its initial statistics."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()
        elif isinstance(layer, keras.Model):
            _settle(layer)


def _fill(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], variables, what: str) -> None:
    if len(members) != len(variables):
        raise LabError("bundle.mismatch", what=what, found=len(members), expected=len(variables))
    for info, variable in zip(members, variables):
        variable.assign(_array(zf, info, tuple(variable.shape), np.dtype(variable.dtype), what))


def _header(f, info: zipfile.ZipInfo, shape: tuple | None, expected: np.dtype | None, what: str) -> np.dtype:
    """A .npy member's type, once its header matches the expected shape and type (None: any) and
    the size the zip's directory declares for it. Nothing after the header is read."""
    version = np.lib.format.read_magic(f)
    header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if header is None:
        raise LabError("bundle.unreadable", reason=f"{info.filename} is not a plain array")
    found, fortran, dtype = header(f, max_header_size=1000)
    if shape is not None and tuple(found) != shape:
        raise LabError("bundle.mismatch", what=f"{what} {info.filename}", found=tuple(found), expected=shape)
    kinds = "fiu" if expected is None else "f" if expected.kind == "f" else "iu"  # a step count is whole
    if dtype.kind not in kinds or dtype.hasobject or fortran or dtype.itemsize > 8:
        raise LabError("bundle.unreadable", reason=f"{info.filename} holds {dtype}, not {expected or 'plain'} numbers")
    if info.file_size != f.tell() + math.prod(found) * dtype.itemsize:
        raise LabError("bundle.unreadable", reason=f"{info.filename} is cut short or has extra bytes")
    return dtype


def _array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, shape: tuple, expected: np.dtype, what: str) -> np.ndarray:
    """One .npy member, its header checked against the expected shape before its data is read."""
    with zf.open(info) as f:
        dtype = _header(f, info, shape, expected, what)
        count = math.prod(shape)
        raw = f.read(count * dtype.itemsize + 1)
    if len(raw) != count * dtype.itemsize:
        raise LabError("bundle.unreadable", reason=f"{info.filename} is cut short or has extra bytes")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(expected)
    if expected.kind == "f" and not np.isfinite(array).all():
        raise LabError("bundle.not_finite", member=info.filename)
    return array


def _run(record: dict, config: TrainConfig, class_names: tuple[str, ...], model: keras.Model) -> Run:
    history = record.get("history")
    if not isinstance(history, dict):
        raise LabError("bundle.unreadable", reason="its history is not an object")
    batches, epochs = history.get("batches", []), history.get("epochs", [])
    _check_history(batches, ("epoch", "step", "seen", "loss", "accuracy"))
    _check_history(epochs, ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"))
    if [e["epoch"] for e in epochs] != list(range(1, len(epochs) + 1)) or any(
            b["epoch"] > len(epochs) + 1 for b in batches):
        raise LabError("bundle.unreadable", reason="its history's epochs are not numbered 1, 2, 3, ...")
    dataset = record.get("dataset") if isinstance(record.get("dataset"), dict) else {}
    def number(v):
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None

    return Run(config, model, History([dict(b) for b in batches], [dict(e) for e in epochs]), class_names,
               {"name": str(dataset.get("name", config.dataset))[:40], "source": "bundle",
                "image_shape": list(config.model.raw_shape), "n_train": int(number(dataset.get("n_train")) or 0),
                "n_test": int(number(dataset.get("n_test")) or 0)},
               stopped=bool(record.get("stopped", False)), train_seconds=number(record.get("train_seconds")) or 0.0,
               test_loss=number(record.get("test_loss")), test_accuracy=number(record.get("test_accuracy")))


WHOLE = ("epoch", "step", "seen")    # counted from 1; the rest are metrics, None where not measured


def _check_history(rows, keys: tuple[str, ...]) -> None:
    if not isinstance(rows, list) or len(rows) > 10**6:
        raise LabError("bundle.unreadable", reason="its history is not a list of rows")
    last_epoch = 1
    for row in rows:
        if not isinstance(row, dict) or set(row) != set(keys) or not all(
                _whole(row[k]) if k in WHOLE else _metric(row[k]) for k in keys) or row["epoch"] < last_epoch:
            raise LabError("bundle.unreadable", reason=f"a history row is not {', '.join(keys)} in order")
        last_epoch = row["epoch"]


def _whole(value) -> bool:
    return checks.is_whole(value) and 1 <= value <= 10**9


def _metric(value) -> bool:
    return value is None or (checks.is_whole(value) or isinstance(value, float)) and math.isfinite(value)


def _optimizer(zf, members, model: keras.Model, config: TrainConfig):
    """The optimizer the run was training with, its state restored, ready for `train(resume=...)`."""
    constant = RECIPES[config.recipe].schedule == "constant"
    optimizer = make_optimizer(config, one_cycle(config, 1))  # a scheduled rate, as the run had, keeps no variable
    optimizer.build(model.trainable_variables)
    _fill(zf, members, optimizer.variables, "optimizer")
    if not 0 <= int(keras.ops.convert_to_numpy(optimizer.iterations)) <= 10**9:
        raise LabError("bundle.unreadable", reason="its optimizer's step count is out of range")
    if constant:
        optimizer.learning_rate = config.learning_rate  # the checked setting, not a number from the file
    return optimizer


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f}" if n >= 2**20 else f"{n / 2**20:.2f}"


def _short(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:200]
