"""Every page under Streamlit's AppTest: choose options, press buttons, train, predict."""

from __future__ import annotations

import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

TIMEOUT = 60  # importing TensorFlow is slow


st.set_option("client.showErrorDetails", "full")  # the app hides tracebacks from learners, not from tests


def page(path: str) -> AppTest:
    """The app, opened on one page as a learner following a deep link would."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    if path != "streamlit_app.py":
        at.switch_page(path)
    return at


def no_exceptions(at: AppTest) -> AppTest:
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_home_shows_the_lineage():
    at = no_exceptions(page("streamlit_app.py").run())
    table = at.dataframe[0].value
    assert list(table["network"]) == ["LeNet-5", "AlexNet", "VGG19", "VGG19 (Keras Applications, no top)",
                                      "Transfer learning (frozen ImageNet base + new head)"]
    assert 61_706 in list(table["parameters"])
    assert all(layers > 0 for layers in table["weight_layers"])  # transfer learning's counted in its table, not 0


def test_architecture_page_table_follows_the_knobs():
    at = no_exceptions(page("pages/1_Architecture.py").run())
    assert at.metric[0].value == "61,706"
    at.selectbox(key="architecture-lenet5-pooling").set_value("max").run()
    assert "MaxPooling2D" in list(at.dataframe[0].value["type"])
    at.selectbox[0].set_value("vgg19").run()
    assert at.metric[0].value == "139,611,210"
    at.number_input(key="size-vgg19").set_value(16).run()
    assert not at.exception and at.warning and "at least 32" in at.warning[0].value


def test_data_page_shows_samples_steps_and_balance():
    at = no_exceptions(page("pages/2_Data.py").run())
    steps = at.dataframe[0].value
    assert list(steps["step"]) == ["raw images", "pad", "add a channel", "/255", "one-hot labels"]
    assert list(steps["shape"])[:3] == ["(60000, 28, 28)", "(60000, 32, 32)", "(60000, 32, 32, 1)"]
    at.selectbox[0].set_value("cifar10").run()
    assert "resize" in list(at.dataframe[0].value["step"])


def test_data_page_offline_full_source_points_to_the_bundled_sample(monkeypatch):
    import keras.src.datasets.mnist as keras_mnist

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras_mnist, "get_file", no_network)
    at = no_exceptions(page("pages/2_Data.py").run())
    at.selectbox[1].set_value("full").run()
    assert not at.exception and "bundled" in at.warning[0].value


def runs_of(at: AppTest) -> list:
    """The runs of the workspace an AppTest session has open, as its pages see them (the one training
    here live, the others from disk)."""
    from app.resources import store, training_pool

    token = at.session_state["workspace"] if "workspace" in at.session_state else None
    return [] if token is None else [training_pool().live(r.id) or r for r in store().runs(token)]


def same_workspace(opened: AppTest, other: AppTest) -> AppTest:
    """`other` opened on the link of `opened`'s workspace, as a second tab or a reload would."""
    other.query_params["ws"] = opened.session_state["workspace"]
    return other


def wait_for_run(at: AppTest, seconds: float = 120) -> AppTest:
    deadline = time.time() + seconds
    while time.time() < deadline:
        runs = runs_of(at)
        if runs and not runs[-1].active:
            return at.run()
        time.sleep(0.5)
    raise AssertionError("the run did not finish in time")


def test_train_lenet_for_an_epoch_then_predict():
    at = no_exceptions(page("pages/3_Train.py").run())
    assert at.metric[0].label == "Estimated time per epoch"
    at.sidebar.number_input[0].set_value(1)        # epochs
    at.sidebar.slider[0].set_value(0.05)           # sample fraction: 3,000 of the 60,000 digits
    at.sidebar.select_slider[0].set_value(32)
    at.button[0].click().run()                      # Start
    no_exceptions(wait_for_run(at))
    run = runs_of(at)[-1]
    assert run.status == "done" and len(run.epochs) == 1 and len(run.batches) == 94
    assert any(m.label == "Test accuracy" for m in at.metric)
    chart = [c for c in at.get("plotly_chart")]
    assert chart, "the curves are drawn"

    predict = same_workspace(at, page("pages/4_Predict.py"))  # the same link, in another tab
    no_exceptions(predict.run())
    assert "True label" in predict.markdown[0].value and "Predicted" in predict.markdown[0].value
    predict.number_input[0].set_value(5).run()
    from cnnlab import load_dataset
    label = int(load_dataset("mnist").sample(run.config.sample, seed=run.config.seed).y_test[5])  # its own sample
    assert predict.markdown[0].value.startswith(f"**True label:** {label}  \n")


