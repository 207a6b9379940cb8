"""The learner's workspace: its runs, kept on disk (`cnnlab.workspaces`), training in the server's pool.

The page's URL names the workspace (`?ws=<token>`), so a reload, a bookmark or a second tab on the same
link come back to the same runs, and a run that trains is the same run in every tab: its curves, its
Stop, its place in line. A run's read-only link (`?view=<token>`) shows that run alone, in any tab,
and nothing in it can be changed from there.
"""

from __future__ import annotations

import streamlit as st

import cnnlab
from cnnlab.bundle import bundle_bytes, read_bundle
from cnnlab.errors import LabError, Text
from cnnlab.owndata import OwnData
from cnnlab.runner import BackgroundRun
from cnnlab.workspaces import StoredRun, well_formed

from .resources import data_of, dataset, store, training_pool
from .text import t

WORKSPACE, VIEW = "ws", "view"  # the URL's query: whose work this tab shows, or which run it shows read-only


def open_workspace() -> None:
    """Every page run: the workspace (or the shared run) this tab shows, and the URL that says so.
    A link to a workspace that is not there, or a token that is not one, opens a new workspace with
    a notice: never anyone else's."""
    kept, query = store(), st.query_params
    share = query.get(VIEW)
    if share is not None:
        if kept.shared(share) is not None:
            st.session_state["viewing"] = share
            return
        del query[VIEW]
        st.session_state["workspace-notice"] = "workspace.no_such_run"
    st.session_state.pop("viewing", None)
    asked, current = query.get(WORKSPACE), st.session_state.get("workspace")
    if asked is not None and asked != current:
        current = asked if kept.exists(asked) else None
        if current is None:
            st.session_state["workspace-notice"] = "workspace.unknown" if well_formed(asked) else "workspace.malformed"
    elif current is not None and not kept.exists(current):  # deleted from another tab, or expired
        current = None
        st.session_state["workspace-notice"] = "workspace.gone"
    if current is None:
        current = kept.create_workspace()
    st.session_state["workspace"] = current
    if query.get(WORKSPACE) != current:  # every page run passes here: the URL is told only what changed
        query[WORKSPACE] = current
    kept.seen(current)


def workspace() -> str | None:
    """This tab's workspace token; None while it shows a shared run."""
    return None if read_only() else st.session_state.get("workspace")


def read_only() -> bool:
    """This tab shows one run through its read-only link."""
    return st.session_state.get("viewing") is not None


def link_query() -> dict[str, str]:
    """What every link between the lab's pages carries, so that the next page shows the same work."""
    if read_only():
        return {VIEW: st.session_state["viewing"]}
    return {WORKSPACE: st.session_state["workspace"]} if st.session_state.get("workspace") else {}


def runs() -> list[BackgroundRun | StoredRun]:
    """This workspace's runs, oldest first: the one training here as it trains, the rest from disk."""
    pool, kept = training_pool(), store()
    if read_only():
        shared = kept.shared(st.session_state["viewing"])
        records = [shared] if shared is not None else []
    else:
        records = kept.runs(workspace())
    return [pool.live(record.id) or record for record in records]


def latest() -> BackgroundRun | StoredRun | None:
    found = runs()
    return found[-1] if found else None


def active_run() -> BackgroundRun | StoredRun | None:
    return next((run for run in reversed(runs()) if run.active), None)


def finished_runs() -> list[BackgroundRun | StoredRun]:
    """The runs with a model to look at."""
    return [run for run in runs() if run.trained]


def remember(name: str, value) -> None:
    """Something a page keeps for this workspace (in every tab, and after a restart); a read-only view keeps nothing."""
    if not read_only():
        store().remember(workspace(), name, value)


def recall(name: str, default=None):
    return default if read_only() else store().recall(workspace(), name, default)


def own_data() -> OwnData:
    """This workspace's own classes (on disk, so they survive a reload and a restart)."""
    if read_only():
        raise LabError("workspace.read_only")
    return store().own(workspace())


def kept_runs() -> int:
    """Runs kept per workspace, on disk."""
    return training_pool().settings.kept_runs


def start_run(config: cnnlab.TrainConfig, label: str = "", resume: BackgroundRun | StoredRun | None = None,
              alone: bool = True) -> BackgroundRun:
    """Queue a run in this workspace (continuing `resume`'s model, with its optimizer's state, when given).
    `alone`: refused while the workspace has a run waiting or training (a lesson queues several at once)."""
    if read_only():
        raise LabError("workspace.read_only")
    config = config.resolved()
    if alone and active_run() is not None:  # pressed in two tabs of the workspace at once
        raise LabError("workspace.busy", run=f"#{active_run().id}")
    earlier = None
    if resume is not None:
        earlier = resume.run if isinstance(resume, BackgroundRun) else store().load(resume.id, optimizer=True)
    return training_pool().submit(config, data_of(config), label or (
        t("runs.continued", id=resume.id) if resume else ""), earlier, workspace=workspace())


def import_bundle(data: bytes) -> StoredRun:
    """A run bundle the learner uploaded, rebuilt by cnnlab (nothing in the file is run), kept
    like a run trained here."""
    if read_only():
        raise LabError("workspace.read_only")
    run = read_bundle(data, training_pool().settings.max_bundle_bytes)
    images = dataset(run.config.dataset)
    if (tuple(run.config.model.raw_shape), run.config.model.classes) != (images.image_shape, images.num_classes):
        raise LabError("bundle.other_data", shape=tuple(run.config.model.raw_shape),
                       classes=run.config.model.classes, dataset=Text(f"datasets.{images.name}.title"))
    run.class_names = images.class_names  # the lab's own names, not labels from the file
    return store().import_run(workspace(), run, t("runs.imported"))


def new_workspace() -> None:
    """A fresh, empty workspace for this tab; the old one stays where its link leads."""
    st.session_state["workspace"] = store().create_workspace()
    st.query_params[WORKSPACE] = st.session_state["workspace"]


def delete_workspace() -> None:
    """This workspace and everything in it: its training runs stopped, its files and index rows gone."""
    pool = training_pool()
    for run in runs():
        if run.active:
            run.stop()
    for run_id in store().delete_workspace(workspace()):
        live = pool.live(run_id)
        if live is not None:
            live.stop()
    new_workspace()


def bundle(run: BackgroundRun | StoredRun) -> bytes:
    """The run's bundle, to download: as saved on disk (its optimizer's state included), else made now."""
    path = store().bundle_path(run.id)
    return path.read_bytes() if path.is_file() else bundle_bytes(run.run)


def validation_sample(run: BackgroundRun | StoredRun) -> cnnlab.Dataset:
    """The test sample this run was validated on."""
    return data_of(run.config).sample(run.config.sample, seed=run.config.seed)
