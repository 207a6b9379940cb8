"""Runs on disk: a run saved as a folder, and a saved run read back, beside the bundle format itself.

A run folder (`cnnlab train --out DIR`) holds:

    bundle.zip      the run, to predict with or to continue training (see `bundle`)
    model.keras     the trained network, for Keras elsewhere
    history.json    the curves: every batch and every epoch
    run.json        the settings, the class names, the data it trained on, the result
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras

from .architectures import build_model
from .bundle import read_bundle, write_bundle
from .datasets import DATASETS
from .errors import LabError
from .training import RECIPES, Run


def save_run(run: Run, out_dir: str | Path) -> Path:
    """Write bundle.zip, model.keras, history.json and run.json into out_dir (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "bundle.zip", "wb") as f:
        write_bundle(run, f)
    model = run.model
    if RECIPES[run.config.recipe].schedule != "constant":  # the schedule is cnnlab's class, unknown to Keras
        model = build_model(run.config.model, load_weights=False)  # elsewhere: save the network uncompiled
        model.set_weights(run.model.get_weights())
    model.save(out / "model.keras")
    (out / "history.json").write_text(json.dumps(run.history.to_dict(), indent=1))
    record = {"config": run.config.to_dict(), "class_names": list(run.class_names), "dataset": run.dataset,
              "result": run.summary(), "versions": {"keras": keras.__version__, "backend": keras.backend.backend()}}
    (out / "run.json").write_text(json.dumps(record, indent=1))
    return out


def history_json(run: Run) -> str:
    """The run's settings, result and curves as one JSON document, for a download."""
    return json.dumps({"config": run.config.to_dict(), "result": run.summary(), **run.history.to_dict()}, indent=1)


def bundle_of(path: str | Path) -> Path | None:
    """The bundle a path names: a run folder's bundle.zip, or a .zip itself; None for anything else."""
    path = Path(path)
    if path.is_dir():
        return path / "bundle.zip"
    return path if path.suffix == ".zip" else None


def read_run(path: str | Path) -> Run:
    """The run saved at `path` (a bundle or a run folder), rebuilt from its bundle: only data is read."""
    bundle = bundle_of(path)
    if bundle is None or not bundle.is_file():
        raise FileNotFoundError(f"No run bundle at {bundle or path}. Give the bundle.zip or the directory "
                                "`cnnlab train --out` wrote.")
    return read_bundle(bundle.read_bytes(), max_bytes=max(bundle.stat().st_size, 1))


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
    bundle = bundle_of(path)
    if bundle is not None and bundle.is_file():
        run = read_run(bundle)
        return TrainedModel(run.model, run.class_names, bundle)
    model_file = path / "model.keras" if path.is_dir() else path
    if not model_file.is_file():
        where = f"{path} has no bundle.zip" if path.is_dir() else f"No such model file: {path}"
        raise FileNotFoundError(f"{where}. Give a run bundle (.zip), a .keras file or the directory that "
                                "`cnnlab train --out` wrote.")
    try:
        model = keras.models.load_model(model_file, compile=False)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise LabError("not_keras_model", name=model_file.name, reason=type(error).__name__) from None
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
