"""The app in a real browser: Debian's Chromium driven by Playwright against `streamlit run`.

Every page opens from a deep link on a fresh server; LeNet trains with a growing curve; Stop
keeps the partial run; a learner can leave the Train page and come back; a random test image
is classified. Screenshots of every page land in tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import time

import pytest
from PIL import Image

from cnnlab import load_dataset
from tests.app_server import CHROMIUM, CHROMIUM_ARGS, app_server
from tests.conftest import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
PAGES = {"": "CNN Lab", "Architecture": "Architecture", "Data": "Data", "Train": "Train", "Predict": "Predict",
         "Evaluate": "Evaluate", "Inside": "Inside the network", "How_it_computes": "How it computes",
         "Your_image": "Your image", "Your_classes": "Your classes", "Zoo": "Model zoo",
         "Lessons": "Lessons: what the lecture found, run live"}

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A fresh `streamlit run` on a free loopback port, with empty weight and timing caches."""
    caches = tmp_path_factory.mktemp("caches")
    with app_server({"KERAS_HOME": str(caches / "keras"), "CNNLAB_CACHE_DIR": str(caches / "cnnlab")}) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A new browser session: its own Streamlit session, as a new learner."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


def settle(page, timeout: float = 90) -> None:
    """Wait until the app has drawn and is no longer running the script."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout * 1000)
    page.wait_for_selector("h1", timeout=timeout * 1000)
    deadline = time.time() + timeout
    time.sleep(0.5)
    while time.time() < deadline and (page.locator("[data-testid='stStatusWidget']").count()
                                      or page.locator("[data-stale='true']").count()):
        time.sleep(0.3)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def progress_text(page) -> str:
    texts = page.locator("[data-testid='stProgress']").all_inner_texts()
    return texts[0] if texts else ""


def curve_points(page) -> int:
    """Points on the first training line of the live chart (0 before it is drawn)."""
    return page.evaluate("() => { const g = document.querySelector('[class*=\"st-key-live-\"] .js-plotly-plot');"
                         " return g && g.data ? g.data[0].x.length : 0; }")


def curve_end(page) -> float:
    """How far the first training line reaches, in epochs (0 before it is drawn). A long run's curve is
    thinned to a fixed number of points, so its growth shows here and not in the count of points."""
    return page.evaluate("() => { const g = document.querySelector('[class*=\"st-key-live-\"] .js-plotly-plot');"
                         " const x = g && g.data ? g.data[0].x : []; return x.length ? Number(x[x.length - 1]) : 0; }")


def quick_lenet(page, epochs: int = 3) -> None:
    """The Train page's LeNet-5 for `epochs` on a tenth of the digits (6,000): its default is the
    lecture's own run, 10 epochs on all 60,000, which takes minutes."""
    sidebar = page.locator("[data-testid='stSidebar']")
    box = sidebar.get_by_label("Epochs", exact=True)
    box.fill(str(epochs))
    box.press("Enter")
    settle(page)
    thumb = sidebar.locator("[data-testid='stSlider']").filter(has_text="Sample fraction").get_by_role("slider")
    thumb.focus()
    thumb.press("Home")        # 0.05
    thumb.press("ArrowRight")  # 0.10
    wait_for(lambda: thumb.get_attribute("aria-valuetext") == "0.10", 10, "the sample slider at 0.10")
    settle(page)


def wait_for(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.4)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_opens_from_a_deep_link(server, page, path):
    page.goto(f"{server}/{path}")
    settle(page)
    assert page.locator("h1").first.inner_text() == PAGES[path]
    assert page.locator("[data-testid='stException']").count() == 0
    shot(page, path or "Home")


