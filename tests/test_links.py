"""Settings links: the Train and Architecture pages read their settings from the URL's query, name the
values they cannot use, and keep the URL a link to what they show."""

from __future__ import annotations

import re
import time
import urllib.parse

import pytest

from app import links
from cnnlab import i18n, lessons
from tests.app_server import CHROMIUM, CHROMIUM_ARGS, app_server
from tests.test_app import from_the_catalogue, no_exceptions, page

TRAIN, ARCHITECTURE = "pages/3_Train.py", "pages/1_Architecture.py"
# AlexNet with the lecture's recipe, every other setting changed from the page's defaults for it.
ALEXNET_LINK = {"arch": "alexnet", "recipe": "seed", "epochs": "5", "batch": "64", "sample": "0.5", "size": "170",
                "width": "0.5", "accum": "4", "seed": "7", "dropout": "0.3"}
FOREIGN = {"utm_source": "mail"}  # a parameter neither page owns


def opened(path: str, query: dict, lang: str | None = None):
    """A page opened from a link, as a new learner's tab opens it."""
    at = page(path)
    at.query_params.update(query)
    if lang:
        at.session_state["language"] = lang
    return no_exceptions(at.run())


def owned(at, names=links.TRAIN_NAMES) -> dict:
    """The settings in the page's URL (the rest of its query is the workspace's, or anyone's)."""
    return {name: value for name, value in at.query_params.items() if name in names}


def warning(at) -> str:
    """The page's warning about a link's values ("" without one): there is at most one."""
    starts = tuple(i18n.text("links.refused", lang, problems="").strip() for lang in i18n.LANGUAGES)
    texts = [w.value for w in at.warning if w.value.startswith(starts)]
    assert len(texts) <= 1, texts
    return texts[0] if texts else ""


def test_a_train_link_sets_every_widget_and_the_url_carries_it_back():
    assert lessons.train_defaults("alexnet").recipe != "seed"     # the link changes the recipe, and its batch
    at = opened(TRAIN, ALEXNET_LINK)
    side = at.sidebar
    assert side.selectbox(key="train-arch").value == "alexnet"
    assert side.selectbox(key="train-recipe-alexnet").value == "seed"
    assert side.number_input(key="train-epochs-alexnet").value == 5
    assert side.select_slider(key="train-batch-alexnet-seed").value == 64
    assert side.select_slider(key="train-accumulation").value == 4
    assert side.slider(key="train-sample-alexnet").value == 0.5
    assert side.number_input(key="train-input-alexnet").value == 170
    assert side.slider(key="train-width-alexnet").value == 0.5
    assert side.number_input(key="train-alexnet-dropout").value == 0.3
    assert side.number_input(key="train-seed").value == 7
    assert not warning(at)
    assert owned(at) == ALEXNET_LINK
    assert any("press **Start**" in i.value for i in at.info)     # set up, and nothing started
    assert not at.get("progress")


def test_a_custom_learning_rate_and_a_choice_knob_round_trip():
    link = {"recipe": "custom", "lr": "0.002", "pooling": "max", "activation": "tanh"}
    at = opened(TRAIN, link)
    assert at.sidebar.number_input(key="lr-custom").value == 0.002
    assert not at.sidebar.number_input(key="lr-custom").proto.disabled
    assert at.sidebar.selectbox(key="train-lenet5-pooling").value == "max"
    assert at.sidebar.selectbox(key="train-lenet5-activation").value == "tanh"
    assert owned(at) == link and not warning(at)


def test_an_architecture_link_sets_the_network_size_width_and_knobs():
    link = {"arch": "alexnet", "size": "170", "width": "0.5", "dropout": "0.3"}
    at = opened(ARCHITECTURE, link)
    assert at.selectbox(key="architecture").value == "alexnet"
    assert at.sidebar.number_input(key="size-alexnet").value == 170
    assert at.sidebar.slider(key="width-alexnet").value == 0.5
    assert at.sidebar.number_input(key="architecture-alexnet-dropout").value == 0.3
    assert owned(at, links.ARCHITECTURE_NAMES) == link and not warning(at)

    pooled = opened(ARCHITECTURE, {"pooling": "max"})
    assert "MaxPooling2D" in list(pooled.dataframe[0].value["type"])   # the table follows the link
    assert owned(pooled, links.ARCHITECTURE_NAMES) == {"pooling": "max"}


