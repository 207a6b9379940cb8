"""Train: choose a recipe, see what it will cost, start, watch the curves live, stop, compare."""

import streamlit as st

from app import nav, train
from app.text import t

nav.page("train")
st.title(t("train.title"))

arch, config = train.settings()
planned = train.plan(arch, config)
train.start_and_stop(planned)
train.live()
train.results(config.epochs)
train.bundles()
train.compare()
