"""Evaluate: accuracy per class, the confusion matrix, and the test images behind any cell."""

import streamlit as st

import cnnlab
import ui
from cnnlab.charts import confusion_heatmap, per_class_bars

ui.page("evaluate")
st.title(ui.t("evaluate.title"))

choice = ui.choose_trained_run()
kept = {run.id for run in ui.runs()}
cache = {run_id: value for run_id, value in st.session_state.get("evaluations", {}).items() if run_id in kept}
st.session_state["evaluations"] = cache
if choice.id not in cache:
    data = ui.test_images(choice)
    with st.spinner(ui.t("evaluate.classifying", count=len(data.x_test))):
        cache[choice.id] = (data, cnnlab.evaluate_model(choice.run.model, data.x_test, data.y_test, data.class_names))
data, evaluation = cache[choice.id]
names = evaluation.class_names
shown_names = ui.class_names(names)

overall, count = st.columns(2)
overall.metric(ui.t("evaluate.accuracy"), f"{evaluation.accuracy:.2%}")
count.metric(ui.t("evaluate.images"), f"{len(evaluation.labels):,}")

st.subheader(ui.t("evaluate.per_class"))
st.plotly_chart(per_class_bars(evaluation.per_class_accuracy, shown_names, lang=ui.language()), width="stretch")

st.subheader(ui.t("evaluate.confusion"))
st.plotly_chart(confusion_heatmap(evaluation.confusion, shown_names, lang=ui.language()), width="stretch")
st.caption(ui.t("evaluate.confusion_note"))

st.subheader(ui.t("evaluate.open_cell"))
worst = evaluation.worst_confusion() or (0, 0)
true_col, predicted_col = st.columns(2)
true_class = true_col.selectbox(ui.t("evaluate.true_class"), range(len(names)), index=worst[0], key=f"true-{choice.id}",
                                format_func=lambda i: ui.class_label(names, i))
predicted_class = predicted_col.selectbox(ui.t("evaluate.predicted_as"), range(len(names)), index=worst[1],
                                          key=f"predicted-{choice.id}", format_func=lambda i: ui.class_label(names, i))
cell = evaluation.cell(true_class, predicted_class)
if not len(cell):
    st.info(ui.t("evaluate.empty_cell"))
else:
    shown = cell[:30]
    st.caption(ui.t("evaluate.cell_note", count=len(cell), shown=len(shown)))
    probabilities = evaluation.probabilities
    st.image([ui.upscaled(data.x_test[i], 3) for i in shown],
             caption=[f"#{i}: {probabilities[i, predicted_class]:.0%} / {probabilities[i, true_class]:.0%}"
                      for i in shown])
