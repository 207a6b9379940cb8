"""Data: the dataset, sample images per class, the lecture's preprocessing, the class balance."""

import streamlit as st

import cnnlab
import ui
from cnnlab.charts import class_distribution, tile
from cnnlab.data import preprocessing_steps

ui.page("data")
st.title("Data")

SOURCES = {"bundled": "the bundled 10% sample shipped with CNN Lab (works offline)",
           "full": "the full dataset, downloaded once by Keras (needs the network)"}

name_col, source_col, arch_col, fraction_col = st.columns(4)
name = name_col.selectbox("Dataset", list(cnnlab.DATASETS), format_func=lambda n: cnnlab.DATASETS[n].title)
source = source_col.selectbox("Source", list(SOURCES))
archs = [a.name for a in cnnlab.ARCHITECTURES.values() if a.dataset == name]
arch = arch_col.selectbox("Preprocess for", archs, format_func=lambda n: cnnlab.ARCHITECTURES[n].title)
fraction = fraction_col.slider("Sample fraction", 0.05, 1.0, 1.0, 0.05,
                               help="Drawn at random without replacement, like the lecture's 10% sample.")

spec = cnnlab.DATASETS[name]
try:
    data = ui.dataset(name, source).sample(fraction, seed=0)
except ValueError as problem:
    st.warning(ui.say(problem))
    st.stop()
st.markdown(f"**Source:** {SOURCES[source]}. "
            f"**In this sample:** {len(data.x_train):,} training and {len(data.x_test):,} test images, "
            f"{data.image_shape[0]}x{data.image_shape[1]} pixels, {data.image_shape[2]} channel(s).")
st.caption(f"Credit: {spec.credit}")

st.subheader("Examples of every class")
per_class = st.slider("Images per class", 1, 16, 10)
for index, class_name in enumerate(data.class_names):
    label_col, images_col = st.columns([1, 9], vertical_alignment="center")
    label_col.markdown(f"**{ui.class_label(data.class_names, index)}**")
    images_col.image(tile(data.examples(index, per_class) / 255, columns=per_class, scale=2, gap=2))

st.subheader("The lecture's preprocessing, step by step")
steps = preprocessing_steps(cnnlab.ModelConfig(arch), len(data.x_train))
st.dataframe([{"step": s.step, "array shape": str(s.shape), "dtype": s.dtype,
               "whole array": ui.gigabytes(s.nbytes_whole_array), "why": s.why} for s in steps],
             hide_index=True, width="stretch")
st.caption("The lecture applies these to the whole array before training. CNN Lab's models do the image steps "
           "in their own first layers, one batch at a time, so memory grows with the batch, not the dataset.")
with st.expander(ui.t("data.why_steps")):
    for topic in [s.topic for s in steps if s.topic] + ["sample"]:
        st.markdown(ui.t(f"explain.preprocessing.{topic}"))

st.subheader("Class distribution of the sample")
tabs = st.tabs(["training", "test"])
for tab, split in zip(tabs, ("train", "test")):
    tab.plotly_chart(class_distribution(data.class_counts(split), data.class_names), width="stretch",
                     key=f"distribution-{split}")
