"""Your image: upload a photo or draw a digit, see exactly what the network receives, and its answer."""

import streamlit as st

import cnnlab
from app import nav
from app.text import class_names, class_text, language, t
from app.widgets import IMAGE_UPLOAD_MB, choose_trained_run, drawing_pad, refusal, upscaled
from cnnlab import explain
from cnnlab.charts import class_probabilities

nav.page("your_image")
st.title(t("your_image.title"))

choice = choose_trained_run()
model = choice.run.model
shape = tuple(model.input_shape[1:])
names = choice.run.class_names
digits = shape[-1] == 1  # grey digits can be drawn; colour photos are uploaded

source = st.radio(t("your_image.source"), ["draw", "upload", "camera"] if digits else ["upload", "camera"],
                  horizontal=True, format_func=lambda s: t(f"your_image.{s}"))
if source == "draw":
    st.caption(t("your_image.draw_note"))
    picture, file_name, missing = drawing_pad(key=f"canvas-{choice.id}"), None, t("your_image.canvas_empty")
elif source == "camera":
    shot = st.camera_input(t("your_image.camera_take"), key=f"camera-{choice.id}")
    picture, file_name, missing = (shot.getvalue() if shot else None), None, t("your_image.camera_missing")
else:
    upload = st.file_uploader(t("your_image.uploader"), type=["png", "jpg", "jpeg"], key=f"upload-{choice.id}",
                              max_upload_size=IMAGE_UPLOAD_MB)
    picture, file_name = (upload.getvalue(), upload.name) if upload is not None else (None, None)
    missing = t("your_image.upload_missing")
if picture is None:
    st.info(missing)
    st.stop()

with refusal():
    image = cnnlab.read_image(picture, shape, name=file_name)  # digits are normalised as MNIST's were
probabilities = cnnlab.predict_proba(model, image)[0]
predicted = int(probabilities.argmax())
heat, _, layer = explain.grad_cam(model, image, predicted)

seen_col, cam_col, chart_col = st.columns([1, 1, 2])
seen_col.image(upscaled(image, 6), caption=t("your_image.receives_digit" if digits else "your_image.receives",
                                             size=f"{shape[0]}x{shape[1]}"))
cam_col.image(upscaled(explain.overlay(image, heat), 6), caption=f"Grad-CAM ({layer})")
chart_col.markdown(t("your_image.prediction", label=class_text(names, predicted),
                     probability=f"{probabilities[predicted]:.1%}"))
tops = cnnlab.top_k(probabilities, names, 3)[0]
chart_col.caption(t("your_image.top", classes=", ".join(f"{class_text(names, top['class'])} {top['probability']:.1%}"
                                                        for top in tops)))
chart_col.plotly_chart(class_probabilities(probabilities, class_names(names), lang=language()), width="stretch")
