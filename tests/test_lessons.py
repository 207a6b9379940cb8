"""Lessons: their presets come from the committed sweep, their claims read recorded runs right, the
command line runs one, and the Lessons page runs one and explains it."""

from __future__ import annotations

import json
import time

import pytest

from cnnlab import lessons
from cnnlab.architectures import get_architecture
from cnnlab.cli import main

LESSONS = lessons.list_lessons()
TEN = 10


def shares(largest: float, classes: int = TEN) -> list[float]:
    """Prediction shares with one class at `largest` and the rest spread evenly."""
    return [largest] + [(1 - largest) / (classes - 1)] * (classes - 1)


def test_the_lecture_questions_are_all_there():
    assert {"lenet-lecture", "lenet-1998", "alexnet", "vgg19", "depth-data", "transfer"} <= set(LESSONS)
    for name in LESSONS:
        lesson = lessons.get_lesson(name)
        assert len(lesson.runs) >= 2 and lesson.claim and lesson.candidates
        for run in lesson.runs:
            lesson.config(run, lesson.candidates[0]).resolved()  # every run is a valid training run
        for condition in lesson.claim:
            assert condition.run in {r.label for r in lesson.runs}
            for lang in ("en", "ko"):
                assert condition.text().in_language(lang)


@pytest.mark.parametrize("name", LESSONS)
def test_every_preset_is_in_the_committed_sweep_and_held_for_three_seeds(name):
    lesson = lessons.get_lesson(name)
    preset = lessons.preset(lesson)
    if not preset.tried:  # only a lesson that needs what the measuring machine lacked may be unmeasured
        assert lesson.needs_weights
        return
    assert preset.settings in [lessons.settled(c) for c in lesson.candidates]
    measured = {r["key"]: r for r in lessons.sweep()["runs"]}
    if preset.reproduced:
        assert preset.held == preset.tried >= lessons.SEEDS_NEEDED
        for seed in range(lessons.SEEDS_NEEDED):
            found = {run.label: measured[lessons.run_key(lesson.config(run, preset.settings, seed))]
                     for run in lesson.runs}
            assert lesson.check(found).held, f"seed {seed}"
        assert max(preset.costs.values()) <= lessons.RUN_BUDGET * (1 + lessons.NOISE)
        assert sum(preset.costs.values()) <= lessons.LESSON_BUDGET * (1 + lessons.NOISE)
    else:  # it was not for want of trying: every candidate was measured, and the lesson says so plainly
        assert preset.exhausted and (preset.held < preset.tried or not preset.within_budget)


def test_every_swept_run_says_what_it_cost_against_a_baseline_of_the_same_bench_run():
    sweep = lessons.sweep()
    assert sweep["runs"]
    for run in sweep["runs"]:
        assert run["baseline"] in sweep["baselines"] and 0 < run["cost"] and len(run["shares"]) == TEN
        assert abs(sum(run["shares"]) - 1) < 0.01


def test_a_recorded_collapse_is_found_and_a_learning_run_is_not_called_one():
    vgg = lessons.get_lesson("vgg19")
    preset = lessons.preset(vgg)
    measured = {r["key"]: r for r in lessons.sweep()["runs"]}
    recorded = {run.label: measured[lessons.run_key(vgg.config(run, preset.settings, 0))] for run in vgg.runs}
    verdict = vgg.check(recorded)
    assert verdict.held and max(recorded["seed-he"]["shares"]) >= 0.9  # one class for (nearly) every image
    # Both runs learning: the collapse the claim expects is not there, and the verdict says which part failed.
    learning = {"seed-he": recorded["stable-he"], "stable-he": recorded["stable-he"]}
    verdict = vgg.check(learning)
    failed = [c for c, _, ok in verdict.lines if not ok]
    assert not verdict.held and {c.measure for c in failed} == {"accuracy", "largest_share"}
    assert all(c.run == "seed-he" for c in failed)


def test_claims_compare_runs_in_points():
    lesson = lessons.get_lesson("lenet-1998")
    outcomes = {"paper-1998": {"test_accuracy": 0.80, "shares": shares(0.1)},
                "relu": {"test_accuracy": 0.90, "shares": shares(0.1)},
                "relu-max": {"test_accuracy": 0.895, "shares": shares(0.1)}}
    verdict = lesson.check(outcomes)
    assert verdict.held and [round(v, 3) for _, v, _ in verdict.lines] == [0.1, -0.005]
    outcomes["relu-max"]["test_accuracy"] = 0.85  # five points below average pooling
    assert not lesson.check(outcomes).held
    assert verdict.lines[0][0].shown(0.1) == "+10.0"
    assert "no more than 1.0 points below" in str(lesson.claim[1].text())


def test_the_train_page_starts_from_measured_presets():
    vgg = lessons.train_defaults("vgg19")
    preset = lessons.preset(lessons.get_lesson(vgg.lesson))
    assert vgg.reproduced and vgg.knobs == {"init": "he"} and vgg.recipe == "stable"  # the run that learnt
    assert vgg.classroom.epochs == preset.settings["epochs"] and vgg.classroom.input_size == 32
    lenet = lessons.train_defaults("lenet5")
    assert lenet.lesson == "lenet-lecture" and lenet.recipe == "seed"
    assert (lenet.classroom.epochs, lenet.classroom.sample, lenet.batch_size) == (10, 1.0, 128)  # the lecture's run
    # No lesson names transfer learning's default: the registry's classroom settings and the lecture's recipe.
    transfer = lessons.train_defaults("transfer")
    assert transfer.lesson is None and transfer.classroom == get_architecture("transfer").classroom


