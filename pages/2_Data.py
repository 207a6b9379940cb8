"""Data: the dataset, sample images per class, the lecture's preprocessing, the class balance."""

import streamlit as st

import cnnlab
import ui
from cnnlab.charts import class_distribution, tile
from cnnlab.architectures.steps import preprocessing_steps

ui.page("data")
st.title(ui.t("data.title"))


name_col, source_col, arch_col, fraction_col = st.columns(4)
name = name_col.selectbox(ui.t("data.dataset"), list(cnnlab.DATASETS), format_func=lambda n: ui.t(f"datasets.{n}.title"))
source = source_col.selectbox(ui.t("data.source"), list(cnnlab.data.SOURCES))
archs = [a.name for a in cnnlab.ARCHITECTURES.values() if a.dataset == name]
arch = arch_col.selectbox(ui.t("data.preprocess_for"), archs, format_func=lambda n: ui.arch_title(cnnlab.ARCHITECTURES[n]))
fraction = fraction_col.slider(ui.t("data.fraction"), 0.05, 1.0, 1.0, 0.05, help=ui.t("data.fraction_help"))

spec = cnnlab.DATASETS[name]
try:
    data = ui.dataset(name, source).sample(fraction, seed=0)
except ValueError as problem:
    st.warning(ui.say(problem))
    st.stop()
st.markdown(ui.t("data.summary", source=ui.t(f"data.source_{source}"), train=len(data.x_train), test=len(data.x_test),
                 size=f"{data.image_shape[0]}x{data.image_shape[1]}", channels=data.image_shape[2]))
st.caption(ui.t("data.credit", credit=ui.t(f"datasets.{name}.credit")))

st.subheader(ui.t("data.examples"))
per_class = st.slider(ui.t("data.per_class"), 1, 16, 10)
for index, class_name in enumerate(data.class_names):
    label_col, images_col = st.columns([1, 9], vertical_alignment="center")
    label_col.markdown(ui.t("data.class_row", label=ui.class_label(data.class_names, index)))
    images_col.image(tile(data.examples(index, per_class) / 255, columns=per_class, scale=2, gap=2))

st.subheader(ui.t("data.steps"))
steps = preprocessing_steps(cnnlab.ModelConfig(arch), len(data.x_train), ui.language())
st.dataframe([{"step": s.step, "shape": str(s.shape), "dtype": s.dtype,
               "whole_array": ui.gigabytes(s.nbytes_whole_array), "why": s.why} for s in steps],
             hide_index=True, width="stretch", column_config={
                 column: st.column_config.Column(ui.t(f"data.column.{column}"))
                 for column in ("step", "shape", "dtype", "whole_array", "why")})
st.caption(ui.t("data.steps_note"))
with st.expander(ui.t("data.why_steps")):
    for topic in [s.topic for s in steps if s.topic] + ["sample"]:
        st.markdown(ui.t(f"explain.preprocessing.{topic}"))

st.subheader(ui.t("data.distribution"))
tabs = st.tabs([ui.t("data.training_tab"), ui.t("data.test_tab")])
for tab, split in zip(tabs, ("train", "test")):
    tab.plotly_chart(class_distribution(data.class_counts(split), ui.class_names(data.class_names), lang=ui.language()),
                     width="stretch",
                     key=f"distribution-{split}")
