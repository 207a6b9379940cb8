"""CNN Lab home: what the lab is, the lineage of the networks, and where to start."""

import streamlit as st

import cnnlab
import ui

ui.page("home")


@st.cache_data(show_spinner=False)
def lineage(lang: str) -> list[dict]:
    rows = []
    for arch in cnnlab.ARCHITECTURES.values():
        if arch.application:  # the Keras Applications have their own page, the Zoo
            continue
        table = cnnlab.layer_table(arch.name)
        rows.append({"network": ui.arch_title(arch), "year": arch.year, "weight_layers": arch.depth,
                     "parameters": table.total_params, "input": f"{arch.input_size}x{arch.input_size}",
                     "dataset": arch.dataset.upper(), "paper": arch.paper})
    return rows


st.title(ui.t("app.name"))
st.markdown(ui.t("home.intro"))

st.subheader(ui.t("home.lineage"))
st.dataframe(lineage(ui.language()), hide_index=True, width="stretch", column_config={
    name: st.column_config.Column(ui.t(f"home.column.{name}"))
    for name in ("network", "year", "weight_layers", "input", "dataset", "paper")} | {
    "parameters": st.column_config.NumberColumn(ui.t("home.column.parameters"), format="localized")})
st.caption(ui.t("home.lineage_note"))

st.subheader(ui.t("home.start"))
columns = st.columns(4)
for i, (path, key, icon) in enumerate(p for p in ui.PAGES if p[1] != "home"):
    columns[i % 4].page_link(path, label=ui.t("home.link", page=ui.t(f"nav.{key}"), what=ui.t(f"home.what.{key}")),
                             icon=icon)
st.info(ui.t("home.new_here"))
