"""Your image: upload a photo or draw a digit, see exactly what the network receives, and its answer."""

import streamlit as st

import cnnlab
import ui
from cnnlab import explain
from cnnlab.charts import class_probabilities

ui.page("your_image")
st.title("Your image")

choice = ui.choose_trained_run()
model = choice.run.model
shape = tuple(model.input_shape[1:])
names = choice.run.class_names
digits = choice.config.dataset == "mnist"

sources = ["Draw a digit", "Upload a file"] if digits else ["Upload a file"]
source = st.radio("Image", sources, horizontal=True)
if source == "Draw a digit":
    st.caption("Draw one digit with the mouse or a finger, large and in the middle; release to see the answer.")
    picture = ui.drawing_canvas(key=f"canvas-{choice.id}")
    missing = "The canvas is empty: draw a digit first."
else:
    upload = st.file_uploader("A PNG or JPEG of any size", type=["png", "jpg", "jpeg"], key=f"upload-{choice.id}")
    picture = upload.getvalue() if upload is not None else None
    missing = "Upload a PNG or JPEG file."
if picture is None:
    st.info(missing)
    st.stop()

try:
    image = cnnlab.read_image(picture, shape)  # digits are normalised as MNIST's were
except ValueError as problem:
    st.warning(ui.say(problem))
    st.stop()

probabilities = cnnlab.predict_proba(model, image)[0]
predicted = int(probabilities.argmax())
heat, _, layer = explain.grad_cam(model, image, predicted)

seen_col, cam_col, chart_col = st.columns([1, 1, 2])
seen_col.image(ui.upscaled(image, 6), caption=f"what the network receives: {shape[0]}x{shape[1]}"
               + (" grey, white on black, fitted to 20x20 and centred" if digits else " RGB"))
cam_col.image(ui.upscaled(explain.overlay(image, heat), 6), caption=f"Grad-CAM ({layer})")
chart_col.markdown(f"**Prediction:** {ui.class_label(names, predicted)} ({probabilities[predicted]:.1%})")
chart_col.plotly_chart(class_probabilities(probabilities, names), width="stretch")
