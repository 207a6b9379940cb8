"""Inside: the feature maps of every layer, the filters, and Grad-CAM for one test image."""

import numpy as np
import streamlit as st

import cnnlab
from app import nav, session
from app.text import class_label, class_text, language, t
from app.widgets import choose_trained_run, pick_test_image, upscaled
from cnnlab import explain
from cnnlab.charts import channel_values, tile

FILTER_COLUMNS = ("layer", "kernel_shape", "mean", "std", "min", "max", "mean_abs")

nav.page("inside")
st.title(t("inside.title"))

choice = choose_trained_run()
model = choice.run.model
data = session.validation_sample(choice)  # the test sample this model was validated on
names = data.class_names
index, image, label = pick_test_image(data, key=f"inside-index-{choice.id}")

maps_tab, filters_tab, cam_tab = st.tabs([t("inside.maps_tab"), t("inside.filters_tab"), t("inside.cam_tab")])

with maps_tab:
    st.caption(t("inside.maps_note", index=str(index), label=class_text(names, label), channels=explain.MAX_CHANNELS))
    left, _ = st.columns([1, 5])
    left.image(upscaled(image, 4), caption=t("inside.the_input"))
    for fm in explain.feature_maps(model, image):
        height, width, channels = fm.shape
        st.markdown(t("inside.map_line", layer=fm.layer, type=fm.type, shape=f"{height} x {width} x {channels}")
                    + (t("inside.first_channels", shown=fm.channels_shown, channels=channels)
                       if fm.channels_shown < channels and fm.values is None else ""))
        if fm.values is not None:  # one value per channel: a picture of it would be one flat square each
            st.caption(t("inside.one_pixel"))
            st.plotly_chart(channel_values(fm.values, lang=language()), width="stretch", key=f"values-{fm.layer}")
        else:
            st.image(tile(fm.maps, columns=16, scale=max(2, 72 // max(height, 1))))

with filters_tab:
    kernels = explain.first_filters(model)
    st.markdown(t("inside.kernels_colour" if kernels.shape[-1] == 3 else "inside.kernels", count=len(kernels),
                  shape=f"{kernels.shape[1]} x {kernels.shape[2]} x {kernels.shape[3]}"))
    st.image(tile(kernels, columns=16, scale=max(1, 40 // kernels.shape[1])))
    st.markdown(t("inside.in_numbers"))
    stats = [vars(s) | {"kernel_shape": " x ".join(map(str, s.kernel_shape))} for s in explain.filter_stats(model)]
    st.dataframe(stats, hide_index=True, width="stretch", column_config={
        column: st.column_config.Column(t(f"inside.column.{column}")) for column in FILTER_COLUMNS})

with cam_tab:
    probabilities = cnnlab.predict_proba(model, image)[0]
    predicted = int(probabilities.argmax())
    target = st.selectbox(t("inside.explain_class"), range(len(names)), index=predicted, key=f"cam-class-{choice.id}",
                          format_func=lambda i: f"{class_label(names, i)} ({probabilities[i]:.1%})"
                          + (t("inside.predicted_mark") if i == predicted else "")
                          + (t("inside.true_mark") if i == label else ""))
    heat, explained, layer = explain.grad_cam(model, image, target)
    left, middle, right = st.columns(3)
    left.image(upscaled(image, 8), caption=t("inside.test_image", index=str(index), label=class_label(names, label)))
    middle.image(upscaled(explain.overlay(image, heat), 8),
                 caption=t("inside.cam_for", label=class_label(names, explained)))
    right.image(upscaled((heat[..., None] * 255).astype(np.uint8), 8), caption=t("inside.heat_from", layer=layer))
    st.caption(t("inside.cam_note"))
