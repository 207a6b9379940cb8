"""CNN Lab home: what the lab is, the lineage of the networks, and where to start."""

import streamlit as st

import cnnlab
from app import nav
from app.text import arch_title, language, t

nav.page("home")


@st.cache_data(show_spinner=False)
def lineage(lang: str) -> list[dict]:
    rows = []
    for arch in map(cnnlab.get_architecture, cnnlab.list_architectures(zoo=False)):  # the zoo has its own page
        table = cnnlab.layer_table(arch.name)
        rows.append({"network": arch_title(arch), "year": arch.year, "weight_layers": arch.depth or table.weight_layers,
                     "parameters": table.total_params, "input": f"{arch.input_size}x{arch.input_size}",
                     "dataset": arch.dataset.upper(), "paper": arch.paper})
    return rows


st.title(t("app.name"))
st.markdown(t("home.intro"))

st.subheader(t("home.lineage"))
st.dataframe(lineage(language()), hide_index=True, width="stretch", column_config={
    name: st.column_config.Column(t(f"home.column.{name}"))
    for name in ("network", "year", "weight_layers", "input", "dataset", "paper")} | {
    "parameters": st.column_config.NumberColumn(t("home.column.parameters"), format="localized")})
st.caption(t("home.lineage_note"))

st.subheader(t("home.start"))
columns = st.columns(4)
for i, (path, key, icon) in enumerate(p for p in nav.PAGES if p[1] != "home"):
    with columns[i % 4]:
        nav.link(path, label=t("home.link", page=t(f"nav.{key}"), what=t(f"home.what.{key}")), icon=icon)
st.info(t("home.new_here"))
