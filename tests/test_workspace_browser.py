"""Nothing lost, in a real browser against `streamlit run`: a reload and a second tab find the run that
trains and can stop it, and a server killed mid-run comes back with the run interrupted at its last
finished epoch, ready to continue."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from tests.app_server import CHROMIUM, app_server
from tests.test_browser import browser, curve_end, curve_points, progress_text, quick_lenet, settle, shot, wait_for  # noqa: F401

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")]


def tab(browser):  # noqa: F811 - the module's browser fixture
    """A new browser context: another device, or another learner, with nothing in common but a link."""
    return browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()


def button(page, name: str):
    """A button of the page itself (Streamlit's own toolbar has a Stop of its own while a script runs)."""
    return page.get_by_test_id("stMainBlockContainer").get_by_role("button", name=name, exact=True)


def index(data, sql: str, *args):
    """The server's index, read as it stands (read-only: the server keeps writing it)."""
    with sqlite3.connect(f"file:{data / 'index.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute(sql, args).fetchall()


def test_a_reload_and_a_second_tab_reattach_to_the_run_and_stop_it(browser, tmp_path):  # noqa: F811
    with app_server({"CNNLAB_DATA_DIR": str(tmp_path / "data")}) as (url, _):
        first = tab(browser)
        first.goto(f"{url}/Train")
        settle(first)
        quick_lenet(first, epochs=30)
        button(first, "Start").click()
        wait_for(lambda: curve_points(first), 90, "the first points of the curve")
        link = first.url
        assert "ws=" in link

        first.reload()                                # a phone's tab reloads
        settle(first)
        wait_for(lambda: curve_points(first), 30, "the curve after the reload")
        drawn = curve_end(first)
        wait_for(lambda: "epoch" in progress_text(first), 10, "the live progress after the reload")
        assert button(first, "Stop").is_enabled()
        assert not button(first, "Start").is_enabled()

        second = tab(browser)                         # the same link on another device
        second.goto(link)
        settle(second)
        wait_for(lambda: curve_points(second), 30, "the live run in the second tab")
        seen = curve_end(second)
        wait_for(lambda: curve_end(second) > seen and curve_end(first) > drawn, 30, "both tabs to see it move")
        shot(second, "Workspace-second-tab")

        stranger = tab(browser)                       # no link: a new workspace, none of the others' runs
        stranger.goto(f"{url}/Train")
        settle(stranger)
        assert curve_points(stranger) == 0 and button(stranger, "Start").is_enabled()

        button(second, "Stop").click()
        for each in (second, first):
            message = wait_for(lambda p=each: p.get_by_text("its model and curves are kept").all_inner_texts(), 60,
                               "the stopped run in both tabs")
            assert "stopped by the learner" in message[0]
        first.reload()                                # and after another reload, it is all still there
        settle(first)
        wait_for(lambda: first.get_by_text("Test accuracy").count(), 30, "the result after a reload")
        assert curve_points(first) > 0
        shot(first, "Workspace-after-reload")


def test_a_killed_server_comes_back_with_the_run_interrupted_and_continue_trains_on(browser, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    learner = tab(browser)
    with app_server({"CNNLAB_DATA_DIR": str(data)}) as (url, server):
        learner.goto(f"{url}/Train")
        settle(learner)
        quick_lenet(learner, epochs=4)
        button(learner, "Start").click()
        wait_for(lambda: index(data, "SELECT epochs_done FROM runs WHERE epochs_done >= 1"), 120, "a finished epoch")
        os.kill(server.pid, signal.SIGKILL)           # the server dies mid-run
        server.wait()
    (run_id, done), = index(data, "SELECT id, epochs_done FROM runs")
    assert 1 <= done < 4
    link = learner.url.split("/Train", 1)[1]

    with app_server({"CNNLAB_DATA_DIR": str(data)}) as (url, _):
        learner.goto(f"{url}/Train{link}")
        settle(learner)
        warning = wait_for(lambda: learner.get_by_text("was interrupted when the server stopped").all_inner_texts(),
                           30, "the interrupted run")
        assert f"#{run_id}" in warning[0] and f"epoch {done}" in warning[0]
        assert wait_for(lambda: curve_points(learner), 10, "its curves")  # the curves up to the kill
        wait_for(lambda: button(learner, "Run bundle (.zip)").count() == 1, 10, "the bundle download")
        shot(learner, "Workspace-interrupted")
        button(learner, f"Continue run #{run_id} for {4 - done} more epoch(s)").click()
        wait_for(lambda: index(data, "SELECT status FROM runs WHERE id > ? AND status = 'done'", run_id), 180,
                 "the continued run to finish")
        (epochs,), = index(data, "SELECT epochs_done FROM runs WHERE id > ?", run_id)
        assert epochs == 4                            # it trained on from the last epoch, to the planned four
        time.sleep(1)
        settle(learner)
        shot(learner, "Workspace-continued")
