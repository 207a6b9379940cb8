"""Lessons: the lecture's questions, each answered live by a few runs beside its full-scale runs."""

import streamlit as st

from app import lessons, nav
from app.text import t

nav.page("lessons")
st.title(t("lessons.title"))
st.caption(t("lessons.intro"))

lesson, preset = lessons.choose()
lessons.describe(lesson, preset)
lessons.start(lesson, preset)
lessons.live(lesson)
lessons.result(lesson)