def test_stop_keeps_the_partial_run():
    at = no_exceptions(page("pages/3_Train.py").run())
    at.sidebar.number_input[0].set_value(5)
    at.sidebar.select_slider[0].set_value(8)
    at.button[0].click().run()
    assert at.button[0].disabled and not at.button[1].disabled  # Start says at once that it cannot be pressed again
    run = runs_of(at)[-1]
    deadline = time.time() + 60
    while not run.batches and time.time() < deadline:
        time.sleep(0.2)
    at.button[1].click().run()                      # Stop
    no_exceptions(wait_for_run(at))
    assert run.status == "stopped" and run.trained and run.batches
    assert any("kept" in w.value for w in at.warning)


@pytest.mark.parametrize("path", ["pages/4_Predict.py", "pages/5_Evaluate.py", "pages/6_Inside.py",
                                  "pages/7_Your_image.py"])
def test_model_pages_without_a_model_offer_one_click(path):
    at = no_exceptions(page(path).run())
    assert "no trained model" in at.info[0].value
    assert "quick LeNet-5" in at.button[0].label


@pytest.fixture(scope="module")
def trained_session():
    """A workspace holding one finished LeNet run, as the Train page leaves it: an AppTest on its link."""
    at = page("pages/4_Predict.py").run()
    at.button[0].click().run()                      # the one-click quick LeNet, then the Train page
    return wait_for_run(at)


def test_evaluate_page_counts_every_test_image(trained_session):
    at = page("pages/5_Evaluate.py")
    same_workspace(trained_session, at)
    no_exceptions(at.run())
    assert at.metric[1].value == "500"  # the quick run's own test sample: a tenth of the 5,000
    assert len(at.get("plotly_chart")) == 2
    at.selectbox(key=f"true-{runs_of(trained_session)[-1].id}").set_value(3).run()
    at.selectbox(key=f"predicted-{runs_of(trained_session)[-1].id}").set_value(3).run()
    assert not at.exception and at.main.caption and "test image(s)" in at.main.caption[-1].value


def test_inside_page_draws_maps_filters_and_grad_cam(trained_session):
    at = page("pages/6_Inside.py")
    same_workspace(trained_session, at)
    no_exceptions(at.run())
    text = " ".join(m.value for m in at.markdown)
    for layer in ("c1_conv", "s2_pool", "c3_conv", "s4_pool", "c5_conv"):
        assert f"**{layer}**" in text
    assert "first convolution's 6 kernels" in text
    # the input, four layers of maps, the kernels, and the image / overlay / heat map of Grad-CAM; C5's maps are
    # 1x1, one value per channel, drawn as a bar each rather than as 120 flat squares
    assert len(at.get("image")) == 1 + 4 + 1 + 3
    assert "single pixel" in " ".join(c.value for c in at.caption) and len(at.get("plotly_chart")) == 1
    assert at.selectbox(key=f"cam-class-{runs_of(trained_session)[-1].id}").value is not None


def test_your_image_page_waits_for_a_drawing(trained_session):
    at = page("pages/7_Your_image.py")
    same_workspace(trained_session, at)
    no_exceptions(at.run())
    assert at.radio[0].options == ["Draw a digit", "Upload a file", "Take a photo"]
    assert "draw a digit first" in at.info[0].value


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def a_photo() -> bytes:
    import io

    from PIL import Image

    from cnnlab import load_dataset

    encoded = io.BytesIO()
    Image.fromarray(load_dataset("cifar10").x_test[3]).resize((160, 120)).save(encoded, format="PNG")
    return encoded.getvalue()