def test_bad_values_are_named_and_the_defaults_stand_in_while_good_ones_apply():
    defaults = lessons.train_defaults("alexnet")
    bad = {"recipe": "lecture", "epochs": "abc", "batch": "48", "sample": "0.33", "size": "100", "width": "3",
           "seed": "-1", "dropout": "2", "pooling": "max"}
    at = opened(TRAIN, {"arch": "alexnet", "accum": "2", **bad, **FOREIGN})
    text = warning(at)
    for name, value in bad.items():
        shown = value if value.lstrip("-").replace(".", "").isdigit() else repr(value)
        assert f"{name}={shown}" in text, name
    assert "must be one of seed, paper, stable, fast, custom" in text and "from 1 to 100" in text
    assert "multiple of 0.05" in text and "at least" not in text and "from 163 to" in text
    assert "AlexNet has no setting by this name" in text                          # LeNet's knob, not AlexNet's
    side = at.sidebar
    assert side.selectbox(key="train-arch").value == "alexnet"                    # the good values apply
    assert side.select_slider(key="train-accumulation").value == 2
    assert side.selectbox(key="train-recipe-alexnet").value == defaults.recipe    # the defaults stand in
    assert side.number_input(key="train-epochs-alexnet").value == defaults.classroom.epochs
    assert side.select_slider(key=f"train-batch-alexnet-{defaults.recipe}").value == defaults.batch_size
    assert side.slider(key="train-sample-alexnet").value == defaults.classroom.sample
    assert side.number_input(key="train-input-alexnet").value == defaults.classroom.input_size
    assert side.number_input(key="train-alexnet-dropout").value == 0.5
    assert side.number_input(key="train-seed").value == 0
    assert owned(at) == {"arch": "alexnet", "accum": "2"}                       # the URL says what is shown
    assert at.query_params["utm_source"] == "mail"


def test_an_unknown_network_falls_back_to_the_first_and_keeps_the_rest_of_the_link():
    at = opened(TRAIN, {"arch": "resnet", "epochs": "4"})
    assert "arch='resnet'" in warning(at)
    assert at.sidebar.selectbox(key="train-arch").value == "lenet5"
    assert at.sidebar.number_input(key="train-epochs-lenet5").value == 4
    assert owned(at) == {"epochs": "4"}

    arch = opened(ARCHITECTURE, {"arch": "resnet", "size": "40", "init": "zeros", "norm": "batch", "width": "0.07"})
    assert arch.selectbox(key="architecture").value == "lenet5"
    text = warning(arch)
    assert "arch='resnet'" in text and "width=0.07" in text and "init='zeros'" in text and "norm='batch'" in text
    assert arch.sidebar.number_input(key="size-lenet5").value == 40


def test_a_vgg19_link_applies_its_knobs():
    at = opened(ARCHITECTURE, {"arch": "vgg19", "size": "0", "norm": "batch", "init": "zeros"})
    text = warning(at)
    assert "size=0" in text and "init='zeros'" in text and "norm" not in text
    assert at.sidebar.selectbox(key="architecture-vgg19-norm").value == "batch"
    assert "BatchNormalization" in list(at.dataframe[0].value["type"])


def test_settings_that_do_not_apply_are_named():
    at = opened(TRAIN, {"arch": "transfer", "width": "0.5", "lr": "0.01", "units": "128"})
    text = warning(at)
    assert "width=0.5" in text and "fixed width" in text
    assert "lr=0.01" in text and "custom recipe" in text
    assert "units" not in text and at.sidebar.number_input(key="train-transfer-units").value == 128
    assert owned(at) == {"arch": "transfer", "units": "128"}


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_warning_speaks_from_the_catalogue(lang):
    at = opened(TRAIN, {"epochs": "abc", "sample": "0.33", "dropout": "0.3", "lr": "1"}, lang=lang)
    text = warning(at)
    assert text and from_the_catalogue(text, lang)
    assert ("입력한 값: epochs='abc'" if lang == "ko" else "Received: epochs='abc'") in text


def test_the_warning_survives_a_rerun_and_goes_once_a_setting_changes():
    at = opened(TRAIN, {"epochs": "abc"})
    assert "epochs='abc'" in warning(at)
    no_exceptions(at.run())                            # a rerun the page asks for while it loads
    assert "epochs='abc'" in warning(at)
    at.sidebar.number_input(key="train-epochs-lenet5").set_value(3)
    no_exceptions(at.run())
    assert not warning(at) and at.query_params["epochs"] == "3"
    no_exceptions(at.run())
    assert not warning(at)


def test_a_crafted_value_draws_no_link():
    at = opened(TRAIN, {"epochs": "[sign in](http://example.com)"})
    text = warning(at)
    assert "epochs='\\[sign in\\](http\\://example.com)'" in text     # Markdown shows it, as text
    assert not re.search(r"(?<!\\)[\[\]]", text)


