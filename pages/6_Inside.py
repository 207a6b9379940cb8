"""Inside: the feature maps of every layer, the filters, and Grad-CAM for one test image."""

import numpy as np
import streamlit as st

import cnnlab
import ui
from cnnlab import explain
from cnnlab.charts import tile

ui.page("inside")
st.title("Inside the network")

choice = ui.choose_trained_run()
model = choice.run.model
data = ui.test_images(choice)  # the test sample this model was validated on
names = data.class_names

pick_col, index_col = st.columns([1, 2])
state_key = f"inside-index-{choice.id}"
if pick_col.button("Random test image") or state_key not in st.session_state:
    st.session_state[state_key] = cnnlab.random_test_image(data, np.random.default_rng())[0]
index = index_col.number_input("Test image index", 0, len(data.x_test) - 1, key=state_key)
image, label = data.x_test[index], int(data.y_test[index])

maps_tab, filters_tab, cam_tab = st.tabs(["Feature maps", "Filters", "Grad-CAM"])

with maps_tab:
    st.caption(f"Every convolution and pooling layer's output for test image {index} "
               f"({ui.class_label(names, label)}). Wide layers show their first {explain.MAX_CHANNELS} channels; "
               "each map is scaled to its own range (black low, white high).")
    left, _ = st.columns([1, 5])
    left.image(ui.upscaled(image, 4), caption="the input")
    for fm in explain.feature_maps(model, image):
        height, width, channels = fm.shape
        scale = max(2, 72 // max(height, 1))
        st.markdown(f"**{fm.layer}** · {fm.type} · {height} x {width} x {channels}"
                    + (f" · first {fm.channels_shown} of {channels} channels" if fm.channels_shown < channels else ""))
        st.image(tile(fm.maps, columns=16, scale=scale))

with filters_tab:
    kernels = explain.first_filters(model)
    st.markdown(f"**The first convolution's {len(kernels)} kernels** "
                f"({kernels.shape[1]} x {kernels.shape[2]} x {kernels.shape[3]}), each scaled to its own range"
                + (", in colour" if kernels.shape[-1] == 3 else "") + ".")
    st.image(tile(kernels, columns=16, scale=max(1, 40 // kernels.shape[1])))
    st.markdown("**Every convolution, in numbers**")
    st.dataframe([vars(s) | {"kernel_shape": " x ".join(map(str, s.kernel_shape))} for s in explain.filter_stats(model)],
                 hide_index=True, width="stretch")

with cam_tab:
    probabilities = cnnlab.predict_proba(model, image)[0]
    predicted = int(probabilities.argmax())
    target = st.selectbox("Explain the class", range(len(names)), index=predicted, key=f"cam-class-{choice.id}",
                          format_func=lambda i: f"{ui.class_label(names, i)} ({probabilities[i]:.1%})"
                          + (" · predicted" if i == predicted else "") + (" · true" if i == label else ""))
    heat, explained, layer = explain.grad_cam(model, image, target)
    left, middle, right = st.columns(3)
    left.image(ui.upscaled(image, 8), caption=f"test image {index}: {ui.class_label(names, label)}")
    middle.image(ui.upscaled(explain.overlay(image, heat), 8), caption=f"Grad-CAM for {ui.class_label(names, explained)}")
    right.image(ui.upscaled((heat[..., None] * 255).astype(np.uint8), 8), caption=f"heat map from {layer}")
    st.caption("Grad-CAM weighs each channel of the last convolution with a map wider than one pixel by how much "
               "it raises the chosen class, and shows where those channels fired (Selvaraju et al., 2017).")