def test_zoo_page_counts_the_table_and_explains_missing_weights(monkeypatch, tmp_path):
    import urllib.error

    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr("urllib.request.urlopen", offline)
    at = no_exceptions(page("pages/8_Zoo.py").run())
    table = at.dataframe[0].value
    assert len(table) == 19 and table.set_index("model").loc["ResNet50", "params_m"] == 25.6
    assert set(table["params_here"]) == {"not counted yet"}          # not a column of None
    no_exceptions(button(at, "Count parameters and depth here").click().run())
    table = at.dataframe[0].value.set_index("model")
    assert table.loc["ResNet50", "params_here"] == 25_636_712 and table.loc["InceptionV3", "longest_path_here"] == 95
    assert "All 19 parameter counts agree" in at.success[0].value

    at.file_uploader[0].set_value(("cat.png", a_photo(), "image/png"))
    no_exceptions(at.run())
    assert "could not be downloaded" in at.warning[0].value and str(tmp_path) in at.warning[0].value
    assert any("works without the weights" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2                          # the charts still draw

    at.selectbox(key="zoo-open").set_value("keras-resnet50")
    no_exceptions(button(at, "Layer table").click().run())
    assert at.metric[0].value == "25,636,712"                         # the Architecture page, on ResNet50


def test_train_a_transfer_head_on_cached_features():
    at = no_exceptions(page("pages/3_Train.py").run())
    at.sidebar.selectbox(key="train-arch").set_value("transfer").run()
    at.sidebar.selectbox(key="train-transfer-base").set_value("mobilenetv2")
    at.sidebar.selectbox(key="train-transfer-weights").set_value("random")
    at.sidebar.number_input[0].set_value(1)        # epochs
    at.sidebar.slider[0].set_value(0.05)           # sample fraction: 250 images
    at.sidebar.number_input[2].set_value(32)       # input size
    no_exceptions(at.run())
    assert any("computes every image's features once" in c.value for c in at.caption)
    button(at, "Start").click().run()
    no_exceptions(wait_for_run(at))
    run = runs_of(at)[-1]
    assert run.status == "done" and len(run.epochs) == 1
    assert run.run.model.get_layer("head_dense").trainable and not run.run.model.get_layer("Conv1").trainable



def test_pages_explain_the_lecture():
    at = no_exceptions(page("pages/1_Architecture.py").run())
    assert at.expander[0].label.startswith("About LeNet-5")
    assert any("ZIP codes" in m.value for m in at.expander[0].markdown)
    at.selectbox(key="architecture").set_value("alexnet").run()
    texts = [m.value for m in at.expander[0].markdown]
    assert any("15.3%" in t for t in texts) and any("stayed near 10%" in t for t in texts)
    data = no_exceptions(page("pages/2_Data.py").run())
    texts = [m.value for m in data.expander[0].markdown]
    assert any("Padding MNIST to 32x32" in t for t in texts) and any("One-hot" in t for t in texts)


def rendered_texts(at: AppTest) -> list[str]:
    """Every text a learner reads on the page, apart from data (tables, charts, images)."""
    texts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "success", "error"):
        texts += [element.value for element in getattr(at, kind)]
    for kind in ("button", "selectbox", "number_input", "slider", "metric", "expander", "tabs", "toggle"):
        texts += [element.label for element in getattr(at, kind)]
    return texts + [link.proto.label for link in at.get("page_link")]


def from_the_catalogue(text: str, lang: str) -> bool:
    import re
    import string

    from cnnlab import i18n

    for template in i18n.catalogue(lang).values():
        pattern = "".join(re.escape(literal) + (".+?" if field else "")
                          for literal, field, _, _ in string.Formatter().parse(template))
        if re.fullmatch(pattern, text.strip(), flags=re.S) or text.strip() == template.strip():
            return True
    return False


ALL_PAGES = [path for path, _, _ in __import__("app.nav").nav.PAGES]
MODEL_PAGES = ["pages/4_Predict.py", "pages/5_Evaluate.py", "pages/6_Inside.py", "pages/7_Your_image.py",
               "pages/10_How_it_computes.py"]


def strays(at: AppTest, lang: str) -> list[str]:
    return [text for text in rendered_texts(at) if not from_the_catalogue(text, lang)]


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("path", ALL_PAGES)
def test_every_page_speaks_only_from_the_catalogue(path, lang):
    at = page(path)
    at.session_state["language"] = lang
    no_exceptions(at.run())
    assert not strays(at, lang)


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("path", MODEL_PAGES)
def test_pages_with_a_model_speak_only_from_the_catalogue(trained_session, path, lang):
    at = page(path)
    same_workspace(trained_session, at)
    at.session_state["language"] = lang
    no_exceptions(at.run())
    assert not strays(at, lang)


