"""Your image: upload a photo or draw a digit, see exactly what the network receives, and its answer."""

import streamlit as st

import cnnlab
import ui
from cnnlab import explain
from cnnlab.charts import class_probabilities

ui.page("your_image")
st.title(ui.t("your_image.title"))

choice = ui.choose_trained_run()
model = choice.run.model
shape = tuple(model.input_shape[1:])
names = choice.run.class_names
digits = choice.config.dataset == "mnist"

sources = ["draw", "upload"] if digits else ["upload"]
source = st.radio(ui.t("your_image.source"), sources, horizontal=True, format_func=lambda s: ui.t(f"your_image.{s}"))
if source == "draw":
    st.caption(ui.t("your_image.draw_note"))
    picture = ui.drawing_canvas(key=f"canvas-{choice.id}")
    missing = ui.t("your_image.canvas_empty")
else:
    upload = st.file_uploader(ui.t("your_image.uploader"), type=["png", "jpg", "jpeg"], key=f"upload-{choice.id}",
                              max_upload_size=ui.IMAGE_UPLOAD_MB)
    picture = upload.getvalue() if upload is not None else None
    missing = ui.t("your_image.upload_missing")
if picture is None:
    st.info(missing)
    st.stop()

try:
    image = cnnlab.read_image(picture, shape, name=upload.name if source == "upload" else None)  # digits are normalised as MNIST's were
except ValueError as problem:
    st.warning(ui.say(problem))
    st.stop()

probabilities = cnnlab.predict_proba(model, image)[0]
predicted = int(probabilities.argmax())
heat, _, layer = explain.grad_cam(model, image, predicted)

seen_col, cam_col, chart_col = st.columns([1, 1, 2])
seen_col.image(ui.upscaled(image, 6), caption=ui.t("your_image.receives_digit" if digits else "your_image.receives",
                                                   size=f"{shape[0]}x{shape[1]}"))
cam_col.image(ui.upscaled(explain.overlay(image, heat), 6), caption=f"Grad-CAM ({layer})")
chart_col.markdown(ui.t("your_image.prediction", label=ui.class_label(names, predicted),
                        probability=f"{probabilities[predicted]:.1%}"))
chart_col.plotly_chart(class_probabilities(probabilities, ui.class_names(names), lang=ui.language()), width="stretch")
