"""CNN Lab home: what the lab is, the lineage of the networks, and where to start."""

import streamlit as st

import cnnlab
import ui

ui.page("Home")


@st.cache_data
def lineage() -> list[dict]:
    rows = []
    for arch in cnnlab.ARCHITECTURES.values():
        if arch.application:  # the Keras Applications have their own page, the Zoo
            continue
        table = cnnlab.layer_table(arch.name)
        rows.append({"network": arch.title, "year": arch.year, "weight layers": arch.depth,
                     "parameters": f"{table.total_params:,}", "input": f"{arch.input_size}x{arch.input_size}",
                     "dataset here": arch.dataset.upper(), "paper": arch.paper})
    return rows


st.title("CNN Lab")
st.markdown(
    "Re-create the lecture **주요 CNN 알고리즘 구현** (implementing major CNN algorithms): build LeNet-5, "
    "AlexNet and VGG19 in Keras, train them on MNIST and CIFAR-10, watch them learn, and classify test images.")

st.subheader("From LeNet to VGG")
st.dataframe(lineage(), hide_index=True, width="stretch")
st.caption("Parameters as built here with 10 output classes; the Keras VGG19 feature extractor has no classifier; "
           "transfer learning is counted with its default VGG19 base, frozen. Nineteen more networks, from ResNet to "
           "EfficientNet, are in the **Zoo**.")

st.subheader("Where to start")
WHAT = {"Architecture": "layers, shapes and costs", "Data": "samples and preprocessing", "Train": "live curves",
        "Predict": "classify a test image", "Evaluate": "confusion matrix", "Inside": "feature maps, filters, Grad-CAM",
        "Your image": "upload or draw", "Zoo": "Keras's pretrained models"}
columns = st.columns(4)
for i, (path, label, icon) in enumerate(p for p in ui.PAGES if p[1] != "Home"):
    columns[i % 4].page_link(path, label=f"**{label}**: {WHAT[label]}", icon=icon)
st.info("New here? Open **Train**, keep LeNet-5 and the lecture's recipe, and press Start: "
        "an epoch on 6,000 digits takes a few seconds. Then look **Inside** the network it trained.")
