"""How it computes, in a real browser: a learner trains a quick LeNet-5, watches its filters on the Train
page, then steps to its first convolution, clicks a cell of the feature map, and reads that cell's
arithmetic, checked against the model."""

from __future__ import annotations

import re

import pytest

from tests.app_server import CHROMIUM, app_server
from tests.test_browser import browser, settle, shot, wait_for  # noqa: F401
from tests.test_workspace_browser import button, tab

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")]


def slider_value(page, label: str) -> int:
    thumb = page.get_by_test_id("stMainBlockContainer").locator("[data-testid='stSlider']").filter(
        has_text=label).get_by_role("slider").first
    return int(thumb.get_attribute("aria-valuetext"))


def test_a_click_on_a_feature_map_shows_that_cells_arithmetic(browser, tmp_path):  # noqa: F811
    with app_server({"CNNLAB_DATA_DIR": str(tmp_path / "data")}) as (url, _):
        page = tab(browser)
        page.goto(f"{url}/How_it_computes")
        settle(page)
        quick = re.compile("Train a quick LeNet-5")  # the one-click run, then the Train page
        page.get_by_test_id("stMainBlockContainer").get_by_role("button", name=quick).click()
        wait_for(lambda: page.get_by_text("The network as it trains").count(), 120, "the network's live panel")
        wait_for(lambda: page.get_by_text("Test accuracy").count(), 180, "the end of the run")
        settle(page)
        shot(page, "Train-network-scrub")
        page.goto(page.url.replace("/Train", "/How_it_computes"))
        settle(page)
        for _ in range(2):  # past the padding and the scaling, to C1
            button(page, "▶").click()
            settle(page)
        wait_for(lambda: page.get_by_text("Convolution.").count(), 30, "the convolution step")
        assert (slider_value(page, "Row"), slider_value(page, "Column")) == (0, 0)

        chart = page.locator("[class*='st-key-computes-click-c1_conv'] .js-plotly-plot").first
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.6)  # about row 16, column 20
        wait_for(lambda: slider_value(page, "Row") > 5 and slider_value(page, "Column") > 5, 30,
                 "the clicked cell in the sliders")
        settle(page)
        row, col = slider_value(page, "Row"), slider_value(page, "Column")
        main = page.get_by_test_id("stMainBlockContainer")
        patch = main.get_by_text(re.compile(r"rows \d+ to \d+, columns \d+ to \d+")).first.inner_text()
        assert f"rows {row} to {row + 4}, columns {col} to {col + 4}" in patch  # 'valid': the patch starts there
        assert f"row {row}, column {col}" in main.get_by_text("with the cell being computed").first.inner_text()
        assert main.get_by_text("The model computed").count() and main.get_by_text("the same number").count()
        shot(page, "How-it-computes-conv")
