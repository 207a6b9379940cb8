"""One server, a whole class: many sessions at once, runs that stop when their tab has gone,
faults that lose nothing, and a learner's work that leaves and comes back as a run bundle."""

from __future__ import annotations

import time

import pytest
import streamlit as st

from cnnlab.bundle import bundle_bytes
from tests.test_app import button, no_exceptions, page, runs_of, same_workspace, wait_for_run

SESSIONS = 8


@pytest.fixture
def classroom(tmp_path, monkeypatch):
    """A new server whose classroom.toml allows two runs at once; `classroom(abandoned_after_seconds=3)`."""
    def serve(**settings):
        path = tmp_path / "classroom.toml"
        settings = {"max_concurrent_runs": 2, "abandoned_after_seconds": 60, "max_bundle_mb": 20, **settings}
        path.write_text("[classroom]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items()))
        monkeypatch.setenv("CNNLAB_CLASSROOM", str(path))
        st.cache_resource.clear()  # a new server: its training pool reads the file

    serve()
    yield serve
    st.cache_resource.clear()


def start_quick_lenet(at, epochs=1):
    at.sidebar.number_input[0].set_value(epochs)
    at.sidebar.slider[0].set_value(0.25)           # 1,500 digits
    at.sidebar.select_slider[0].set_value(32)      # 47 batches
    button(at, "Start").click().run()
    return at


def overlap(runs) -> int:
    """The most runs that were training at the same moment."""
    events = sorted([(r.started, 1) for r in runs if r.started] + [(r.finished, -1) for r in runs if r.started])
    most = now = 0
    for _, change in events:
        now += change
        most = max(most, now)
    return most


def test_eight_sessions_at_once_share_two_slots_and_never_see_each_other(classroom):
    sessions = [no_exceptions(start_quick_lenet(page("pages/3_Train.py").run())) for _ in range(SESSIONS)]
    runs = [runs_of(at)[-1] for at in sessions]
    told_place = set()
    deadline = time.time() + 300
    while any(run.active for run in runs) and time.time() < deadline:
        for at, run in zip(sessions, runs):
            if run.status == "queued":
                no_exceptions(at.run())  # the page a waiting learner sees (it also keeps the run alive)
                told_place |= {i.value for i in at.info if "number" in i.value and "in line" in i.value}
            elif run.active:
                run.touch()
        time.sleep(0.2)
    assert all(run.status == "done" for run in runs), [run.status for run in runs]
    assert overlap(runs) == 2
    assert len(told_place) >= 3  # several places in line were shown, e.g. "number 1", "number 2", ...
    assert len({run.id for run in runs}) == SESSIONS
    assert len({id(run.run.model) for run in runs}) == SESSIONS
    for at, run in zip(sessions, runs):
        assert [r.id for r in runs_of(at)] == [run.id]  # each session holds its own run only
        no_exceptions(at.run())
        assert at.get("plotly_chart")
        assert any(m.label == "Test accuracy" for m in at.metric)


def test_a_run_whose_tab_went_quiet_stops_and_frees_its_slot(classroom):
    classroom(abandoned_after_seconds=3)
    gone = start_quick_lenet(page("pages/3_Train.py").run(), epochs=20)
    run = runs_of(gone)[-1]
    deadline = time.time() + 60
    while run.active and time.time() < deadline:  # nobody reruns this page: the tab was closed
        time.sleep(0.2)
    assert run.status == "stopped" and "browser tab was gone" in str(run.stop_reason)
    no_exceptions(gone.run())  # if the learner comes back, the partial run is there
    assert any("browser tab was gone" in w.value for w in gone.warning)


def test_a_bundle_goes_and_comes_back_to_predict_and_to_continue(classroom):
    trained = start_quick_lenet(page("pages/3_Train.py").run())
    first = runs_of(trained)[-1]
    while first.active:
        first.touch()
        time.sleep(0.2)
    no_exceptions(trained.run())
    assert any(b.label == "Run bundle (.zip)" for b in trained.get("download_button"))
    saved = bundle_bytes(first.run)

    later = no_exceptions(page("pages/3_Train.py").run())  # another day, another session
    later.file_uploader(key="bundle-upload").set_value(("lenet.zip", saved, "application/zip"))
    no_exceptions(later.run())
    back = runs_of(later)[-1]
    assert back.status == "done" and back.label == "uploaded" and len(back.epochs) == 1
    assert any("is back" in s.value for s in later.success)

    predict = same_workspace(later, page("pages/4_Predict.py"))
    no_exceptions(predict.run())
    assert "Predicted" in predict.markdown[0].value

    later.sidebar.number_input[0].set_value(1).run()
    no_exceptions(button(later, f"Continue run #{back.id} for 1 more epoch(s)").click().run())
    more = runs_of(later)[-1]
    while more.active:
        more.touch()
        time.sleep(0.2)
    assert more.status == "done" and [e["epoch"] for e in more.run.history.epochs] == [1, 2]
    assert len(more.epochs) == 2 and more.label == f"continued from #{back.id}"


@pytest.mark.parametrize("name, data, says", [
    ("notes.zip", b"PK\x05\x06" + bytes(18), "not a CNN Lab run bundle"),
    ("photo.zip", b"\x89PNG\r\n\x1a\n" + bytes(100), "not a run bundle CNN Lab can read"),
])
def test_a_bad_bundle_is_refused_and_the_session_goes_on(classroom, name, data, says):
    at = no_exceptions(page("pages/3_Train.py").run())
    at.file_uploader(key="bundle-upload").set_value((name, data, "application/zip"))
    no_exceptions(at.run())
    assert any(says in e.value for e in at.error)
    assert not runs_of(at)
    no_exceptions(start_quick_lenet(at))  # the learner trains on, as if nothing happened
    assert runs_of(at)[-1].status in ("queued", "running", "done")


def test_an_interrupted_run_shows_its_partial_curves_and_bundle(classroom, monkeypatch):
    """Training that fails inside the server's own process (a worker's failure: tests/test_engines.py)."""
    from cnnlab.runner import BackgroundRun

    classroom(engine='"threads"')

    def out_of_memory_at_the_fifth_batch(self, progress, on_batch=BackgroundRun.on_batch):
        on_batch(self, progress)
        if len(self.batches) == 5:
            raise MemoryError()

    monkeypatch.setattr(BackgroundRun, "on_batch", out_of_memory_at_the_fifth_batch)
    at = start_quick_lenet(page("pages/3_Train.py").run())
    no_exceptions(wait_for_run(at))
    run = runs_of(at)[-1]
    assert run.status == "failed" and len(run.run.history.batches) == 5
    assert any("ran out of memory" in e.value and "kept" in e.value for e in at.error)
    assert any(b.label == "Run bundle (.zip)" for b in at.get("download_button"))
    assert not button(at, "Start").disabled
