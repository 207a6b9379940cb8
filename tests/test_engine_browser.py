"""A worker killed mid-run, in a real browser against `streamlit run`: the server stays up, the run is
shown as failed with its curves so far, and the next run trains."""

from __future__ import annotations

import signal

import psutil
import pytest

from tests.app_server import CHROMIUM, app_server
from tests.test_browser import browser, curve_points, quick_lenet, settle, shot, wait_for  # noqa: F401
from tests.test_workspace_browser import button, index, tab

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")]


def training_workers(server_pid: int) -> list[psutil.Process]:
    """The server's Dask worker processes: the children of its `dask worker` process."""
    nannies = [p for p in psutil.Process(server_pid).children(recursive=True) if "worker" in p.cmdline()]
    return [child for nanny in nannies for child in nanny.children()
            if "multiprocessing.spawn" in " ".join(child.cmdline())]


def test_a_killed_worker_fails_its_run_with_its_curves_and_the_next_run_trains(browser, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    with app_server({"CNNLAB_DATA_DIR": str(data)}) as (url, server):
        learner = tab(browser)
        learner.goto(f"{url}/Train")
        settle(learner)
        assert learner.get_by_text("worker process(es) beside the server").count() == 1
        quick_lenet(learner, epochs=30)
        button(learner, "Start").click()
        wait_for(lambda: index(data, "SELECT epochs_done FROM runs WHERE epochs_done >= 1"), 180, "a finished epoch")
        drawn = wait_for(lambda: curve_points(learner), 30, "the live curve")
        (run_id,), = index(data, "SELECT id FROM runs")
        workers = training_workers(server.pid)
        assert len(workers) == 1
        workers[0].send_signal(signal.SIGKILL)          # the worker dies mid-run, as the kernel's OOM killer would

        wait_for(lambda: learner.get_by_text("worker process training it stopped").count(), 60, "the failed run")
        assert server.poll() is None                   # the server, and every learner's session, carry on
        assert index(data, "SELECT status FROM runs WHERE id = ?", run_id) == [("failed",)]
        settle(learner)
        assert curve_points(learner) >= drawn          # its curves up to the kill
        shot(learner, "Worker-killed")

        other = tab(browser)                           # another learner's pages render meanwhile
        other.goto(f"{url}/Architecture")
        settle(other)
        assert other.get_by_text("LeNet-5").count() >= 1

        quick_lenet(learner, epochs=1)
        button(learner, "Start").click()               # the nanny has started a fresh worker
        wait_for(lambda: index(data, "SELECT id FROM runs WHERE id > ? AND status = 'done'", run_id), 180,
                 "the next run to finish")
        assert server.poll() is None