def test_korean_reaches_titles_navigation_charts_and_class_names():
    at = page("streamlit_app.py")
    at.session_state["language"] = "ko"
    no_exceptions(at.run())
    assert at.subheader[0].value == "LeNet에서 VGG까지" and "학습" in [link.proto.label for link in at.get("page_link")]
    data = page("pages/2_Data.py")
    data.session_state["language"] = "ko"
    no_exceptions(data.run())
    data.selectbox[0].set_value("cifar10").run()
    assert data.title[0].value == "데이터" and any("고양이" in m.value for m in data.markdown)
    assert "원본 이미지" in list(data.dataframe[0].value.iloc[:, 0])


def test_the_sidebar_switch_holds_for_the_session():
    at = no_exceptions(page("pages/3_Train.py").run())
    assert at.title[0].value == "Train"
    at.sidebar.selectbox(key="language_switch").set_value("ko").run()
    assert at.title[0].value == "학습" and at.session_state["language"] == "ko"
    at.switch_page("pages/1_Architecture.py")
    no_exceptions(at.run())
    assert at.title[0].value == "구조" and at.metric[0].label == "파라미터"


def test_the_catalogue_check_catches_a_string_written_into_a_page():
    at = AppTest.from_string('import streamlit as st\nst.title("CNN Lab")\nst.button("Start now")').run()
    assert [text for text in rendered_texts(at) if not from_the_catalogue(text, "en")] == ["Start now"]


def test_a_memory_refusal_offers_settings_the_page_can_apply(monkeypatch):
    import app.session
    import cnnlab.memory

    monkeypatch.setattr(cnnlab.memory, "available_bytes", lambda *args: int(1.2 * 2**30))  # a small, busy server
    started = []  # what Start would train: the check is the point here, not an AlexNet run on a CPU
    monkeypatch.setattr(app.session, "start_run", lambda config, **kwargs: started.append(config) or object())
    at = no_exceptions(page("pages/3_Train.py").run())
    at.sidebar.selectbox(key="train-arch").set_value("alexnet").run()
    at.sidebar.number_input(key="train-input-alexnet").set_value(224)
    at.sidebar.slider(key="train-width-alexnet").set_value(1.0)
    no_exceptions(at.run())
    button(at, "Start").click().run()
    assert any("needs about" in w.value for w in at.warning) and not started
    offers = [b for b in at.button if b.label.startswith("Use this")]
    assert offers, "the refusal offers no setting to apply"
    width_offer = next(b for b in offers if "width" in b.label)
    no_exceptions(width_offer.click().run())
    width = at.sidebar.slider(key="train-width-alexnet").value
    assert width < 1.0 and round(width / 0.05, 6).is_integer()       # on the slider's own grid
    assert f"width {width:g}" in width_offer.label
    button(at, "Start").click().run()
    assert not any("needs about" in w.value for w in at.warning), "the suggested setting was refused too"
    assert started and started[0].model.width == width


def test_the_streamlit_patch_still_replaces_what_streamlit_calls():
    """CNN Lab replaces a private Streamlit function (app/streamlit_patch.py). An upgrade that renames it, or
    stops calling it after a script run, would make the patch silently do nothing: this fails loudly instead."""
    import inspect

    from streamlit.runtime.scriptrunner import script_runner

    from app import streamlit_patch

    assert streamlit_patch.PATCHED in inspect.getsource(script_runner.ScriptRunner), \
        "Streamlit's script runner no longer calls the function CNN Lab replaces"
    assert getattr(script_runner, streamlit_patch.PATCHED) is streamlit_patch.close_figures  # applied on import

    original = getattr(script_runner, streamlit_patch.PATCHED)
    try:
        delattr(script_runner, streamlit_patch.PATCHED)
        with pytest.raises(streamlit_patch.StreamlitChanged, match="is gone from this Streamlit"):
            streamlit_patch.keep_keras_state_between_reruns()
    finally:
        setattr(script_runner, streamlit_patch.PATCHED, original)
