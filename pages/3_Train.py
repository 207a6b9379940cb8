"""Train: choose a recipe, see what it will cost, start, watch the curves live, stop, compare."""

import streamlit as st

from app import nav, session, train
from app.text import t

nav.page("train")
st.title(t("train.title"))

epochs = None
if not session.read_only():  # a read-only link shows its one run, and nothing to set or start
    arch, config = train.settings()  # None: the learner's own classes are not ready to train on
    if config is not None:
        train.start_and_stop(train.plan(arch, config))
        epochs = config.epochs
train.live()
train.results(epochs)
train.bundles()
train.compare()
