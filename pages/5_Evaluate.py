"""Evaluate: accuracy per class, the confusion matrix, and the test images behind any cell."""

import streamlit as st

import cnnlab
import ui
from cnnlab.charts import confusion_heatmap, per_class_bars

ui.page("evaluate")
st.title("Evaluate")

choice = ui.choose_trained_run()
kept = {run.id for run in ui.runs()}
cache = {run_id: value for run_id, value in st.session_state.get("evaluations", {}).items() if run_id in kept}
st.session_state["evaluations"] = cache
if choice.id not in cache:
    data = ui.test_images(choice)
    with st.spinner(f"Classifying {len(data.x_test):,} test images..."):
        cache[choice.id] = (data, cnnlab.evaluate_model(choice.run.model, data.x_test, data.y_test, data.class_names))
data, evaluation = cache[choice.id]
names = evaluation.class_names

overall, count = st.columns(2)
overall.metric("Test accuracy", f"{evaluation.accuracy:.2%}")
count.metric("Test images", f"{len(evaluation.labels):,}")

st.subheader("Accuracy per class")
st.plotly_chart(per_class_bars(evaluation.per_class_accuracy, names), width="stretch")

st.subheader("Confusion matrix")
st.plotly_chart(confusion_heatmap(evaluation.confusion, names), width="stretch")
st.caption("Rows: the true class. Columns: what the model said. The diagonal holds the right answers.")

st.subheader("Open a cell")
worst = evaluation.worst_confusion() or (0, 0)
true_col, predicted_col = st.columns(2)
true_class = true_col.selectbox("True class", range(len(names)), index=worst[0], key=f"true-{choice.id}",
                                format_func=lambda i: ui.class_label(names, i))
predicted_class = predicted_col.selectbox("Predicted as", range(len(names)), index=worst[1],
                                          key=f"predicted-{choice.id}", format_func=lambda i: ui.class_label(names, i))
cell = evaluation.cell(true_class, predicted_class)
if not len(cell):
    st.info("No test image falls in this cell.")
else:
    shown = cell[:30]
    st.caption(f"{len(cell)} test image(s); showing {len(shown)}. Under each: the probability of the predicted "
               "class and of the true class.")
    probabilities = evaluation.probabilities
    st.image([ui.upscaled(data.x_test[i], 3) for i in shown],
             caption=[f"#{i}: {probabilities[i, predicted_class]:.0%} / {probabilities[i, true_class]:.0%}"
                      for i in shown])
