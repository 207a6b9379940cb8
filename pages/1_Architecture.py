"""Architecture: pick a network, turn its knobs, read its layer table."""

import streamlit as st

import cnnlab
import ui
from cnnlab.charts import shapes_through_depth

ui.page("architecture")
st.title(ui.t("architecture.title"))

names = list(cnnlab.ARCHITECTURES)
arch = cnnlab.get_architecture(st.selectbox(ui.t("architecture.choose"), names, key="architecture",
                                            format_func=lambda n: f"{ui.arch_title(cnnlab.ARCHITECTURES[n])} · {n}"))
if arch.application:
    st.caption(ui.t("architecture.caption_zoo", paper=arch.paper))
else:
    st.caption(ui.t("architecture.caption", paper=arch.paper, dataset=arch.dataset.upper()))
if arch.explained_by:
    with st.expander(ui.t("architecture.about", title=ui.arch_title(arch))):
        for topic in arch.explained_by:
            st.markdown(ui.t(f"explain.{topic}"))

with st.sidebar:
    st.header(ui.t("architecture.knobs"))
    input_size = st.number_input(ui.t("architecture.input_size"), min_value=1,
                                 max_value=cnnlab.architectures.MAX_INPUT_SIZE, value=arch.input_size, step=1,
                                 key=f"size-{arch.name}", help=ui.t("architecture.input_size_help", paper=arch.input_size,
                                                                     smallest=arch.min_input_size))
    width = st.slider(ui.t("architecture.width"), 0.05, 2.0, 1.0, 0.05, key=f"width-{arch.name}",
                      help=ui.t("architecture.width_help" if not arch.fixed_width else "architecture.width_fixed"),
                      disabled=arch.fixed_width)
    knobs = ui.knob_inputs(arch, "architecture")

config = cnnlab.ModelConfig(arch.name, input_size=int(input_size), width=width, knobs=knobs)
try:
    with st.spinner(ui.t("architecture.building")):
        table = cnnlab.layer_table(config)
except ValueError as problem:
    st.warning(ui.say(problem))
    st.stop()

total, trainable, macs, acts = st.columns(4)
total.metric(ui.t("architecture.parameters"), cnnlab.i18n.number(table.total_params))
trainable.metric(ui.t("architecture.trainable"), cnnlab.i18n.number(table.trainable_params),
                 help=ui.t("architecture.trainable_help"))
macs.metric(ui.t("architecture.macs"), cnnlab.i18n.number(table.total_macs))
acts.metric(ui.t("architecture.activations"), cnnlab.i18n.number(table.total_activations))
if not table.is_chain:
    st.caption(ui.t("architecture.branches", layers=len(table.rows) - 1, weighted=table.weight_layers,
                    longest=table.longest_path()))

rows = [row.to_dict() | {"output_shape": " x ".join(map(str, row.output_shape)), "inputs": ", ".join(row.inputs),
                         "receptive_field": str(row.receptive_field or ""), "effective_stride": str(row.effective_stride or "")}
        for row in table.rows]
rows.append({"name": "total", "type": "", "kind": "", "output_shape": "", "params": table.total_params,
             "trainable_params": table.trainable_params, "macs": table.total_macs,
             "activations": table.total_activations, "receptive_field": "", "effective_stride": "", "inputs": ""})
st.dataframe(rows, hide_index=True, width="stretch", height=min(35 * (len(rows) + 1) + 3, 770), column_order=(
    "name", "type", "kind", "output_shape", "params", "trainable_params", "macs", "activations", "receptive_field",
    "effective_stride") + (() if table.is_chain else ("inputs",)), column_config={
    column: (st.column_config.NumberColumn(ui.t(f"architecture.column.{column}"), format="localized")
             if column in ("params", "trainable_params", "macs", "activations")
             else st.column_config.Column(ui.t(f"architecture.column.{column}")))
    for column in ("name", "type", "kind", "output_shape", "params", "trainable_params", "macs", "activations",
                   "receptive_field", "effective_stride", "inputs")})
st.caption(ui.t("architecture.table_note"))

st.download_button(ui.t("architecture.download"), table.to_csv(), file_name=f"{arch.name}_layers.csv", mime="text/csv")

st.subheader(ui.t("architecture.shapes"))
st.plotly_chart(shapes_through_depth(table, lang=ui.language()), width="stretch")
