"""Predict: classify a random test image, as the lecture does, or one chosen by index."""

import streamlit as st

import cnnlab
from app import nav, session
from app.text import class_names, class_text, language, t
from app.widgets import choose_trained_run, pick_test_image, upscaled
from cnnlab.charts import class_probabilities

nav.page("predict")
st.title(t("predict.title"))

choice = choose_trained_run()
data = session.validation_sample(choice)  # the test sample this model was validated on
index, image, label = pick_test_image(data, key=f"predict-index-{choice.id}", primary=True)
probabilities = cnnlab.predict_proba(choice.run.model, image)[0]
predicted = int(probabilities.argmax())

image_col, chart_col = st.columns([1, 2])
image_col.image(upscaled(image, 8), caption=t("predict.test_image", index=str(index)))
image_col.markdown(t("predict.result", label=class_text(data.class_names, label),
                     predicted=class_text(data.class_names, predicted), probability=f"{probabilities[predicted]:.1%}",
                     verdict=t("predict.right") if predicted == label else t("predict.wrong")))
chart_col.plotly_chart(class_probabilities(probabilities, class_names(data.class_names), label, lang=language()),
                       width="stretch")