def test_changing_widgets_moves_the_url_and_leaves_other_parameters_alone():
    at = opened(TRAIN, FOREIGN)
    assert owned(at) == {}                              # no link: the page's URL says nothing of its settings
    at.sidebar.selectbox(key="train-arch").set_value("alexnet").run()
    assert owned(at) == {"arch": "alexnet"}
    at.sidebar.selectbox(key="train-recipe-alexnet").set_value("seed").run()
    assert at.sidebar.select_slider(key="train-batch-alexnet-seed").value == 128    # the recipe's own batch
    assert owned(at) == {"arch": "alexnet", "recipe": "seed"}
    at.sidebar.number_input(key="train-input-alexnet").set_value(200).run()
    at.sidebar.slider(key="train-width-alexnet").set_value(0.75).run()
    assert owned(at) == {"arch": "alexnet", "recipe": "seed", "size": "200", "width": "0.75"}
    at.sidebar.number_input(key="train-input-alexnet").set_value(163).run()         # back to the default
    assert owned(at) == {"arch": "alexnet", "recipe": "seed", "width": "0.75"}
    assert at.query_params["utm_source"] == "mail"

    arch = opened(ARCHITECTURE, {})
    arch.sidebar.number_input(key="size-lenet5").set_value(48).run()
    arch.sidebar.selectbox(key="architecture-lenet5-pooling").set_value("max").run()
    assert owned(arch, links.ARCHITECTURE_NAMES) == {"size": "48", "pooling": "max"}


def test_a_new_link_in_the_same_session_is_read_again():
    at = opened(TRAIN, {"epochs": "4"})
    at.query_params["epochs"] = "9"                     # another link opened in this tab, or the browser's Back
    no_exceptions(at.run())
    assert at.sidebar.number_input(key="train-epochs-lenet5").value == 9


def test_a_network_chosen_on_another_page_is_kept_without_a_link():
    at = opened(ARCHITECTURE, {"arch": "alexnet"})
    at.switch_page("pages/2_Data.py")
    no_exceptions(at.run())
    for name in links.ARCHITECTURE_NAMES:               # a link between pages carries no settings
        at.query_params.pop(name, None)
    at.session_state["architecture"] = "vgg19"          # as the Zoo's "Layer table" opens a network
    at.switch_page(ARCHITECTURE)
    no_exceptions(at.run())
    assert at.selectbox(key="architecture").value == "vgg19"
    assert owned(at, links.ARCHITECTURE_NAMES) == {"arch": "vgg19"}


def test_no_link_opens_the_pages_as_before():
    at = opened(TRAIN, {})
    defaults = lessons.train_defaults("lenet5")
    assert at.sidebar.number_input(key="train-epochs-lenet5").value == defaults.classroom.epochs
    assert at.sidebar.select_slider(key=f"train-batch-lenet5-{defaults.recipe}").value == defaults.batch_size
    assert owned(at) == {} and not warning(at)
    arch = opened(ARCHITECTURE, {})
    assert arch.metric[0].value == "61,706" and owned(arch, links.ARCHITECTURE_NAMES) == {} and not warning(arch)


def test_a_link_sets_widgets_without_streamlits_default_and_session_state_warning(monkeypatch):
    from streamlit.elements.lib import policies

    warned = []
    monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    monkeypatch.setattr(policies._LOGGER, "warning", lambda message, *args, **kwargs: warned.append(message % args))
    opened(TRAIN, ALEXNET_LINK)
    opened(TRAIN, {"arch": "vgg19", "init": "glorot", "norm": "batch"})
    opened(ARCHITECTURE, {"arch": "alexnet", "size": "170", "width": "0.5", "dropout": "0.3"})
    assert not [w for w in warned if "default value" in w], warned


def test_the_query_names_are_short_distinct_and_leave_the_workspace_its_own():
    for names in (links.TRAIN_NAMES, links.ARCHITECTURE_NAMES):
        assert len(set(names)) == len(names) and not {"ws", "view"} & set(names)


# --- in a real browser -------------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
def test_a_train_link_in_a_real_browser(tmp_path):
    """A link opens the Train page set as it says, in Chromium against `streamlit run`; nothing starts."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")
    from tests.test_browser import settle  # beside playwright's import: that module needs it

    caches = {"KERAS_HOME": str(tmp_path / "keras"), "CNNLAB_CACHE_DIR": str(tmp_path / "cnnlab")}
    with app_server(caches) as (url, _), playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        tab = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        tab.goto(f"{url}/Train?arch=alexnet&recipe=seed&size=163&epochs=abc")
        settle(tab)
        sidebar = tab.locator("[data-testid='stSidebar']")
        assert sidebar.get_by_label("Input size", exact=True).input_value() == "163"
        assert sidebar.get_by_label("Epochs", exact=True).input_value() == "3"        # the default for abc
        assert sidebar.get_by_role("combobox", name="Architecture", exact=True).input_value() == "AlexNet"
        assert sidebar.get_by_role("combobox", name="Recipe", exact=True).input_value() == "seed"
        assert "epochs='abc'" in tab.locator("[data-testid='stAlert']").filter(has_text="this link").inner_text()
        assert tab.get_by_text("press Start").count() == 1                           # nothing started
        assert tab.locator("[data-testid='stProgress']").count() == 0
        assert tab.get_by_role("button", name="Start", exact=True).is_enabled()
        time.sleep(1)
        query = urllib.parse.parse_qs(urllib.parse.urlparse(tab.url).query)
        assert query["arch"] == ["alexnet"] and query["recipe"] == ["seed"] and "epochs" not in query
        browser.close()
