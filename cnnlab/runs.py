"""Runs on disk: a run saved as a folder, and a saved run read back, beside the bundle format itself.

A run folder (`cnnlab train --out DIR`) holds:

    bundle.zip      the run, to predict with or to continue training (see `bundle`)
    model.keras     the trained network, for Keras elsewhere
    history.json    the curves: every batch and every epoch
    run.json        the settings, the class names, the data it trained on, the result
"""

from __future__ import annotations

import json
from pathlib import Path

import keras

from .architectures import build_model
from .bundle import bundle_bytes, read_bundle
from .training import RECIPES, Run


def save_run(run: Run, out_dir: str | Path) -> Path:
    """Write bundle.zip, model.keras, history.json and run.json into out_dir (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bundle.zip").write_bytes(bundle_bytes(run))
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
