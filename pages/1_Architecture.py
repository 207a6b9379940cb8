"""Architecture: pick a network, turn its knobs, read its layer table."""

import streamlit as st

import cnnlab
import ui
from cnnlab.charts import shapes_through_depth

ui.page("architecture")
st.title("Architecture")

names = list(cnnlab.ARCHITECTURES)
arch = cnnlab.get_architecture(st.selectbox("Architecture", names, key="architecture",
                                            format_func=lambda n: f"{cnnlab.ARCHITECTURES[n].title} · {n}"))
if arch.application:
    st.caption(f"{arch.paper}. Keras's ImageNet classifier (1,000 classes), top included: the lab shows its layers "
               "here and classifies photos with its pretrained weights on the **Zoo** page; it does not train it.")
else:
    st.caption(f"{arch.paper}. Trained here on {arch.dataset.upper()}.")
if arch.explained_by:
    with st.expander(ui.t("architecture.about", title=arch.title)):
        for topic in arch.explained_by:
            st.markdown(ui.t(f"explain.{topic}"))

with st.sidebar:
    st.header("Knobs")
    input_size = st.number_input("Input size (pixels)", min_value=1, max_value=cnnlab.architectures.MAX_INPUT_SIZE,
                                 value=arch.input_size, step=1, key=f"size-{arch.name}",
                                 help=f"The paper's is {arch.input_size}; the smallest that works is {arch.min_input_size}.")
    width = st.slider("Width multiplier", 0.05, 2.0, 1.0, 0.05, key=f"width-{arch.name}",
                      help="Multiplies every layer's filters and units." if not arch.fixed_width
                      else "Keras builds this network with fixed widths.", disabled=arch.fixed_width)
    knobs = ui.knob_inputs(arch, "architecture")

config = cnnlab.ModelConfig(arch.name, input_size=int(input_size), width=width, knobs=knobs)
try:
    with st.spinner("Building the network's layers (shapes only, no weights)..."):
        table = cnnlab.layer_table(config)
except ValueError as problem:
    st.warning(ui.say(problem))
    st.stop()

total, trainable, macs, acts = st.columns(4)
total.metric("Parameters", f"{table.total_params:,}")
trainable.metric("Trainable", f"{table.trainable_params:,}",
                 help="Batch normalisation's running statistics and a frozen base are not trained.")
macs.metric("Multiply-accumulates per image", f"{table.total_macs:,}")
acts.metric("Activations per image", f"{table.total_activations:,}")
if not table.is_chain:
    st.caption(f"This network has branches: {len(table.rows) - 1:,} layers, {table.weight_layers} of them with "
               f"weights, but the longest path from input to output passes only {table.longest_path()}. "
               "The **inputs** column names the layers each one reads; more than one is where branches merge.")

rows = [row.to_dict() | {"output_shape": " x ".join(map(str, row.output_shape)), "inputs": ", ".join(row.inputs),
                         "receptive_field": str(row.receptive_field or ""), "effective_stride": str(row.effective_stride or "")}
        for row in table.rows]
rows.append({"name": "total", "type": "", "kind": "", "output_shape": "", "params": table.total_params,
             "trainable_params": table.trainable_params, "macs": table.total_macs,
             "activations": table.total_activations, "receptive_field": "", "effective_stride": "", "inputs": ""})
st.dataframe(rows, hide_index=True, width="stretch", height=min(35 * (len(rows) + 1) + 3, 770), column_order=(
    "name", "type", "kind", "output_shape", "params", "trainable_params", "macs", "activations", "receptive_field",
    "effective_stride") + (() if table.is_chain else ("inputs",)), column_config={
    "trainable_params": st.column_config.NumberColumn("trainable", format="localized"),
    "params": st.column_config.NumberColumn("params", format="localized"),
    "macs": st.column_config.NumberColumn("MACs", format="localized"),
    "activations": st.column_config.NumberColumn("activations", format="localized"),
    "receptive_field": st.column_config.TextColumn("receptive field (px)"),
    "effective_stride": st.column_config.TextColumn("effective stride (px)"),
})
st.caption("kind 'preprocessing': the lecture's preprocessing, done inside the model on each batch. "
           "Receptive field and stride are in pixels of the network's input after preprocessing.")

st.download_button("Download the table (CSV)", table.to_csv(), file_name=f"{arch.name}_layers.csv", mime="text/csv")

st.subheader("Feature maps through the network")
st.plotly_chart(shapes_through_depth(table), width="stretch")
