"""Architecture: pick a network, turn its knobs, read its layer table."""

import streamlit as st

import cnnlab
import ui
from cnnlab.charts import shapes_through_depth

ui.page("Architecture")
st.title("Architecture")

names = list(cnnlab.ARCHITECTURES)
arch = cnnlab.get_architecture(st.selectbox("Architecture", names, format_func=lambda n: cnnlab.ARCHITECTURES[n].title))
st.caption(f"{arch.paper}. Trained here on {arch.dataset.upper()}.")

with st.sidebar:
    st.header("Knobs")
    input_size = st.number_input("Input size (pixels)", min_value=1, max_value=cnnlab.architectures.MAX_INPUT_SIZE,
                                 value=arch.input_size, step=1, key=f"size-{arch.name}",
                                 help=f"The paper's is {arch.input_size}; the smallest that works is {arch.min_input_size}.")
    width = st.slider("Width multiplier", 0.05, 2.0, 1.0, 0.05, key=f"width-{arch.name}",
                      help="Multiplies every layer's filters and units.", disabled=arch.name == "keras-vgg19")
    knobs = {}
    for knob in arch.knobs:
        key = f"{arch.name}-{knob.name}"
        if knob.choices:
            knobs[knob.name] = st.selectbox(knob.name, knob.choices, index=knob.choices.index(knob.default),
                                            help=knob.help, key=key)
        else:
            knobs[knob.name] = st.number_input(knob.name, min_value=float(knob.range[0]), max_value=float(knob.range[1]),
                                               value=float(knob.default), help=knob.help, key=key, format="%g")

config = cnnlab.ModelConfig(arch.name, input_size=int(input_size), width=width, knobs=knobs)
try:
    table = cnnlab.layer_table(config)
except ValueError as problem:
    st.warning(str(problem))
    st.stop()

total, macs, acts = st.columns(3)
total.metric("Parameters", f"{table.total_params:,}")
macs.metric("Multiply-accumulates per image", f"{table.total_macs:,}")
acts.metric("Activations per image", f"{table.total_activations:,}")

rows = [row.to_dict() | {"output_shape": " x ".join(map(str, row.output_shape)),
                         "receptive_field": str(row.receptive_field or ""), "effective_stride": str(row.effective_stride or "")}
        for row in table.rows]
rows.append({"name": "total", "type": "", "kind": "", "output_shape": "", "params": table.total_params,
             "macs": table.total_macs, "activations": table.total_activations,
             "receptive_field": "", "effective_stride": ""})
st.dataframe(rows, hide_index=True, width="stretch", height=35 * (len(rows) + 1) + 3, column_config={
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
