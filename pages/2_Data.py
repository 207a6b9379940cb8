"""Data: the dataset, sample images per class, the lecture's preprocessing, the class balance."""

import streamlit as st

import cnnlab
from app import nav, resources
from app.text import arch_title, class_label, class_names, gigabytes, language, t
from app.widgets import refusal
from cnnlab.architectures.steps import preprocessing_steps
from cnnlab.charts import class_distribution, tile
from cnnlab.datasets import SOURCES

STEP_COLUMNS = ("step", "shape", "dtype", "whole_array", "why")

nav.page("data")
st.title(t("data.title"))

name_col, source_col, arch_col, fraction_col = st.columns(4)
name = name_col.selectbox(t("data.dataset"), list(cnnlab.DATASETS), format_func=lambda n: t(f"datasets.{n}.title"))
source = source_col.selectbox(t("data.source"), list(SOURCES))
arch = arch_col.selectbox(t("data.preprocess_for"), cnnlab.list_architectures(dataset=name), format_func=arch_title)
fraction = fraction_col.slider(t("data.fraction"), 0.05, 1.0, 1.0, 0.05, help=t("data.fraction_help"))

with refusal():
    data = resources.dataset(name, source).sample(fraction, seed=0)
st.markdown(t("data.summary", source=t(f"data.source_{source}"), train=len(data.x_train), test=len(data.x_test),
              size=f"{data.image_shape[0]}x{data.image_shape[1]}", channels=data.image_shape[2]))
st.caption(t("data.credit", credit=t(f"datasets.{name}.credit")))

st.subheader(t("data.examples"))
per_class = st.slider(t("data.per_class"), 1, 16, 10)
for index in range(data.num_classes):
    label_col, images_col = st.columns([1, 9], vertical_alignment="center")
    label_col.markdown(t("data.class_row", label=class_label(data.class_names, index)))
    images_col.image(tile(data.examples(index, per_class) / 255, columns=per_class, scale=2, gap=2))

st.subheader(t("data.steps"))
steps = preprocessing_steps(cnnlab.ModelConfig(arch), len(data.x_train), language())
st.dataframe([{"step": s.step, "shape": str(s.shape), "dtype": s.dtype, "whole_array": gigabytes(s.nbytes_whole_array),
               "why": s.why} for s in steps], hide_index=True, width="stretch",
             column_config={column: st.column_config.Column(t(f"data.column.{column}")) for column in STEP_COLUMNS})
st.caption(t("data.steps_note"))
with st.expander(t("data.why_steps")):
    for topic in [s.topic for s in steps if s.topic] + ["sample"]:
        st.markdown(t(f"explain.preprocessing.{topic}"))

st.subheader(t("data.distribution"))
for tab, split in zip(st.tabs([t("data.training_tab"), t("data.test_tab")]), ("train", "test")):
    tab.plotly_chart(class_distribution(data.class_counts(split), class_names(data.class_names), lang=language()),
                     width="stretch", key=f"distribution-{split}")
