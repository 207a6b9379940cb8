"""Every page's start: its browser title and icon, the workspace its URL names, and the lab's
navigation, language, workspace and active run in the sidebar."""

from __future__ import annotations

import time

import streamlit as st

from cnnlab import i18n
from cnnlab.runner import RunStatus

from . import session
from .resources import store, training_pool
from .session import active_run, runs
from .text import language, t

PAGES = (("streamlit_app.py", "home", "🏠"), ("pages/1_Architecture.py", "architecture", "🧱"),
         ("pages/2_Data.py", "data", "🖼️"), ("pages/3_Train.py", "train", "📈"), ("pages/4_Predict.py", "predict", "🔍"),
         ("pages/5_Evaluate.py", "evaluate", "🧮"), ("pages/6_Inside.py", "inside", "🔬"),
         ("pages/10_How_it_computes.py", "computes", "🔢"), ("pages/7_Your_image.py", "your_image", "✏️"),
         ("pages/11_Your_classes.py", "own", "🧺"),
         ("pages/8_Zoo.py", "zoo", "🦒"),
         ("pages/9_Lessons.py", "lessons", "🎓"))
TRAIN_PAGE = "pages/3_Train.py"
OWN_PAGE = "pages/11_Your_classes.py"
HEARTBEAT_SECONDS = 5  # far below any sensible abandoned_after_seconds, even in a throttled background tab
REMOVED_SHOWN_SECONDS = 7 * 86400  # runs removed to make room are named in the sidebar for a week


def page(key: str) -> None:
    """Every page starts here: its browser title and icon, and the lab's navigation in the sidebar.

    The pages/ folder gives each page its deep link (/Train, /Predict, ...); the navigation is
    drawn here so that the home page is called Home rather than after its file, in the learner's language.
    """
    icon = next(symbol for _, name, symbol in PAGES if name == key)
    st.set_page_config(page_title=f"{t(f'nav.{key}')} · CNN Lab" if key != "home" else "CNN Lab", page_icon=icon,
                       layout="wide")
    session.open_workspace()
    with st.sidebar:
        st.markdown(t("app.sidebar"))
        for target, name, symbol in PAGES:
            st.page_link(target, label=t(f"nav.{name}"), icon=symbol, query_params=session.link_query())
        _language_switch()
        _workspace()
        _run_status()
        st.divider()
    if session.read_only():
        st.info(t("workspace.viewing", run=f"#{runs()[0].id}" if runs() else ""))


def link(target: str, label: str, icon: str | None = None, query: dict | None = None) -> None:
    """A link to another of the lab's pages that keeps this tab's workspace (or shared run), with `query`'s settings."""
    st.page_link(target, label=label, icon=icon, query_params={**session.link_query(), **(query or {})})


def switch(target: str) -> None:
    st.switch_page(target, query_params=session.link_query())


def _workspace() -> None:
    """What the link is (the key to the learner's work), a new workspace, deleting this one, and
    what was removed to make room."""
    notice = st.session_state.pop("workspace-notice", None)
    if notice:
        st.warning(t(notice, days=f"{training_pool().settings.workspace_days:g}"))
    if session.read_only():
        st.caption(t("workspace.viewing_sidebar"))
        if st.button(t("workspace.leave_view"), key="workspace-leave", width="stretch"):
            del st.query_params[session.VIEW]
            st.session_state.pop("viewing", None)
            st.rerun()
        return
    with st.expander(t("workspace.header"), icon="🔑"):
        st.caption(t("workspace.key"))
        if st.button(t("workspace.new"), key="workspace-new", icon="➕", width="stretch"):
            session.new_workspace()
            st.rerun()
        if st.button(t("workspace.delete"), key="workspace-delete", icon="🗑️", width="stretch"):
            session.delete_workspace()
            st.session_state["workspace-notice"] = "workspace.deleted"
            st.rerun()
    for gone in store().removed(session.workspace(), since=time.time() - REMOVED_SHOWN_SECONDS)[:3]:
        st.caption("🗑️ " + t(f"workspace.removed_{gone.reason}", run=f"#{gone.run}", label=gone.label,
                             limit=getattr(training_pool().settings, gone.reason)))


def _language_switch() -> None:
    """The sidebar's language choice; it holds for the rest of this browser session, on every page."""
    languages = list(i18n.LANGUAGES)

    def keep():
        st.session_state["language"] = st.session_state["language_switch"]

    st.selectbox(t("app.language"), languages, index=languages.index(language()), key="language_switch",
                 format_func=i18n.LANGUAGES.get, on_change=keep)


def _run_status() -> None:
    """The learner's active run, in the sidebar of every page. Redrawn every few seconds, it also
    tells the server that this browser tab is still open, for every run of the workspace: a run is
    stopped once no tab of its workspace has been open for a while. A read-only view keeps nothing alive."""
    run = active_run()
    if run is None:
        return

    @st.fragment(run_every=HEARTBEAT_SECONDS)
    def status():
        now = active_run()  # the same run, as this workspace's tabs see it now
        if now is None or now.id != run.id or not now.active:
            st.rerun()  # the whole page: a finished run's model appears where it was awaited
        for waiting in runs() if not session.read_only() else ():  # a lesson's runs wait in line too
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
