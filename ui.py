"""What the pages share: server-wide resources and the learner's own runs in Session State.

Read-only things (datasets, the training pool) are created once per server; anything a learner
changes (models, runs) lives in that learner's session only.
"""

from __future__ import annotations

import os

import streamlit as st

import cnnlab
from cnnlab.runner import FINISHED, BackgroundRun, PoolSettings, TrainingPool


def _keep_keras_state_between_reruns() -> None:
    """Stop Streamlit from calling keras.backend.clear_session() after every script run.

    Streamlit does that (script_runner._clean_problem_modules) to tidy up after apps that build
    models in the script. Here models train on background threads while the page redraws every
    second: each clear_session reset Keras's global state under a live run and forced a full
    garbage collection, which slowed LeNet's training more than tenfold. Closing matplotlib's
    figures, the other half of that clean-up, is kept.
    """
    from streamlit.runtime.scriptrunner import script_runner

    def close_figures() -> None:
        import sys

        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")

    script_runner._clean_problem_modules = close_figures


_keep_keras_state_between_reruns()

PAGES = (("streamlit_app.py", "Home", "🏠"), ("pages/1_Architecture.py", "Architecture", "🧱"),
         ("pages/2_Data.py", "Data", "🖼️"), ("pages/3_Train.py", "Train", "📈"), ("pages/4_Predict.py", "Predict", "🔍"))


def page(title: str) -> None:
    """Every page starts here: its browser title and icon, and the lab's navigation in the sidebar.

    The pages/ folder gives each page its deep link (/Train, /Predict, ...); the navigation is
    drawn here so that the home page is called Home rather than after its file.
    """
    path, _, icon = next(p for p in PAGES if p[1] == title)
    st.set_page_config(page_title=f"{title} · CNN Lab" if title != "Home" else "CNN Lab", page_icon=icon,
                       layout="wide")
    with st.sidebar:
        st.markdown("### 🧠 CNN Lab")
        for target, label, symbol in PAGES:
            st.page_link(target, label=label, icon=symbol)
        st.divider()


@st.cache_resource(show_spinner="Loading the dataset once for everyone...")
def dataset(name: str, source: str = "bundled") -> cnnlab.Dataset:
    """Shared by every session, so its arrays are made read-only: no page can change them for others."""
    data = cnnlab.load_dataset(name, source)
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        array.setflags(write=False)
    return data


@st.cache_resource
def training_pool() -> TrainingPool:
    return TrainingPool(PoolSettings(
        max_concurrent=int(os.environ.get("CNNLAB_MAX_CONCURRENT_RUNS", "1")),
        max_run_seconds=float(os.environ.get("CNNLAB_MAX_RUN_MINUTES", "30")) * 60))


def runs() -> list[BackgroundRun]:
    """This learner's runs, oldest first."""
    return st.session_state.setdefault("runs", [])


def active_run() -> BackgroundRun | None:
    return next((run for run in reversed(runs()) if run.active), None)


def finished_runs() -> list[BackgroundRun]:
    return [run for run in runs() if run.status in FINISHED and run.run is not None]


KEPT_RUNS = 5  # per session: every run holds its model in the server's memory


def start_run(config: cnnlab.TrainConfig, label: str = "") -> BackgroundRun:
    """Queue a run for this learner; beyond KEPT_RUNS, the oldest finished run is let go."""
    config = config.resolved()
    run = training_pool().submit(config, dataset(config.dataset), label)
    history = runs()
    history.append(run)
    while len(history) > KEPT_RUNS and not history[0].active:
        history.pop(0)
    return run


def class_label(names, index: int) -> str:
    """'7' for MNIST's digits, '3 · cat' for CIFAR-10."""
    return names[index] if names[index] == str(index) else f"{index} · {names[index]}"


def run_label(run: BackgroundRun) -> str:
    c = run.config
    return f"#{run.id} {c.model.arch} · {c.recipe} · lr {c.learning_rate:g} · {c.epochs} ep"


def duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def gigabytes(n: int) -> str:
    return f"{n / 2**30:.2f} GB"


def upscaled(image, scale: int = 6):
    """A small dataset image enlarged with hard pixel edges, as a learner should see it."""
    import numpy as np

    picture = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    return picture[..., 0] if picture.shape[-1] == 1 else picture
