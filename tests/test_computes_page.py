"""The How it computes page in the app: every layer of the learner's own trained LeNet-5, stepped through
in order, shows its arithmetic and agrees with the model, in both languages; the output-size tab explains
every layer and AlexNet's 224/227 case without a trained run."""

from __future__ import annotations

import pytest

from tests.test_app import no_exceptions, page, same_workspace, trained_session  # noqa: F401

PAGE = "pages/10_How_it_computes.py"


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_every_layer_of_the_learners_run_shows_its_arithmetic_and_agrees_with_the_model(trained_session, lang):  # noqa: F811
    def opened_at(step: int):
        at = same_workspace(trained_session, page(PAGE))
        at.session_state["language"], at.session_state["computes-step-lenet5"] = lang, step
        return no_exceptions(at.run())

    options = opened_at(0).selectbox(key="computes-step-lenet5").options
    assert len(options) == 10 and "c1_conv" in options[2] and "predictions" in options[-1]
    same = "같은 숫자" if lang == "ko" else "the same number"
    for i, option in enumerate(options):
        at = opened_at(i)
        assert not at.error, [e.value for e in at.error]
        checked = [s.value for s in at.success]
        if "prep_" in option:  # the preprocessing inside the model: nothing to compute
            continue
        assert checked, option
        if "predictions" in option:  # the softmax: its probabilities, as the Predict page has them
            assert any(("예측 페이지" if lang == "ko" else "the Predict page shows") in c for c in checked)
            assert len(at.dataframe[0].value) == 10
        else:
            assert all(same in c for c in checked), (option, checked)


def test_a_convolution_cell_moves_with_the_sliders_and_shows_its_output_size(trained_session):  # noqa: F811
    at = no_exceptions(same_workspace(trained_session, page(PAGE)).run())
    at.selectbox(key="computes-step-lenet5").select_index(2).run()   # c1_conv, after the padding and the scaling
    at.slider(key="computes-row-c1_conv").set_value(27).run()
    at.slider(key="computes-col-c1_conv").set_value(27).run()
    no_exceptions(at)
    assert any("rows 27 to 31, columns 27 to 31" in c.value for c in at.caption)  # the last 5x5 patch of 32x32
    assert any("⌊(32 + 0 − 5) / 1⌋ + 1" in m.value and "**28**" in m.value for m in at.markdown)
    at.selectbox(key="computes-step-lenet5").select_index(6).run()   # c5_conv: 5x5 on a 5x5 map
    assert any("in effect, a dense layer" in i.value for i in at.info)


def test_the_output_size_tab_works_without_a_run_and_settles_alexnets_224_and_227():
    at = no_exceptions(page(PAGE).run())
    assert "no trained model" in at.info[0].value  # the steps ask for a trained run; the sizes are there all the same
    at.selectbox(key="computes-size-arch").set_value("alexnet").run()
    at.number_input(key="computes-size-alexnet").set_value(224).run()
    table = at.dataframe[0].value
    conv1 = table[table.iloc[:, 0] == "conv1"].iloc[0]
    assert conv1.iloc[3] == "54x54x96" and "53.25" in conv1.iloc[4] and "**54**" in conv1.iloc[4]
    assert any("At 227 pixels they fit exactly, and the map is 55 wide" in w.value for w in at.warning)
    at.number_input(key="computes-size-alexnet").set_value(227).run()
    conv1 = at.dataframe[0].value.iloc[:, 3][list(at.dataframe[0].value.iloc[:, 0]).index("conv1")]
    assert conv1 == "55x55x96"
    at.slider(key="computes-calc-k").set_value(3).run()
    at.slider(key="computes-calc-s").set_value(4).run()
    assert any("skip pixels" in w.value for w in at.warning)   # a stride larger than the kernel
    at.slider(key="computes-calc-n").set_value(2).run()
    at.slider(key="computes-calc-k").set_value(5).run()
    assert not at.exception and any("5" in w.value for w in at.warning)  # a window larger than the input: told


@pytest.mark.parametrize("name, overrides, kinds", [
    ("alexnet", {"input_size": 163, "width": 0.125}, {"conv", "pool_max", "flatten", "dense", "dropout", "softmax"}),
    ("vgg19", {"input_size": 32, "width": 0.0625, "knobs": {"norm": "batch"}},
     {"conv", "batch_norm", "activation", "pool_max", "flatten", "dense", "softmax"}),
])
def test_the_lectures_deep_networks_step_through_colour_images_and_normalisation(name, overrides, kinds):
    """A learner's own AlexNet (stride 4, colour patches) and VGG19 with batch normalisation: every
    layer's step agrees with the model, in a workspace that holds the run as the app keeps it."""
    from app.resources import store
    from cnnlab import ModelConfig, TrainConfig, compute, load_dataset
    from cnnlab.training import train

    run = train(TrainConfig(ModelConfig(name, **overrides), epochs=1, batch_size=16, sample=0.01, seed=1),
                data=load_dataset("cifar10"))
    workspace = store().create_workspace()
    store().import_run(workspace, run, "a learner's run")
    steps = compute.steps(run.model)
    assert kinds <= {step.kind for step in steps}
    for i, step in enumerate(steps):
        at = page(PAGE)
        at.query_params["ws"] = workspace
        at.session_state[f"computes-step-{run.model.name}"] = i
        no_exceptions(at.run())
        assert not at.error, (step.layer, [e.value for e in at.error])
        if step.kind not in ("preprocessing", "dropout", "other"):
            assert at.success and all("the same number" in s.value or "Predict page" in s.value for s in at.success), \
                step.layer


def test_the_train_page_slides_through_how_the_filters_formed(trained_session):  # noqa: F811
    from tests.test_app import runs_of

    run = runs_of(trained_session)[-1]
    at = no_exceptions(same_workspace(trained_session, page("pages/3_Train.py")).run())
    when = at.select_slider(key=f"network-when-{run.id}")
    assert when.options == ["start", "epoch 1"] and when.value == 1  # the finished run's end, first
    assert at.selectbox(key=f"network-layer-{run.id}").options[:2] == ["c1_conv", "s2_pool"]
    when.set_value(0).run()
    assert no_exceptions(at).select_slider(key=f"network-when-{run.id}").value == 0  # back to the start
