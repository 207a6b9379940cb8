"""A class at once, in real browsers: 8 Chromium contexts press Start within seconds on one
`streamlit run` with the shipped settings. Every run must finish, and each learner's Predict page
must offer only that learner's run. `bench/class_load.py` is the same code at 30 learners, with
the speed and render figures.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.app_server import CHROMIUM

pytest.importorskip("playwright.async_api", reason="pip install playwright (requirements-dev.txt)")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")]

DEADLINE_S = 600  # generous: the 8 runs take about a minute on 2 cores; a stalled server takes forever


def test_eight_learners_press_start_at_once_and_every_run_finishes():
    from bench.class_load import measure

    result = asyncio.run(measure(learners=8, trainers=8, start_window_s=3, deadline_s=DEADLINE_S, arrival_s=5,
                                 alone=False))
    unfinished = [run for run in result["runs"] if not run["finished"]]
    assert not unfinished, f"{len(unfinished)} of 8 runs did not finish in {DEADLINE_S} s: {unfinished[0]['error']}"
    assert result["each_sees_only_its_own_run"], [run["predict_offers"] for run in result["runs"]]
    assert all(run["test_accuracy"] > 0.5 for run in result["runs"])  # they trained, not only ended
