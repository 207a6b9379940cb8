"""Predict: classify a random test image, as the lecture does, or one chosen by index."""

import numpy as np
import streamlit as st

import cnnlab
import ui
from cnnlab.charts import class_probabilities

ui.page("predict")
st.title("Predict")

choice = ui.choose_trained_run()
run = choice.run
data = ui.test_images(choice)  # the test sample this model was validated on

pick_col, index_col = st.columns([1, 2])
state_key = f"predict-index-{choice.id}"
if pick_col.button("Random test image", type="primary") or state_key not in st.session_state:
    st.session_state[state_key] = cnnlab.random_test_image(data, np.random.default_rng())[0]
index = index_col.number_input("Test image index", 0, len(data.x_test) - 1, key=state_key)

image, label = data.x_test[index], int(data.y_test[index])
probabilities = cnnlab.predict_proba(run.model, image)[0]
predicted = int(probabilities.argmax())

image_col, chart_col = st.columns([1, 2])
image_col.image(ui.upscaled(image, 8), caption=f"test image {index}")
verdict = "✅ right" if predicted == label else "❌ wrong"
image_col.markdown(f"**True label:** {ui.class_label(data.class_names, label)}  \n"
                   f"**Predicted:** {ui.class_label(data.class_names, predicted)} ({probabilities[predicted]:.1%}) {verdict}")
chart_col.plotly_chart(class_probabilities(probabilities, data.class_names, label), width="stretch")
