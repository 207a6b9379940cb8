"""The learner's own runs, in this browser session: started, kept, uploaded, chosen."""

from __future__ import annotations

import streamlit as st

import cnnlab
from cnnlab.bundle import read_bundle
from cnnlab.errors import LabError, Text
from cnnlab.runner import BackgroundRun

from .resources import dataset, training_pool
from .text import t


def runs() -> list[BackgroundRun]:
    """This learner's runs, oldest first."""
    return st.session_state.setdefault("runs", [])


def latest() -> BackgroundRun | None:
    return runs()[-1] if runs() else None


def active_run() -> BackgroundRun | None:
    return next((run for run in reversed(runs()) if run.active), None)


def finished_runs() -> list[BackgroundRun]:
    return [run for run in runs() if run.status.finished and run.run is not None]


def kept_runs() -> int:
    """Finished runs kept per session: every run holds its model in the server's memory."""
    return training_pool().settings.kept_runs


def start_run(config: cnnlab.TrainConfig, label: str = "", resume: BackgroundRun | None = None) -> BackgroundRun:
    """Queue a run for this learner (continuing `resume`'s model when given)."""
    config = config.resolved()
    run = training_pool().submit(config, dataset(config.dataset), label or (
        t("runs.continued", id=resume.id) if resume else ""), resume.run if resume else None)
    return _keep(run)


def _keep(run: BackgroundRun) -> BackgroundRun:
    """Add a run to this learner's; beyond kept_runs(), the oldest finished run is let go."""
    history = runs()
    history.append(run)
    while len(history) > kept_runs():
        oldest_finished = next((r for r in history if not r.active), None)
        if oldest_finished is None:
            break
        history.remove(oldest_finished)
    return run


def import_bundle(data: bytes) -> BackgroundRun:
    """A run bundle the learner uploaded, rebuilt by cnnlab (nothing in the file is run), kept
    like a run trained here."""
    pool = training_pool()
    run = read_bundle(data, pool.settings.max_bundle_bytes)
    images = dataset(run.config.dataset)
    if (tuple(run.config.model.raw_shape), run.config.model.classes) != (images.image_shape, images.num_classes):
        raise LabError("bundle.other_data", shape=tuple(run.config.model.raw_shape),
                       classes=run.config.model.classes, dataset=Text(f"datasets.{images.name}.title"))
    run.class_names = images.class_names  # the lab's own names, not labels from the file
    return _keep(pool.adopt(run, images, t("runs.imported")))


def validation_sample(run: BackgroundRun) -> cnnlab.Dataset:
    """The test sample this run was validated on."""
    return run.data.sample(run.config.sample, seed=run.config.seed)
