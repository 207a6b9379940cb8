"""Zoo: the lecture's Keras Applications table made live, pretrained ImageNet predictions, and transfer learning."""

import streamlit as st

import cnnlab
import ui
from cnnlab import zoo
from cnnlab.architectures.applications import APPLICATIONS, DOCS_URL
from cnnlab.charts import top_classes_bars, zoo_scatter
from cnnlab.pretrained import WeightsUnavailable

ui.page("zoo")
st.title(ui.t("zoo.title"))
st.markdown(ui.t("zoo.intro", url=DOCS_URL))

rows = zoo.zoo_rows(lang=ui.language())
st.dataframe(rows, hide_index=True, width="stretch", height=35 * (len(rows) + 1) + 3, column_order=(
    "model", "year", "top1", "top5", "params_m", "params_here", "depth", "depth_here", "longest_path_here",
    "size_mb", "cpu_ms", "gpu_ms", "cpu_ms_per_image_here", "notes"), column_config={
    "model": st.column_config.TextColumn(ui.t("zoo.column.model")),
    "year": st.column_config.NumberColumn(ui.t("zoo.column.year"), format="%d"),
    "top1": st.column_config.NumberColumn(ui.t("zoo.column.top1"), format="%.1f"),
    "top5": st.column_config.NumberColumn(ui.t("zoo.column.top5"), format="%.1f"),
    "params_m": st.column_config.NumberColumn(ui.t("zoo.column.params_m"), format="%.1f"),
    "params_here": st.column_config.NumberColumn(ui.t("zoo.column.params_here"), format="localized"),
    "depth": st.column_config.NumberColumn(ui.t("zoo.column.depth")),
    "depth_here": st.column_config.NumberColumn(ui.t("zoo.column.depth_here"), help=ui.t("zoo.column.depth_help")),
    "longest_path_here": st.column_config.NumberColumn(ui.t("zoo.column.longest_path_here"),
                                                       help=ui.t("zoo.column.longest_help")),
    "size_mb": st.column_config.NumberColumn(ui.t("zoo.column.size_mb")),
    "cpu_ms": st.column_config.NumberColumn(ui.t("zoo.column.cpu_ms"), format="%.1f"),
    "gpu_ms": st.column_config.NumberColumn(ui.t("zoo.column.gpu_ms"), format="%.1f"),
    "cpu_ms_per_image_here": st.column_config.NumberColumn(ui.t("zoo.column.cpu_here"), format="%.0f"),
    "notes": st.column_config.TextColumn(ui.t("zoo.column.notes")),
})

counted = [r for r in rows if r["params_here"] is not None]
count_col, time_col = st.columns(2)
with count_col:
    if len(counted) < len(rows):
        st.caption(ui.t("zoo.count_note"))
        if st.button(ui.t("zoo.count"), type="primary"):
            bar = st.progress(0.0)
            zoo.count_all(lambda i, n, name: bar.progress(i / n, text=ui.t("zoo.counting", name=name)))
            st.rerun()
    else:
        disagree = [r for r in rows if not r["agrees"]]
        if disagree:
            st.warning(ui.t("zoo.disagree", models=", ".join(r["model"] for r in disagree)))
        else:
            st.success(ui.t("zoo.agree", count=len(rows)))
with time_col:
    chosen = st.multiselect(ui.t("zoo.time_on_server"), list(APPLICATIONS), default=["mobilenetv2"],
                            format_func=lambda key: APPLICATIONS[key].name, help=ui.t("zoo.time_help"))
    if st.button(ui.t("zoo.measure"), disabled=not chosen):
        for key in chosen:
            with st.spinner(ui.t("zoo.timing", name=APPLICATIONS[key].name)):
                try:
                    zoo.measure_cpu_ms(key)
                except ValueError as problem:
                    st.warning(ui.say(problem))
        st.rerun()
st.caption(ui.t("zoo.depth_note"))
st.caption(ui.t("zoo.time_note", batch=zoo.TIMING_BATCH))

params_col, time_chart_col = st.columns(2)
params_col.plotly_chart(zoo_scatter(rows, "params_m", ui.t("zoo.axis_params"), lang=ui.language()), width="stretch",
                        key="by-params")
timed = [r | {"cpu_ms": r["cpu_ms_per_image_here"]} for r in rows] if any(
    r["cpu_ms_per_image_here"] for r in rows) and st.toggle(ui.t("zoo.use_server_times")) else rows
time_chart_col.plotly_chart(zoo_scatter(timed, "cpu_ms", ui.t("zoo.axis_ms_here" if timed is not rows else "zoo.axis_ms"),
                                        lang=ui.language()), width="stretch", key="by-time")

st.subheader(ui.t("zoo.open"))
pick_col, open_col = st.columns([3, 1])
opened = pick_col.selectbox(ui.t("runs.model"), [r["architecture"] for r in rows], label_visibility="collapsed",
                            key="zoo-open", format_func=lambda name: ui.arch_title(cnnlab.ARCHITECTURES[name]))
if open_col.button(ui.t("zoo.layer_table"), width="stretch"):
    st.session_state["architecture"] = opened
    st.switch_page("pages/1_Architecture.py")

st.subheader(ui.t("zoo.pretrained"))
model_col, photo_col = st.columns([1, 2])
key = model_col.selectbox(ui.t("zoo.pretrained_network"), list(APPLICATIONS), index=list(APPLICATIONS).index("mobilenetv2"),
                          format_func=lambda k: f"{APPLICATIONS[k].name} ({APPLICATIONS[k].documented.size_mb} MB)")
upload = photo_col.file_uploader(ui.t("zoo.photo"), type=["png", "jpg", "jpeg"], max_upload_size=ui.IMAGE_UPLOAD_MB)
if upload is None:
    st.info(ui.t("zoo.upload_a_photo"))
else:
    try:
        model = ui.pretrained(key)
        image, best = zoo.classify(model, upload.getvalue(), name=upload.name)
    except WeightsUnavailable as missing:
        st.warning(ui.say(missing))
        st.caption(ui.t("zoo.works_without"))
    except ValueError as problem:
        st.warning(ui.say(problem))
    else:
        seen_col, bars_col = st.columns([1, 2])
        seen_col.image(image, caption=ui.t("zoo.receives", name=APPLICATIONS[key].name,
                                           size=f"{image.shape[0]}x{image.shape[1]}"))
        bars_col.plotly_chart(top_classes_bars(best, lang=ui.language()), width="stretch")

st.subheader(ui.t("zoo.reuse"))
st.markdown(ui.t("zoo.reuse_text"))
st.page_link("pages/3_Train.py", label=ui.t("zoo.train_head"), icon="📈")
