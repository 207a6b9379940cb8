"""Predict: classify a random test image, as the lecture does, or one chosen by index."""

import numpy as np
import streamlit as st

import cnnlab
import ui
from cnnlab.charts import class_probabilities

ui.page("predict")
st.title(ui.t("predict.title"))

choice = ui.choose_trained_run()
run = choice.run
data = ui.test_images(choice)  # the test sample this model was validated on

pick_col, index_col = st.columns([1, 2])
state_key = f"predict-index-{choice.id}"
if pick_col.button(ui.t("predict.random"), type="primary") or state_key not in st.session_state:
    st.session_state[state_key] = cnnlab.random_test_image(data, np.random.default_rng())[0]
index = index_col.number_input(ui.t("predict.index"), 0, len(data.x_test) - 1, key=state_key)

image, label = data.x_test[index], int(data.y_test[index])
probabilities = cnnlab.predict_proba(run.model, image)[0]
predicted = int(probabilities.argmax())

image_col, chart_col = st.columns([1, 2])
image_col.image(ui.upscaled(image, 8), caption=ui.t("predict.test_image", index=str(index)))
verdict = ui.t("predict.right") if predicted == label else ui.t("predict.wrong")
image_col.markdown(ui.t("predict.result", label=ui.class_label(data.class_names, label),
                        predicted=ui.class_label(data.class_names, predicted),
                        probability=f"{probabilities[predicted]:.1%}", verdict=verdict))
chart_col.plotly_chart(class_probabilities(probabilities, ui.class_names(data.class_names), label, lang=ui.language()),
                       width="stretch")
