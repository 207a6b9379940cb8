"""The pieces several pages draw: a refusal, the trained-run and test-image
pickers, the drawing pad, and pictures at a size a learner can see."""

from __future__ import annotations

import base64
import contextlib
import functools
from pathlib import Path

import numpy as np
import streamlit as st
import streamlit.components.v2 as components

import cnnlab
from cnnlab import i18n, images
from cnnlab.runner import BackgroundRun
from cnnlab.workspaces import StoredRun

from . import nav, session
from .nav import TRAIN_PAGE
from .text import language, run_label, say, t

PAD = Path(__file__).parent / "pad"
IMAGE_UPLOAD_MB = images.MAX_BYTES // 2**20  # photos and digits; run bundles may be larger (classroom.toml)
# The run "get one in one click" starts: LeNet-5 past 90% on the bundled MNIST in about a minute.
QUICK_RUN = cnnlab.TrainConfig(cnnlab.ModelConfig("lenet5"), sample=0.1, epochs=1, batch_size=32, learning_rate=3e-3,
                               seed=1)  # 6,000 digits: seconds


@contextlib.contextmanager
def refusal(stop: bool = True, arch: cnnlab.Architecture | None = None):
    """Run the block; a learner's error in it is shown as a warning in the learner's language (with
    a "Use this" button per setting that would fit, for a memory refusal and `arch`), and with
    `stop` the page ends there."""
    try:
        yield
    except ValueError as problem:  # cnnlab's LabErrors, and Keras's own refusals passed through
        st.warning(say(problem))
        if arch is not None:
            offer_suggestions(problem, arch)
        if stop:
            st.stop()


def adjustable_keys(arch: cnnlab.Architecture, own: bool = False) -> dict[str, str]:
    """The Train page's widget keys of the settings a memory refusal may suggest changing
    (`cost.Suggestion.changes`), per architecture where their defaults differ, and apart for own classes."""
    name = f"own-{arch.name}" if own else arch.name
    return {"input_size": f"train-input-{name}", "width": f"train-width-{name}",
            "sample": f"train-sample-{name}", "accumulation_steps": "train-accumulation"}


def seed_widgets(defaults: dict, offered: dict | None = None) -> None:
    """Give widgets their first values through Session State, so that a button can set them later
    without Streamlit's warning; a value no longer offered (a batch that changed) goes back to its default."""
    for key, value in defaults.items():
        if key not in st.session_state or key in (offered or {}) and st.session_state[key] not in offered[key]:
            st.session_state[key] = value


def offer_suggestions(problem, arch: cnnlab.Architecture) -> None:
    """A "Use this" button for each setting a memory refusal says would fit (cost.Suggestion)."""
    for i, suggestion in enumerate(getattr(problem, "suggestions", [])):
        st.button(t("train.use_this", option=say(suggestion.text)), key=f"use-{i}", on_click=_apply,
                  args=(adjustable_keys(arch), suggestion.changes))


def _apply(keys: dict[str, str], changes: dict) -> None:
    """A suggestion's "use this": its settings into the widgets, before the page draws them again."""
    for name, value in changes.items():
        st.session_state[keys[name]] = value


def choose_trained_run() -> BackgroundRun | StoredRun:
    """The learner picks one of this workspace's trained models; without one, the page explains how
    to get one in one click and stops there."""
    trained = session.finished_runs()
    if not trained:
        active = session.active_run()
        if active is not None:
            st.info(t("runs.still_training", run=run_label(active)))
            nav.link(TRAIN_PAGE, label=t("runs.watch"), icon="📈")
            st.stop()
        if session.read_only():
            st.info(t("workspace.view_untrained"))
            st.stop()
        st.info(t("runs.none_yet"))
        if st.button(t("runs.quick_lenet"), type="primary"):
            with refusal(stop=False):
                session.start_run(QUICK_RUN, label="quick LeNet-5")
                nav.switch(TRAIN_PAGE)
        st.stop()
    by_id = {run.id: run for run in reversed(trained)}
    return by_id[st.selectbox(t("runs.model"), list(by_id), format_func=lambda i: run_label(by_id[i]))]


