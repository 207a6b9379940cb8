"""Architecture: pick a network, turn its knobs, read its layer table."""

import streamlit as st

import cnnlab
from app import links, nav
from app.text import arch_title, language, t
from app.widgets import refusal
from cnnlab import controls
from cnnlab.architectures import MAX_INPUT_SIZE
from cnnlab.charts import shapes_through_depth

NUMBERS = ("params", "trainable_params", "macs", "activations")
COLUMNS = ("name", "type", "kind", "output_shape", *NUMBERS, "receptive_field", "effective_stride", "inputs")


def shown(table: cnnlab.LayerTable) -> list[dict]:
    """The table's rows as the page shows them, shapes and lists as text, and a total row."""
    rows = [row.to_dict() | {"output_shape": " x ".join(map(str, row.output_shape)), "inputs": ", ".join(row.inputs),
                             "receptive_field": str(row.receptive_field or ""),
                             "effective_stride": str(row.effective_stride or "")} for row in table.rows]
    totals = {"params": table.total_params, "trainable_params": table.trainable_params, "macs": table.total_macs,
              "activations": table.total_activations}
    return rows + [dict.fromkeys(COLUMNS, "") | {"name": "total"} | totals]


nav.page("architecture")
st.title(t("architecture.title"))

link = links.architecture()  # the URL's settings into the widgets, before they are drawn
arch = cnnlab.get_architecture(st.selectbox(t("architecture.choose"), cnnlab.list_architectures(), key=link.key("arch"),
                                            format_func=lambda name: f"{arch_title(name)} · {name}"))
if arch.zoo:
    st.caption(t("architecture.caption_zoo", paper=arch.paper))
else:
    st.caption(t("architecture.caption", paper=arch.paper, dataset=arch.dataset.upper()))
if arch.explained_by:
    with st.expander(t("architecture.about", title=arch_title(arch))):
        for topic in arch.explained_by:
            st.markdown(t(f"explain.{topic}"))

with st.sidebar:
    st.header(t("architecture.knobs"))
    input_size = st.number_input(t("architecture.input_size"), min_value=1, max_value=MAX_INPUT_SIZE, step=1,
                                 key=link.key("size"), help=t("architecture.input_size_help", paper=arch.input_size,
                                                              smallest=arch.min_input_size))
    width = st.slider(t("architecture.width"), links.ARCHITECTURE_WIDTHS[0], links.ARCHITECTURE_WIDTHS[-1],
                      step=controls.STEP, key=link.key("width"), disabled=arch.fixed_width,
                      help=t("architecture.width_help" if not arch.fixed_width else "architecture.width_fixed"))
    knobs = links.knobs(arch, link)
link.keep()  # and back into the URL: what the page shows, as a link
with st.sidebar:
    link.share()

with refusal(), st.spinner(t("architecture.building")):
    table = cnnlab.layer_table(cnnlab.ModelConfig(arch.name, input_size=int(input_size), width=width, knobs=knobs))

total, trainable, macs, acts = st.columns(4)
total.metric(t("architecture.parameters"), cnnlab.i18n.number(table.total_params))
trainable.metric(t("architecture.trainable"), cnnlab.i18n.number(table.trainable_params),
                 help=t("architecture.trainable_help"))
macs.metric(t("architecture.macs"), cnnlab.i18n.number(table.total_macs))
acts.metric(t("architecture.activations"), cnnlab.i18n.number(table.total_activations))
if not table.is_chain:
    st.caption(t("architecture.branches", layers=len(table.rows) - 1, weighted=table.weight_layers,
                 longest=table.longest_path()))

rows = shown(table)
st.dataframe(rows, hide_index=True, width="stretch", height=min(35 * (len(rows) + 1) + 3, 770),
             column_order=COLUMNS if not table.is_chain else COLUMNS[:-1], column_config={
                 column: st.column_config.NumberColumn(t(f"architecture.column.{column}"), format="localized")
                 if column in NUMBERS else st.column_config.Column(t(f"architecture.column.{column}"))
                 for column in COLUMNS})
st.caption(t("architecture.table_note"))
st.download_button(t("architecture.download"), table.to_csv(), file_name=f"{arch.name}_layers.csv", mime="text/csv")

st.subheader(t("architecture.shapes"))
st.plotly_chart(shapes_through_depth(table, lang=language()), width="stretch")
