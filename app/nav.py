"""Every page's start: its browser title and icon, and the lab's navigation, language and active
run in the sidebar."""

from __future__ import annotations

import streamlit as st

from cnnlab import i18n
from cnnlab.runner import RunStatus

from .resources import training_pool
from .session import active_run, runs
from .text import language, t

PAGES = (("streamlit_app.py", "home", "🏠"), ("pages/1_Architecture.py", "architecture", "🧱"),
         ("pages/2_Data.py", "data", "🖼️"), ("pages/3_Train.py", "train", "📈"), ("pages/4_Predict.py", "predict", "🔍"),
         ("pages/5_Evaluate.py", "evaluate", "🧮"), ("pages/6_Inside.py", "inside", "🔬"),
         ("pages/7_Your_image.py", "your_image", "✏️"), ("pages/8_Zoo.py", "zoo", "🦒"),
         ("pages/9_Lessons.py", "lessons", "🎓"))
TRAIN_PAGE = "pages/3_Train.py"
HEARTBEAT_SECONDS = 5  # far below any sensible abandoned_after_seconds, even in a throttled background tab


def page(key: str) -> None:
    """Every page starts here: its browser title and icon, and the lab's navigation in the sidebar.

    The pages/ folder gives each page its deep link (/Train, /Predict, ...); the navigation is
    drawn here so that the home page is called Home rather than after its file, in the learner's language.
    """
    icon = next(symbol for _, name, symbol in PAGES if name == key)
    st.set_page_config(page_title=f"{t(f'nav.{key}')} · CNN Lab" if key != "home" else "CNN Lab", page_icon=icon,
                       layout="wide")
    with st.sidebar:
        st.markdown(t("app.sidebar"))
        for target, name, symbol in PAGES:
            st.page_link(target, label=t(f"nav.{name}"), icon=symbol)
        _language_switch()
        _run_status()
        st.divider()


def _language_switch() -> None:
    """The sidebar's language choice; it holds for the rest of this browser session, on every page."""
    languages = list(i18n.LANGUAGES)

    def keep():
        st.session_state["language"] = st.session_state["language_switch"]

    st.selectbox(t("app.language"), languages, index=languages.index(language()), key="language_switch",
                 format_func=i18n.LANGUAGES.get, on_change=keep)


def _run_status() -> None:
    """The learner's active run, in the sidebar of every page. Redrawn every few seconds, it also
    tells the server that this browser tab is still open, for every run of the session: a run whose
    tab has gone is stopped."""
    run = active_run()
    if run is None:
        return

    @st.fragment(run_every=HEARTBEAT_SECONDS)
    def status():
        if not run.active:
            st.rerun()  # the whole page: a finished run's model appears where it was awaited
        for waiting in runs():  # a lesson's runs wait in line behind the one shown here: all are watched
            if waiting.active:
                waiting.touch()
        if run.status == RunStatus.QUEUED:
            place = training_pool().place_in_line(run)
            state = t("runs.sidebar_queued", place=place) if place else t("runs.sidebar_preparing")
        else:
            state = (t("runs.sidebar_training", percent=f"{run.progress.fraction:.0%}") if run.progress
                     else t("runs.sidebar_preparing"))
        st.caption(t("runs.sidebar", run=f"#{run.id}", status=state))

    status()