def test_train_watch_the_curve_grow_keep_it_then_predict(server, page, tmp_path):
    page.goto(f"{server}/Train")
    settle(page)
    quick_lenet(page)
    page.get_by_role("button", name="Start", exact=True).click()
    first = wait_for(lambda: curve_points(page), 90, "the first points of the curve")
    grown = wait_for(lambda: curve_points(page) > first + 5 and curve_points(page), 60, "the curve to grow")
    assert grown > first
    wait_for(lambda: "epoch 2/3" in progress_text(page) or "epoch 3/3" in progress_text(page), 90,
             "a later epoch")  # (an epoch of LeNet can pass between two redraws of a busy page)
    shot(page, "Train-live")
    wait_for(lambda: page.get_by_text("Test accuracy").count(), 120, "the end of the run")
    wait_for(lambda: page.get_by_role("button", name="Run bundle (.zip)").count() == 1, 30, "the bundle download")
    settle(page)
    shot(page, "Train-done")

    with page.expect_download() as download:  # the learner keeps the run, then brings it back
        page.get_by_role("button", name="Run bundle (.zip)").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".zip" and saved.stat().st_size > 100_000
    page.get_by_text("Keep your work").click()
    page.locator("input[type=file]").set_input_files(str(saved))
    wait_for(lambda: page.get_by_text("is back", exact=False).count(), 60, "the uploaded run")
    settle(page)
    shot(page, "Train-bundle-back")

    page.get_by_role("link", name="Predict").click()
    settle(page)
    page.get_by_role("button", name="Random test image").click()
    settle(page)
    assert page.get_by_text("True label").count() and page.get_by_text("Predicted").count()
    index = int(page.get_by_label("Test image index").input_value())
    assert page.get_by_text(f"test image {index}").count() == 1
    label = int(load_dataset("mnist").sample(0.1, seed=0).y_test[index])  # the run's own test images
    assert page.get_by_text(f"True label: {label}", exact=False).count() == 1
    assert page.locator(".js-plotly-plot").count() == 1  # the probabilities over all classes
    shot(page, "Predict-result")


def test_stop_mid_run_keeps_the_partial_run(server, page):
    page.goto(f"{server}/Train")
    settle(page)
    quick_lenet(page)
    page.get_by_role("button", name="Start", exact=True).click()
    wait_for(lambda: "batch" in progress_text(page), 90, "the first batch")
    page.get_by_role("button", name="Stop", exact=True).click()
    message = wait_for(lambda: page.get_by_text("its model and curves are kept").all_inner_texts(), 60,
                       "the stopped run's message")
    assert "stopped by the learner" in message[0]
    assert curve_points(page) > 0
    assert page.get_by_role("button", name="Start", exact=True).is_enabled()
    shot(page, "Train-stopped")


def test_leave_the_train_page_and_come_back(server, page):
    page.goto(f"{server}/Train")
    settle(page)
    quick_lenet(page)
    page.get_by_role("button", name="Start", exact=True).click()
    wait_for(lambda: curve_points(page), 90, "the curve")
    page.get_by_role("link", name="Architecture").click()
    settle(page)
    time.sleep(3)
    page.get_by_role("link", name="Train").click()
    wait_for(lambda: curve_points(page), 30, "the curve after coming back")
    wait_for(lambda: page.get_by_text("Test accuracy").count(), 150, "the run to finish after coming back")


def test_upload_a_digit_and_draw_one(server, page, tmp_path):
    page.goto(f"{server}/Your_image")
    settle(page)
    page.get_by_role("button", name="Train a quick LeNet-5").click()
    wait_for(lambda: page.get_by_text("Test accuracy").count(), 150, "the quick LeNet")
    page.get_by_role("link", name="Your image").click()
    settle(page)

    canvas = page.locator("canvas").first
    wait_for(lambda: canvas.count() and canvas.bounding_box(), 30, "the drawing pad")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    for step in range(1, 11):  # a vertical stroke: a 1
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.2 + 0.06 * step))
    page.mouse.up()
    wait_for(lambda: page.get_by_text("Prediction:").count(), 60, "a prediction for the drawing")
    shot(page, "Your-image-drawn")

    photo = tmp_path / "digit.png"
    digit = load_dataset("mnist").x_test[0, :, :, 0]
    Image.fromarray(255 - digit).resize((300, 300)).save(photo)  # dark ink on white paper, large
    page.get_by_text("Upload a file").click()
    settle(page)
    page.locator("input[type='file']").set_input_files(str(photo))
    wait_for(lambda: page.get_by_text("what the network receives").count(), 60, "the uploaded image")
    settle(page)
    assert page.get_by_text("Prediction:").count() == 1
    shot(page, "Your-image-uploaded")

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG broken")
    page.locator("input[type='file']").set_input_files(str(bad))
    wait_for(lambda: page.get_by_text("not an image CNN Lab can read").count(), 60, "the broken file's message")
    assert page.locator("[data-testid='stException']").count() == 0


