"""The server inside a real memory cgroup of 2,700 MB, as on a Community Cloud box, driven by Chromium.

The guard must read the group's limit, not the machine's, and refuse a run that would not fit,
instead of the kernel killing the server and every learner's session with it. Runs where this
machine lets a test make a memory cgroup (root, a writable memory controller); skips otherwise.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.request

import pytest

from tests.app_server import CHROMIUM, CHROMIUM_ARGS, app_server
from tests.cgroup_helpers import memory_cgroup
from tests.test_browser import quick_lenet, settle

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")]

LIMIT_MB = 2700


@contextlib.contextmanager
def train_page_in_cgroup():
    """`streamlit run` inside a new cgroup of LIMIT_MB, and Chromium on its Train page: (group, server, page)."""
    with memory_cgroup(LIMIT_MB) as group:
        join = lambda: (group.path / "cgroup.procs").write_text(str(os.getpid()))  # noqa: E731
        with app_server(preexec_fn=join) as (url, server), playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(90_000)
            page.goto(f"{url}/Train")
            page.wait_for_selector("h1")
            settle(page)  # a select opened while the page is still being drawn closes again when it is redrawn
            yield group, server, page
            browser.close()


def test_a_run_too_big_for_the_servers_cgroup_is_refused_and_the_server_lives_on():
    with train_page_in_cgroup() as (group, server, page):
        url = page.url.split("/Train")[0]
        selectboxes = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']")
        selectboxes.filter(has_text="Architecture").click()
        page.get_by_role("option", name="VGG19", exact=True).click()
        sidebar = page.locator("[data-testid='stSidebar']")
        sidebar.get_by_text("weight_decay").wait_for()  # VGG19's own settings are drawn...
        page.wait_for_function(  # ...and the run that drew them has ended
            "() => !document.querySelector(\"[data-testid='stStatusWidget']\")"
            " && !document.querySelector(\"[data-stale='true']\")", timeout=90_000)
        size = sidebar.get_by_label("Input size", exact=True).last
        size.fill("224")      # VGG19 at 224 px, width 0.25: about 3.1 GB to train
        size.press("Enter")
        time.sleep(2)
        page.get_by_role("button", name="Start", exact=True).click()
        refusal = page.get_by_text("needs about", exact=False).first
        refusal.wait_for()
        text = refusal.inner_text()
        assert "limit 2.6 GB" in text, text       # the group's limit, not the machine's 23 GB
        assert server.poll() is None               # alive, and still serving
        assert urllib.request.urlopen(f"{url}/_stcore/health", timeout=10).read() == b"ok"


def test_in_the_cgroup_a_run_trains_in_a_worker_of_its_own_and_the_group_stays_within_its_limit():
    """The default on a 2.7 GB box: one worker beside the server, limited to the group's 2.7 GB less the
    400 MB reserve, and every process's memory together within the group's limit."""
    with train_page_in_cgroup() as (group, server, page):
        page.get_by_text("worker process(es) beside the server, each limited to 2.2 GB").wait_for()
        quick_lenet(page, epochs=1)
        page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Start", exact=True).click()
        page.get_by_text("Test accuracy").first.wait_for(timeout=240_000)
        assert len(group.pids()) >= 4                # the server, the scheduler, the worker's nanny, the worker
        assert server.poll() is None
        peak = group.path / "memory.peak"
        assert not peak.exists() or int(peak.read_text()) < LIMIT_MB * 2**20
