"""The workspace as the pages show it: the link is the key, a bad or unknown link never opens anyone
else's work, a read-only link shows one run and changes nothing, and the limits are said before they act."""

from __future__ import annotations

import time

import pytest

from tests.test_app import no_exceptions, page, runs_of, same_workspace, trained_session  # noqa: F401 - a fixture
from tests.test_classroom import classroom, start_quick_lenet  # noqa: F401 - a fixture


def notices(at) -> str:
    return " ".join(w.value for w in at.sidebar.warning)


def test_a_first_visit_gets_its_own_workspace_in_the_link():
    first, second = no_exceptions(page("pages/3_Train.py").run()), no_exceptions(page("pages/3_Train.py").run())
    token = first.query_params["ws"]
    token = token[0] if isinstance(token, list) else token
    assert token == first.session_state["workspace"] and len(token) == 32
    assert second.session_state["workspace"] != token
    assert "key to your work" in " ".join(c.value for c in first.sidebar.caption)


@pytest.mark.parametrize("link, says", [
    ("../../../etc/passwd", "does not name a workspace"),
    ("a" * 5000, "does not name a workspace"),
    ("작업공간" * 8, "does not name a workspace"),
    ("A" * 32, "is not on this server"),
])
def test_a_bad_or_unknown_link_opens_a_new_workspace_never_someone_elses(trained_session, link, says):  # noqa: F811
    at = page("pages/5_Evaluate.py")
    at.query_params["ws"] = link
    no_exceptions(at.run())
    assert says in notices(at)
    assert at.session_state["workspace"] not in (link, trained_session.session_state["workspace"])
    assert runs_of(at) == [] and "no trained model" in at.info[0].value


def test_a_second_tab_on_the_link_sees_the_same_runs(trained_session):  # noqa: F811
    other = no_exceptions(same_workspace(trained_session, page("pages/5_Evaluate.py")).run())
    assert other.session_state["workspace"] == trained_session.session_state["workspace"]
    assert [r.id for r in runs_of(other)] == [r.id for r in runs_of(trained_session)]
    assert other.metric[1].value == "500"


def test_a_read_only_link_shows_one_run_and_changes_nothing(trained_session):  # noqa: F811
    run = runs_of(trained_session)[-1]
    train = page("pages/3_Train.py")
    train.query_params["view"] = run.share
    no_exceptions(train.run())
    assert "read-only link" in train.info[0].value
    labels = [b.label for b in train.button]
    assert "Start" not in labels and not any(label.startswith("Continue") for label in labels)
    assert not any(e.label == "Read-only link" for e in train.expander)
    assert "workspace" not in train.session_state        # nothing of the learner's workspace is opened
    assert any(m.label == "Test accuracy" for m in train.metric) and train.get("plotly_chart")

    evaluate = page("pages/5_Evaluate.py")
    evaluate.query_params["view"] = run.share
    no_exceptions(evaluate.run())
    assert evaluate.metric[1].value == "500" and len(evaluate.get("plotly_chart")) == 2

    wrong = page("pages/4_Predict.py")
    wrong.query_params["view"] = trained_session.session_state["workspace"]  # a workspace token is no run link
    no_exceptions(wrong.run())
    assert "names no run" in notices(wrong) and runs_of(wrong) == []


def test_the_train_page_names_the_run_a_new_start_would_remove(tmp_path, monkeypatch, trained_session):  # noqa: F811
    import streamlit as st

    settings = tmp_path / "classroom.toml"
    settings.write_text("[classroom]\nkept_runs = 1\n")
    monkeypatch.setenv("CNNLAB_CLASSROOM", str(settings))
    st.cache_resource.clear()  # a server started with kept_runs = 1
    try:
        at = no_exceptions(same_workspace(trained_session, page("pages/3_Train.py")).run())
        oldest = runs_of(trained_session)[0]
        assert any(f"removes the oldest finished one, #{oldest.id}" in w.value for w in at.warning)
        assert any(b.key == "download-oldest" for b in at.get("download_button"))
    finally:
        st.cache_resource.clear()


def test_a_run_lives_while_any_tab_of_its_workspace_is_open(classroom):  # noqa: F811
    classroom(abandoned_after_seconds=3)
    started = start_quick_lenet(page("pages/3_Train.py").run(), epochs=50)
    run = runs_of(started)[-1]
    other = same_workspace(started, page("pages/4_Predict.py"))  # the first tab went quiet; this one is open
    deadline = time.time() + 8
    while time.time() < deadline:
        no_exceptions(other.run())                                 # its page, and its sidebar's heartbeat
        time.sleep(0.5)
    assert run.active, run.stop_reason                             # 8 s: kept alive by the other tab
    deadline = time.time() + 30
    while run.active and time.time() < deadline:                   # now no tab of the workspace is open
        time.sleep(0.2)
    assert run.status == "stopped" and "browser tab was gone" in str(run.stop_reason)


def test_the_settings_link_carries_the_settings_but_not_the_workspace():
    at = page("pages/3_Train.py")
    at.query_params.update({"arch": "alexnet", "epochs": "7"})
    no_exceptions(at.run())
    shared = [c.value for c in at.sidebar.code]
    assert len(shared) == 1 and "arch=alexnet" in shared[0] and "epochs=7" in shared[0]
    assert "ws=" not in shared[0] and at.session_state["workspace"] not in shared[0]
