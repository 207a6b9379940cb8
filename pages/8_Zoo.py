"""Zoo: the lecture's Keras Applications table made live, pretrained ImageNet predictions, and transfer learning."""

import streamlit as st

from app import nav, resources
from app.text import arch_title, language, say, t
from app.widgets import IMAGE_UPLOAD_MB, refusal, zoo_table
from cnnlab import zoo
from cnnlab.architectures.applications import APPLICATIONS, DOCS_URL
from cnnlab.charts import top_classes_bars, zoo_scatter
from cnnlab.pretrained import WeightsUnavailable

LIGHT = "mobilenetv2"  # 14 MB: the network to time and to try a photo on first

nav.page("zoo")
st.title(t("zoo.title"))
st.markdown(t("zoo.intro", url=DOCS_URL))

rows = zoo.zoo_rows(lang=language())
counted = zoo_table(rows)

count_col, time_col = st.columns(2)
with count_col:
    if not counted:
        st.caption(t("zoo.count_note"))
        if st.button(t("zoo.count"), type="primary"):
            bar = st.progress(0.0)
            zoo.count_all(lambda i, n, name: bar.progress(i / n, text=t("zoo.counting", name=name)))
            st.rerun()
    elif disagree := [r for r in rows if not r["agrees"]]:
        st.warning(t("zoo.disagree", models=", ".join(r["model"] for r in disagree)))
    else:
        st.success(t("zoo.agree", count=len(rows)))
with time_col:
    chosen = st.multiselect(t("zoo.time_on_server"), list(APPLICATIONS), default=[LIGHT],
                            format_func=lambda key: APPLICATIONS[key].name, help=t("zoo.time_help"))
    if st.button(t("zoo.measure"), disabled=not chosen):
        before = zoo.cached_timings()
        for key in chosen:
            with st.spinner(t("zoo.timing", name=APPLICATIONS[key].name)), refusal(stop=False):
                zoo.measure_cpu_ms(key)
        if zoo.cached_timings() != before:
            st.rerun()  # the table and the chart with the new times (a refusal stays on the page to be read)
st.caption(t("zoo.depth_note"))
st.caption(t("zoo.time_note", batch=zoo.TIMING_BATCH))

params_col, time_chart_col = st.columns(2)
params_col.plotly_chart(zoo_scatter(rows, "params_m", t("zoo.axis_params"), lang=language()), width="stretch",
                        key="by-params")
timed = [r | {"cpu_ms": r["cpu_ms_per_image_here"]} for r in rows] if any(
    r["cpu_ms_per_image_here"] for r in rows) and st.toggle(t("zoo.use_server_times")) else rows
time_chart_col.plotly_chart(zoo_scatter(timed, "cpu_ms", t("zoo.axis_ms_here" if timed is not rows else "zoo.axis_ms"),
                                        lang=language()), width="stretch", key="by-time")

st.subheader(t("zoo.open"))
pick_col, open_col = st.columns([3, 1])
opened = pick_col.selectbox(t("runs.model"), [r["architecture"] for r in rows], label_visibility="collapsed",
                            key="zoo-open", format_func=arch_title)
if open_col.button(t("zoo.layer_table"), width="stretch"):
    st.session_state["architecture"] = opened
    nav.switch("pages/1_Architecture.py")

st.subheader(t("zoo.pretrained"))
model_col, photo_col = st.columns([1, 2])
key = model_col.selectbox(t("zoo.pretrained_network"), list(APPLICATIONS), index=list(APPLICATIONS).index(LIGHT),
                          format_func=lambda k: f"{APPLICATIONS[k].name} ({APPLICATIONS[k].documented.size_mb} MB)")
upload = photo_col.file_uploader(t("zoo.photo"), type=["png", "jpg", "jpeg"], max_upload_size=IMAGE_UPLOAD_MB)
if upload is None:
    st.info(t("zoo.upload_a_photo"))
else:
    try:
        image, best = zoo.classify(resources.pretrained(key), upload.getvalue(), name=upload.name)
    except ValueError as problem:  # WeightsUnavailable among them: offline, the rest of the page still works
        st.warning(say(problem))
        if isinstance(problem, WeightsUnavailable):
            st.caption(t("zoo.works_without"))
    else:
        seen_col, bars_col = st.columns([1, 2])
        size = f"{image.shape[0]}x{image.shape[1]}"
        seen_col.image(image, caption=t("zoo.receives", name=APPLICATIONS[key].name, size=size))
        bars_col.plotly_chart(top_classes_bars(best, lang=language()), width="stretch")

st.subheader(t("zoo.reuse"))
st.markdown(t("zoo.reuse_text"))
nav.link(nav.TRAIN_PAGE, label=t("zoo.train_head"), icon="📈")