def test_zoo_counts_the_table_and_answers_a_photo(server, page, tmp_path):
    page.goto(f"{server}/Zoo")
    settle(page)
    page.get_by_role("button", name="Count parameters and depth here").click()
    wait_for(lambda: page.get_by_text("parameter counts agree").count(), 120, "the counts")
    settle(page)
    shot(page, "Zoo-counted")

    photo = tmp_path / "photo.png"
    Image.fromarray(load_dataset("cifar10").x_test[3]).resize((320, 240)).save(photo)
    page.locator("input[type='file']").set_input_files(str(photo))
    # Offline, the page says which file is missing and where to put it; online, MobileNetV2 answers.
    wait_for(lambda: page.get_by_text("could not be downloaded").count() or page.get_by_text("receives").count(),
             120, "the pretrained network's answer or what is missing")
    settle(page)
    assert page.locator("[data-testid='stException']").count() == 0
    page.get_by_text("What does a pretrained network see").scroll_into_view_if_needed()
    shot(page, "Zoo-photo")



def chart_names(page) -> list[str]:
    """The names of every line on the page's plotly charts, as the browser drew them."""
    return page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                         ".flatMap(g => (g.data || []).map(t => t.name || ''))")


def test_run_a_lenet_lesson_and_read_its_verdict(server, page, browser):
    page.goto(f"{server}/Lessons")
    settle(page)
    page.locator("[data-testid='stMain'] [data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="1998 against 2012: sigmoid, ReLU and max pooling").click()
    settle(page)
    assert any("full scale (lecture's code, GPU)" in name for name in chart_names(page))  # the dashed reference
    page.get_by_role("button", name="Run this lesson").click()
    wait_for(lambda: any(name.startswith("sigmoid + average pooling (1998)") for name in chart_names(page)), 120,
             "the lesson's live curves")
    shot(page, "Lessons-live")
    verdict = wait_for(lambda: page.get_by_text("The claim held.").count() or
                       page.get_by_text("The claim did not hold this time.").count(), 240, "the verdict")
    assert verdict
    settle(page)
    names = chart_names(page)
    for run in ("sigmoid + average pooling (1998)", "ReLU + average pooling (the lecture)", "ReLU + max pooling"):
        assert any(name.startswith(run) for name in names), (run, names)
    assert any("full scale (lecture's code, GPU)" in name for name in names)
    assert page.get_by_text("measured", exact=False).count() and page.get_by_text("Why").count()
    assert page.locator("[data-testid='stException']").count() == 0
    shot(page, "Lessons-verdict")

    # The class: another learner's tab opens the lesson and sees the result without running it.
    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    other.goto(f"{server}/Lessons")
    settle(other)
    other.locator("[data-testid='stMain'] [data-testid='stSelectbox']").first.click()
    other.get_by_role("option", name="1998 against 2012: sigmoid, ReLU and max pooling").click()
    wait_for(lambda: other.get_by_text("everyone here sees it", exact=False).count(), 60, "the class's shared result")
    wait_for(lambda: other.get_by_text("The claim held.").count() or  # drawn just after the line above
             other.get_by_text("The claim did not hold this time.").count(), 60, "the shared verdict")
    shot(other, "Lessons-shared")
    other.context.close()


def test_a_korean_browser_sees_korean(server, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="ko-KR")
    page = context.new_page()
    try:
        page.goto(f"{server}/Train")
        settle(page)
        wait_for(lambda: page.get_by_text("에포크당 예상 시간").count(), 90, "the Korean cost estimate")
        assert page.locator("h1").first.inner_text() == "학습"
        assert page.get_by_role("button", name="시작", exact=True).count() == 1
        shot(page, "Train-ko")
        page.goto(f"{server}/")
        settle(page)
        wait_for(lambda: page.get_by_text("LeNet에서 VGG까지").count(), 90, "the Korean home page")
        shot(page, "Home-ko")
    finally:
        context.close()