def pick_test_image(data: cnnlab.Dataset, key: str, primary: bool = False) -> tuple[int, np.ndarray, int]:
    """A test image to look at: a random one, as the lecture picks it, or one chosen by its index.
    Returns (index, image, true label)."""
    pick_col, index_col = st.columns([1, 2])
    if pick_col.button(t("predict.random"), type="primary" if primary else "secondary") or key not in st.session_state:
        st.session_state[key] = cnnlab.random_test_image(data, np.random.default_rng())[0]
    index = index_col.number_input(t("predict.index"), 0, len(data.x_test) - 1, key=key)
    return index, data.x_test[index], int(data.y_test[index])


def upscaled(image, scale: int = 6, largest: int = 300):
    """A small dataset image enlarged with hard pixel edges, as a learner should see it: `scale` times,
    or less where that would pass `largest` pixels (a 96 px photo of the learner's own classes)."""
    scale = max(1, min(scale, largest // max(image.shape[:2])))
    picture = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    return picture[..., 0] if picture.shape[-1] == 1 else picture


@functools.cache
def _pad(lang: str):
    html = (PAD / "pad.html").read_text().replace("{clear}", i18n.text("your_image.clear", lang))
    return components.component(f"cnnlab_canvas_{lang}", html=html, css=(PAD / "pad.css").read_text(),
                                js=(PAD / "pad.js").read_text())


def drawing_pad(key: str) -> bytes | None:
    """A 280x280 drawing pad built with Streamlit's own component API: black ink on white paper.
    Returns the drawing as PNG bytes, or None before anything is drawn (or after Clear)."""
    result = _pad(language())(key=key, on_png_change=lambda: None)
    data_url = getattr(result, "png", None) or ""
    if not data_url.startswith("data:image/png;base64,"):
        return None
    return base64.b64decode(data_url.split(",", 1)[1])


ZOO_COLUMNS = {"year": "%d", "top1": "%.1f", "top5": "%.1f", "params_m": "%.1f", "params_here": "localized",
               "depth": None, "depth_here": None, "longest_path_here": None, "size_mb": None, "cpu_ms": "%.1f",
               "gpu_ms": "%.1f", "cpu_ms_per_image_here": "%.0f"}  # the numbers, and how each is written
ZOO_LABELS = {"cpu_ms_per_image_here": "zoo.column.cpu_here"}
ZOO_HELP = {"depth_here": "zoo.column.depth_help", "longest_path_here": "zoo.column.longest_help"}
COUNTED = ("params_here", "depth_here", "longest_path_here")  # filled in by Count, for every model at once


def zoo_table(rows: list[dict]) -> bool:
    """The Zoo's table: the documentation's numbers beside ours. What is not counted or timed here yet
    says so, rather than "None". Returns whether every model is counted."""
    counted = all(r["params_here"] is not None for r in rows)
    timed = all(r["cpu_ms_per_image_here"] is not None for r in rows)
    waiting = {column: t("zoo.not_counted") for column in COUNTED if not counted}
    shown = [r | waiting | ({} if timed else {"cpu_ms_per_image_here": t("zoo.not_timed")
                                             if r["cpu_ms_per_image_here"] is None
                                             else f"{r['cpu_ms_per_image_here']:.0f}"}) for r in rows]
    config = {"model": st.column_config.TextColumn(t("zoo.column.model")),
              "notes": st.column_config.TextColumn(t("zoo.column.notes"))}
    for column, number_format in ZOO_COLUMNS.items():
        label = t(ZOO_LABELS.get(column, f"zoo.column.{column}"))
        help_text = t(ZOO_HELP[column]) if column in ZOO_HELP else None
        if column in waiting or column == "cpu_ms_per_image_here" and not timed:
            config[column] = st.column_config.TextColumn(label, help=help_text)
        else:
            config[column] = st.column_config.NumberColumn(label, help=help_text, format=number_format)
    st.dataframe(shown, hide_index=True, width="stretch", height=35 * (len(rows) + 1) + 3, column_config=config,
                 column_order=("model", "year", "top1", "top5", "params_m", "params_here", "depth", "depth_here",
                               "longest_path_here", "size_mb", "cpu_ms", "gpu_ms", "cpu_ms_per_image_here", "notes"))
    return counted