def test_collapse_advice_is_offered_only_where_it_was_measured_to_help():
    vgg = lessons.get_lesson("vgg19")
    collapsed = vgg.config(vgg.run("seed-he"), lessons.preset(vgg).settings)
    lesson, helping, preset = lessons.fix_for(collapsed)
    assert helping.recipe == "stable" and min(preset.accuracies[helping.label]) >= 0.3
    paper = lessons.get_lesson("lenet-1998")
    lesson, helping, _ = lessons.fix_for(paper.config(paper.run("paper-1998"), {"epochs": 3}))
    assert lesson is paper and helping.knobs["activation"] == "relu"  # measured: ReLU learnt where sigmoid did not
    lenet = lessons.get_lesson("lenet-lecture")
    assert lessons.fix_for(lenet.config(lenet.run("lecture"), {})) is None  # no lesson saw ReLU LeNet-5 collapse


def test_a_lesson_that_needs_weights_says_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty cache, and no network: the download fails
    from cnnlab import pretrained

    def offline(file, path):
        raise OSError("no network here")

    monkeypatch.setattr(pretrained, "_download", offline)
    problem = lessons.missing_weights(lessons.get_lesson("transfer"))
    assert problem is not None and "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in str(problem)
    assert lessons.missing_weights(lessons.get_lesson("vgg19")) is None
    code = main(["lesson", "transfer", "--out", str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()


def test_reference_runs_are_the_lectures_full_scale_runs():
    drawn = lessons.reference_runs(lessons.get_lesson("vgg19"))
    assert [(run.label, ref["recipe"]) for run, ref in drawn] == [("seed-he", "seed"), ("stable-he", "stable")]
    assert drawn[0][1]["test_accuracy"][-1] == pytest.approx(0.103) and len(drawn[1][1]["train_loss"]) == 10
    assert "H200" in lessons.references()["measured_on"]


def test_cli_lists_the_lessons(capsys):
    assert main(["lessons"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert list(listed) == LESSONS
    assert " reproduced (3/3 seeds)" in listed["vgg19"] and "not reproduced" not in listed["vgg19"]
    assert "not reproduced" in listed["alexnet"] and "not measured" in listed["transfer"]


def test_cli_runs_a_lesson_and_ends_with_one_json_line(tmp_path, capsys):
    out = tmp_path / "lesson"
    assert main(["lesson", "lenet-1998", "--out", str(out)]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["lesson"] == "lenet-1998" and isinstance(last["held"], bool) and "points" in last["claim"]
    assert set(last["runs"]) == {"paper-1998", "relu", "relu-max"}
    for label, run in last["runs"].items():
        assert 0 <= run["test_accuracy"] <= 1 and run["seconds"] > 0 and len(run["shares"]) == TEN
        assert (out / label / "bundle.zip").is_file()
    # ReLU learns faster than the 1998 network's sigmoids in every seed the sweep measured, and here too.
    assert last["runs"]["relu"]["test_accuracy"] > last["runs"]["paper-1998"]["test_accuracy"]


def chart_traces(at) -> list[dict]:
    return [trace for chart in at.get("plotly_chart") for trace in json.loads(chart.proto.spec)["data"]]


def test_lessons_page_runs_a_small_lesson_end_to_end():
    from tests.test_app import no_exceptions, page, runs_of

    at = no_exceptions(page("pages/9_Lessons.py").run())
    at.selectbox(key="lesson").set_value("lenet-1998").run()
    reference = [t for t in chart_traces(at) if "full scale (lecture's code, GPU)" in t.get("name", "")]
    assert reference and reference[0]["line"]["dash"] == "dash"  # drawn before anything runs, labelled
    assert any("H200" in c.value for c in at.caption)
    at.button(key="lesson-run").click().run()
    from app.resources import store
    runs = store().recall(at.session_state["workspace"], "lesson-runs/lenet-1998")
    assert set(runs) == {"paper-1998", "relu", "relu-max"}
    deadline = time.time() + 180
    while any(r.active for r in runs_of(at)) and time.time() < deadline:
        time.sleep(0.5)
    no_exceptions(at.run())
    verdict = [e.value for e in [*at.success, *at.warning]]
    assert any(v in ("The claim held.", "The claim did not hold this time.") for v in verdict)
    checked = " ".join(m.value for m in at.markdown)
    assert "measured" in checked and ("✅" in checked or "❌" in checked)
    assert [m.label for m in at.metric][:3] == ["Test accuracy, sigmoid + average pooling (1998)",
                                               "Test accuracy, ReLU + average pooling (the lecture)",
                                               "Test accuracy, ReLU + max pooling"]
    names = [t.get("name", "") for t in chart_traces(at)]
    assert all(any(name.startswith(label) for name in names)
               for label in ("sigmoid + average pooling (1998)", "ReLU + max pooling"))

    # Another learner opening the lesson sees the result the first one ran, without running it.
    other = no_exceptions(page("pages/9_Lessons.py").run())
    other.selectbox(key="lesson").set_value("lenet-1998").run()
    assert any("everyone here sees it" in c.value for c in other.caption)
    assert len(other.metric) >= 3


def test_the_train_page_opens_on_the_measured_vgg19_preset():
    from tests.test_app import no_exceptions, page

    at = no_exceptions(page("pages/3_Train.py").run())
    at.sidebar.selectbox(key="train-arch").set_value("vgg19").run()
    assert at.sidebar.number_input(key="train-input-vgg19").value == 32
    assert at.sidebar.number_input(key="train-epochs-vgg19").value == 8
    assert at.sidebar.selectbox(key="train-vgg19-init").value == "he"
    assert at.sidebar.selectbox(key="train-recipe-vgg19").value == "stable"
    assert any("VGG19: the lecture's rate collapses it" in c.value for c in at.sidebar.caption)
