"""Inside: the feature maps of every layer, the filters, and Grad-CAM for one test image."""

import numpy as np
import streamlit as st

import cnnlab
import ui
from cnnlab import explain
from cnnlab.charts import tile

ui.page("inside")
st.title(ui.t("inside.title"))

choice = ui.choose_trained_run()
model = choice.run.model
data = ui.test_images(choice)  # the test sample this model was validated on
names = data.class_names

pick_col, index_col = st.columns([1, 2])
state_key = f"inside-index-{choice.id}"
if pick_col.button(ui.t("predict.random")) or state_key not in st.session_state:
    st.session_state[state_key] = cnnlab.random_test_image(data, np.random.default_rng())[0]
index = index_col.number_input(ui.t("predict.index"), 0, len(data.x_test) - 1, key=state_key)
image, label = data.x_test[index], int(data.y_test[index])

maps_tab, filters_tab, cam_tab = st.tabs([ui.t("inside.maps_tab"), ui.t("inside.filters_tab"), ui.t("inside.cam_tab")])

with maps_tab:
    st.caption(ui.t("inside.maps_note", index=str(index), label=ui.class_label(names, label),
                    channels=explain.MAX_CHANNELS))
    left, _ = st.columns([1, 5])
    left.image(ui.upscaled(image, 4), caption=ui.t("inside.the_input"))
    for fm in explain.feature_maps(model, image):
        height, width, channels = fm.shape
        scale = max(2, 72 // max(height, 1))
        st.markdown(ui.t("inside.map_line", layer=fm.layer, type=fm.type, shape=f"{height} x {width} x {channels}")
                    + (ui.t("inside.first_channels", shown=fm.channels_shown, channels=channels)
                       if fm.channels_shown < channels else ""))
        st.image(tile(fm.maps, columns=16, scale=scale))

with filters_tab:
    kernels = explain.first_filters(model)
    st.markdown(ui.t("inside.kernels_colour" if kernels.shape[-1] == 3 else "inside.kernels", count=len(kernels),
                     shape=f"{kernels.shape[1]} x {kernels.shape[2]} x {kernels.shape[3]}"))
    st.image(tile(kernels, columns=16, scale=max(1, 40 // kernels.shape[1])))
    st.markdown(ui.t("inside.in_numbers"))
    st.dataframe([vars(s) | {"kernel_shape": " x ".join(map(str, s.kernel_shape))} for s in explain.filter_stats(model)],
                 hide_index=True, width="stretch", column_config={
                     column: st.column_config.Column(ui.t(f"inside.column.{column}"))
                     for column in ("layer", "kernel_shape", "mean", "std", "min", "max", "mean_abs")})

with cam_tab:
    probabilities = cnnlab.predict_proba(model, image)[0]
    predicted = int(probabilities.argmax())
    target = st.selectbox(ui.t("inside.explain_class"), range(len(names)), index=predicted, key=f"cam-class-{choice.id}",
                          format_func=lambda i: f"{ui.class_label(names, i)} ({probabilities[i]:.1%})"
                          + (ui.t("inside.predicted_mark") if i == predicted else "")
                          + (ui.t("inside.true_mark") if i == label else ""))
    heat, explained, layer = explain.grad_cam(model, image, target)
    left, middle, right = st.columns(3)
    left.image(ui.upscaled(image, 8), caption=ui.t("inside.test_image", index=str(index), label=ui.class_label(names, label)))
    middle.image(ui.upscaled(explain.overlay(image, heat), 8), caption=ui.t("inside.cam_for", label=ui.class_label(names, explained)))
    right.image(ui.upscaled((heat[..., None] * 255).astype(np.uint8), 8), caption=ui.t("inside.heat_from", layer=layer))
    st.caption(ui.t("inside.cam_note"))
