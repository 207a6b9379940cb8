"""What the whole server shares, made once: the datasets, the workspaces' store, the training pool,
one pretrained network.

Read-only things live here; what a learner changes (runs) lives in that learner's workspace, on disk
(`session.py`).
"""

from __future__ import annotations

import streamlit as st

import cnnlab
from cnnlab import engines, workspaces, zoo
from cnnlab.classroom import classroom_settings
from cnnlab.runner import TrainingPool
from cnnlab.workspaces import Store

from .text import t


def dataset(name: str, source: str = "bundled") -> cnnlab.Dataset:
    """Shared by every session, so its arrays are made read-only: no page can change them for others.
    (A spinner only appears when loading takes longer than half a second: the first time.)"""
    with st.spinner(t("app.loading_dataset")):
        return _dataset(name, source)


@st.cache_resource(show_spinner=False)
def _dataset(name: str, source: str) -> cnnlab.Dataset:
    data = cnnlab.load_dataset(name, source)
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        array.setflags(write=False)
    return data


def data_of(config: cnnlab.TrainConfig) -> cnnlab.Dataset:
    """The images a run trains on: the file or folder its settings name (a learner's own classes, frozen
    as they were at Start), else its dataset."""
    if config.data_path is None:
        return dataset(config.dataset, config.source)
    with st.spinner(t("app.loading_dataset")):
        return _data_file(str(config.data_path))


@st.cache_resource(show_spinner=False, max_entries=8)
def _data_file(path: str) -> cnnlab.Dataset:
    """A frozen split is named by its content, so one path is always the same images."""
    data = cnnlab.load_dataset(path=path)
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        array.setflags(write=False)
    return data


def store() -> Store:
    """The learners' workspaces, in the data folder (CNNLAB_DATA_DIR, else the user's cache)."""
    return _store(str(workspaces.data_dir()))


@st.cache_resource(show_spinner=False)
def _store(root: str) -> Store:
    return workspaces.open_store(root, classroom_settings())


def training_pool() -> TrainingPool:
    """The server's training slots, set in .streamlit/classroom.toml (or the file CNNLAB_CLASSROOM names);
    every run it trains is kept in the workspaces' store. Where its runs train (worker processes, or
    threads of this one) is the classroom's `engine` setting, or the cluster CNNLAB_CLUSTER names."""
    return _pool(str(workspaces.data_dir()))


@st.cache_resource(show_spinner=False)
def _pool(root: str) -> TrainingPool:
    settings = classroom_settings()
    return TrainingPool(settings, keeper=_store(root), engine=engines.choose(settings))


def pretrained(key: str):
    """One pretrained ImageNet network at a time for the whole server: they weigh 14 to 549 MB."""
    with st.spinner(t("app.loading_pretrained")):
        return _pretrained(key)


@st.cache_resource(max_entries=1, show_spinner=False)
def _pretrained(key: str):
    return zoo.load_pretrained(key)
