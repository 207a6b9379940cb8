"""How it computes: the learner's own trained network, one layer at a time, on one test image. Each layer
shows its own arithmetic on the real numbers, checked against what the model computed; every layer's
output size follows from its formula; a cell of any map shows the region of the input it can see."""

import streamlit as st

from app import computes, nav
from app.text import t

nav.page("computes")
st.title(t("computes.title"))
st.markdown(t("computes.intro"))

steps_tab, sizes_tab = st.tabs([t("computes.steps_tab"), t("computes.sizes_tab")])
with sizes_tab:  # first: it needs no trained run, and the steps stop the page without one
    computes.sizes_panel()
with steps_tab:
    choice, data, image = computes.chosen()
    model = choice.run.model
    step = computes.pick_step(model)
    traced = computes.traced(choice, image, step)
    computes.size_of(model, step)
    computes.show(traced, step, data.class_names)
