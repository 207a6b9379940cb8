"""Zoo: the lecture's Keras Applications table made live, pretrained ImageNet predictions, and transfer learning."""

import streamlit as st

import cnnlab
import ui
from cnnlab import zoo
from cnnlab.architectures.applications import APPLICATIONS, DOCS_URL
from cnnlab.charts import top_classes_bars, zoo_scatter
from cnnlab.pretrained import WeightsUnavailable

ui.page("zoo")
st.title("Model zoo")
st.markdown(f"The table the lecture ends with, from the [Keras Applications documentation]({DOCS_URL}), next to "
            "what the same networks say about themselves when built here. Click a column to sort.")

rows = zoo.zoo_rows()
st.dataframe(rows, hide_index=True, width="stretch", height=35 * (len(rows) + 1) + 3, column_order=(
    "model", "year", "top1", "top5", "params_m", "params_here", "depth", "depth_here", "longest_path_here",
    "size_mb", "cpu_ms", "gpu_ms", "cpu_ms_per_image_here", "notes"), column_config={
    "top1": st.column_config.NumberColumn("top-1 %", format="%.1f"),
    "top5": st.column_config.NumberColumn("top-5 %", format="%.1f"),
    "params_m": st.column_config.NumberColumn("params (M), documented", format="%.1f"),
    "params_here": st.column_config.NumberColumn("params, counted here", format="localized"),
    "depth": st.column_config.NumberColumn("depth, documented"),
    "depth_here": st.column_config.NumberColumn("depth, counted here", help="Layers that hold weights."),
    "longest_path_here": st.column_config.NumberColumn("longest path here",
                                                       help="Weight layers on the longest input-to-output path."),
    "size_mb": st.column_config.NumberColumn("weights file (MB)"),
    "cpu_ms": st.column_config.NumberColumn("CPU ms / 32 images, documented", format="%.1f"),
    "gpu_ms": st.column_config.NumberColumn("GPU ms / 32 images, documented", format="%.1f"),
    "cpu_ms_per_image_here": st.column_config.NumberColumn("CPU ms / image, here", format="%.0f"),
    "notes": st.column_config.TextColumn("where we disagree"),
})

counted = [r for r in rows if r["params_here"] is not None]
count_col, time_col = st.columns(2)
with count_col:
    if len(counted) < len(rows):
        st.caption("Counting builds every network without its weights (no memory for them): about half a minute.")
        if st.button("Count parameters and depth here", type="primary"):
            bar = st.progress(0.0)
            zoo.count_all(lambda i, n, name: bar.progress(i / n, text=f"Counting {name}..."))
            st.rerun()
    else:
        disagree = [r for r in rows if not r["agrees"]]
        if disagree:
            st.warning("Our counts disagree with the documentation for " + ", ".join(r["model"] for r in disagree)
                       + ": see the last column.")
        else:
            st.success(f"All {len(rows)} parameter counts agree with the documentation (to its 0.1 M rounding), and "
                       "so do all depths, once depth is read as the documentation computes it.")
with time_col:
    chosen = st.multiselect("Time on this server", list(APPLICATIONS), default=["mobilenetv2"],
                            format_func=lambda key: APPLICATIONS[key].name,
                            help="Each model runs in a separate process, so its memory is returned afterwards.")
    if st.button("Measure CPU time", disabled=not chosen):
        for key in chosen:
            with st.spinner(f"Timing {APPLICATIONS[key].name}..."):
                try:
                    zoo.measure_cpu_ms(key)
                except ValueError as problem:
                    st.warning(ui.say(problem))
        st.rerun()
st.caption(zoo.DEPTH_NOTE + " " + zoo.TIME_NOTE)

params_col, time_chart_col = st.columns(2)
params_col.plotly_chart(zoo_scatter(rows, "params_m", "parameters (millions)"), width="stretch", key="by-params")
timed = [r | {"cpu_ms": r["cpu_ms_per_image_here"]} for r in rows] if any(
    r["cpu_ms_per_image_here"] for r in rows) and st.toggle("Use this server's times") else rows
time_chart_col.plotly_chart(zoo_scatter(timed, "cpu_ms", "CPU milliseconds" + (
    " per image, here" if timed is not rows else " per 32 images (documented)")), width="stretch", key="by-time")

st.subheader("Open a model's layers")
pick_col, open_col = st.columns([3, 1])
opened = pick_col.selectbox("Model", [r["architecture"] for r in rows], label_visibility="collapsed", key="zoo-open",
                            format_func=lambda name: cnnlab.ARCHITECTURES[name].title)
if open_col.button("Layer table", width="stretch"):
    st.session_state["architecture"] = opened
    st.switch_page("pages/1_Architecture.py")

st.subheader("What does a pretrained network see in your photo?")
model_col, photo_col = st.columns([1, 2])
key = model_col.selectbox("Pretrained network", list(APPLICATIONS), index=list(APPLICATIONS).index("mobilenetv2"),
                          format_func=lambda k: f"{APPLICATIONS[k].name} ({APPLICATIONS[k].documented.size_mb} MB)")
upload = photo_col.file_uploader("A photo (PNG or JPEG)", type=["png", "jpg", "jpeg"])
if upload is None:
    st.info("Upload a photo to see the network's five most likely ImageNet classes, with its own preprocessing.")
else:
    try:
        model = ui.pretrained(key)
        image, best = zoo.classify(model, upload.getvalue())
    except WeightsUnavailable as missing:
        st.warning(ui.say(missing))
        st.caption("Everything else on this page works without the weights.")
    except ValueError as problem:
        st.warning(ui.say(problem))
    else:
        seen_col, bars_col = st.columns([1, 2])
        seen_col.image(image, caption=f"what {APPLICATIONS[key].name} receives: {image.shape[0]}x{image.shape[1]} RGB")
        bars_col.plotly_chart(top_classes_bars(best), width="stretch")

st.subheader("Reuse a pretrained network for CIFAR-10")
st.markdown("**Transfer learning** keeps a pretrained network's convolutional base, frozen, and trains only a small "
            "new head on its features, as the lecture's last step suggests. On the **Train** page, choose "
            "*Transfer learning*, a base (VGG19 as in the lecture, or the far lighter MobileNetV2) and an input size; "
            "the base computes each image's features once, and the head trains in seconds per epoch.")
st.page_link("pages/3_Train.py", label="Train a transfer-learning head", icon="📈")
