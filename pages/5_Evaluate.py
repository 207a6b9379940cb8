"""Evaluate: accuracy per class, the confusion matrix, and the test images behind any cell."""

import streamlit as st

import cnnlab
from app import nav, session
from app.text import class_label, class_names, language, t
from app.widgets import choose_trained_run, upscaled
from cnnlab.charts import confusion_heatmap, per_class_bars

nav.page("evaluate")
st.title(t("evaluate.title"))

choice = choose_trained_run()
kept = {run.id for run in session.runs()}
cache = {run_id: value for run_id, value in st.session_state.get("evaluations", {}).items() if run_id in kept}
st.session_state["evaluations"] = cache
if choice.id not in cache:
    data = session.validation_sample(choice)
    with st.spinner(t("evaluate.classifying", count=len(data.x_test))):
        cache[choice.id] = (data, cnnlab.evaluate_model(choice.run.model, data.x_test, data.y_test, data.class_names))
data, evaluation = cache[choice.id]
names = evaluation.class_names
shown_names = class_names(names)

overall, count = st.columns(2)
overall.metric(t("evaluate.accuracy"), f"{evaluation.accuracy:.2%}")
count.metric(t("evaluate.images"), f"{len(evaluation.labels):,}")

st.subheader(t("evaluate.per_class"))
st.plotly_chart(per_class_bars(evaluation.per_class_accuracy, shown_names, lang=language()), width="stretch")

st.subheader(t("evaluate.confusion"))
st.plotly_chart(confusion_heatmap(evaluation.confusion, shown_names, lang=language()), width="stretch")
st.caption(t("evaluate.confusion_note"))

st.subheader(t("evaluate.open_cell"))
worst = evaluation.worst_confusion() or (0, 0)
true_col, predicted_col = st.columns(2)
true_class = true_col.selectbox(t("evaluate.true_class"), range(len(names)), index=worst[0], key=f"true-{choice.id}",
                                format_func=lambda i: class_label(names, i))
predicted_class = predicted_col.selectbox(t("evaluate.predicted_as"), range(len(names)), index=worst[1],
                                          key=f"predicted-{choice.id}", format_func=lambda i: class_label(names, i))
cell = evaluation.cell(true_class, predicted_class)
if not len(cell):
    st.info(t("evaluate.empty_cell"))
else:
    shown = cell[:30]
    st.caption(t("evaluate.cell_note", count=len(cell), shown=len(shown)))
    probabilities = evaluation.probabilities
    st.image([upscaled(data.x_test[i], 3) for i in shown],
             caption=[f"#{i}: {probabilities[i, predicted_class]:.0%} / {probabilities[i, true_class]:.0%}"
                      for i in shown])
