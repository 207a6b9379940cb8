"""The catalogues: the same keys and placeholders in both languages, the lecture's explanations in
each, and numbers, durations and dates written the way each language writes them."""

from __future__ import annotations

import ast
import datetime
from pathlib import Path

import pytest

from cnnlab import i18n

PACKAGE = Path(i18n.__file__).parent

EXPLAINED = ("lenet5", "alexnet", "vgg19", "imagenet", "learning_rate", "preprocessing.pad", "preprocessing.resize",
             "preprocessing.rescale", "preprocessing.labels", "preprocessing.sample")


def test_both_catalogues_have_the_same_keys_and_placeholders():
    english, korean = i18n.catalogue("en"), i18n.catalogue("ko")
    assert set(english) == set(korean), set(english) ^ set(korean)
    for key, template in english.items():
        assert i18n.placeholders(template) == i18n.placeholders(korean[key]), key


@pytest.mark.parametrize("topic", EXPLAINED)
def test_every_lecture_explanation_exists_in_both_languages(topic):
    english, korean = i18n.text(f"explain.{topic}", "en"), i18n.text(f"explain.{topic}", "ko")
    assert len(english) > 150 and len(korean) > 80 and english != korean
    assert any("\uac00" <= ch <= "\ud7a3" for ch in korean), "the Korean text is written in Hangul"


def test_the_explanations_carry_the_lectures_numbers():
    for lang in ("en", "ko"):
        assert "1998" in i18n.text("explain.lenet5", lang)
        assert all(n in i18n.text("explain.alexnet", lang) for n in ("15.3%", "10.8", "60%"))
        assert all(n in i18n.text("explain.vgg19", lang) for n in ("3x3", "71%", "2014"))
        assert all(n in i18n.text("explain.imagenet", lang) for n in ("1,000", "50,000"))
        assert "0.0001" in i18n.text("explain.learning_rate", lang)


def test_browser_locale_picks_the_catalogue_and_english_is_the_fallback():
    assert i18n.language_of("ko-KR") == i18n.language_of("ko") == "ko"
    assert i18n.language_of("en-GB") == i18n.language_of("fr-FR") == i18n.language_of(None) == "en"
    assert i18n.text("units.seconds", "en", seconds=5) == "5 s"
    with pytest.raises(ValueError, match="Unknown language"):
        i18n.catalogue("fr")
    with pytest.raises(KeyError, match="no.such.key"):
        i18n.text("no.such.key")


def test_numbers_durations_and_dates_in_each_language():
    assert i18n.number(1234567) == "1,234,567" and i18n.number(1234.5, 1) == "1,234.5"
    # Korean groups digits by thousands too, so a number reads the same in both languages
    assert i18n.text("units.seconds", "ko", seconds=1234) == "1,234초"
    assert i18n.text("units.seconds", "en", seconds=1234) == "1,234 s"
    assert i18n.duration(125, "en") == "2 min 05 s" and i18n.duration(125, "ko") == "2분 05초"
    assert i18n.duration(3725, "ko") == "1시간 02분" and i18n.duration(0.4, "ko") == "1초 미만"
    day = datetime.date(2026, 11, 28)
    assert i18n.date(day, "en") == "28 November 2026" and i18n.date(day, "ko") == "2026년 11월 28일"


def test_a_learners_mistake_reads_in_either_language():
    from cnnlab import layer_table
    from cnnlab.errors import in_language

    with pytest.raises(ValueError) as error:
        layer_table("alexnet", input_size=100)
    assert str(error.value).startswith("AlexNet cannot take 100x100 images") and "at least 163" in str(error.value)
    korean = in_language(error.value, "ko")
    assert "100x100" in korean and "163 이상" in korean and "conv5" in korean


def test_nested_texts_follow_the_language(monkeypatch):
    from cnnlab import memory
    from cnnlab.errors import Text, in_language

    monkeypatch.setattr(memory, "available_bytes", lambda: 2**30)
    with pytest.raises(ValueError) as error:
        memory.require(3 * 2**30, Text("errors.what_run"), Text("errors.run_instead"))
    assert str(error.value).startswith("This run needs about 3.0 GB of memory")
    assert in_language(error.value, "ko").startswith("이 실행에는 약 3.0 GB의 메모리가 필요한데")


def test_charts_label_their_axes_in_the_language():
    import numpy as np

    from cnnlab.charts import class_probabilities, training_curves

    assert class_probabilities(np.array([0.3, 0.7]), ["a", "b"], lang="ko").layout.yaxis.title.text == "확률"
    assert class_probabilities(np.array([0.3, 0.7]), ["a", "b"]).layout.yaxis.title.text == "probability"
    titles = [a.text for a in training_curves([], lang="ko").layout.annotations]
    assert titles == ["정확도", "손실"]


def test_charts_hover_in_the_language():
    import numpy as np

    from cnnlab.charts import confusion_heatmap, zoo_scatter

    confusion = np.eye(2, dtype=int)
    korean, english = (confusion_heatmap(confusion, ["a", "b"], lang).data[0].hovertemplate for lang in ("ko", "en"))
    assert korean.startswith("실제 %{y}, 예측 %{x}: %{z}") and english.startswith("true %{y}, predicted %{x}: %{z}")
    rows = [{"model": "m", "params_m": 3.5, "top1": 70.0}]
    assert "top-1 정확도: %{y}%" in zoo_scatter(rows, "params_m", "매개변수", lang="ko").data[0].hovertemplate
    assert "<br>parameters: %{x}<br>top-1: %{y}%" in zoo_scatter(rows, "params_m", "parameters").data[0].hovertemplate


def test_every_registered_thing_a_learner_reads_has_its_texts():
    from cnnlab import ARCHITECTURES, DATASETS, RECIPES

    for arch in ARCHITECTURES.values():
        for knob in arch.knobs:
            assert i18n.has(f"knobs.{knob.name}.label"), knob.name
            assert i18n.has(f"knobs.{knob.name}.{'keras' if arch.application else arch.name}"), (arch.name, knob.name)
        for topic in arch.explained_by:
            assert i18n.has(f"explain.{topic}"), (arch.name, topic)
    assert all(i18n.has(f"recipes.{name}") for name in RECIPES)
    for spec in DATASETS.values():
        assert i18n.has(f"datasets.{spec.name}.title") and i18n.has(f"datasets.{spec.name}.credit")
        assert all(name.isdigit() or i18n.has(f"classes.{name}") for name in spec.class_names)


# --- every catalogue key cnnlab's source names exists, with the values its text needs --------------------------

def catalogue_uses(sources: dict[str, str]) -> list[tuple[str, int, str, set[str], bool]]:
    """(file, line, key, keyword names, whether **values passes more) for every literal catalogue key in
    `sources` (file name -> Python source): LabError("key", ...) and the LabError subclasses that keep its
    signature, super().__init__("key", ...) inside those that do not, Text("section.key", ...),
    i18n.text("section.key", ...), and charts' _t("key", ...)."""
    trees = {name: ast.parse(source, name) for name, source in sources.items()}
    classes = {node.name: ([_name(base) for base in node.bases],
                           any(isinstance(item, ast.FunctionDef) and item.name == "__init__" for item in node.body))
               for tree in trees.values() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    errors = {"LabError"}
    while grown := {name for name, (bases, _) in classes.items() if errors & set(bases)} - errors:
        errors |= grown
    keeps_signature = {name for name in errors if name == "LabError" or not classes[name][1]}
    prefixes = {"Text": "", "text": ""} | dict.fromkeys(keeps_signature, "errors.")
    uses = []

    def visit(node, file: str, error_class: bool):
        for child in ast.iter_child_nodes(node):
            inside = error_class if not isinstance(child, ast.ClassDef) else child.name in errors
            if isinstance(child, ast.Call) and child.args:
                name, prefix = _name(child.func), None
                if name in prefixes:
                    prefix = prefixes[name]
                elif name == "_t" and file.endswith("charts.py"):
                    prefix = "charts."
                elif name == "__init__" and error_class and isinstance(child.func.value, ast.Call) \
                        and _name(child.func.value.func) == "super":
                    prefix = "errors."
                first = child.args[0]
                for option in [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]:
                    if prefix is not None and isinstance(option, ast.Constant) and isinstance(option.value, str):
                        names = {keyword.arg for keyword in child.keywords if keyword.arg}
                        more = any(keyword.arg is None for keyword in child.keywords)
                        uses.append((file, child.lineno, prefix + option.value, names, more))
            visit(child, file, inside)

    for file, tree in trees.items():
        visit(tree, file, False)
    return uses


def _name(node) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def catalogue_problems(uses) -> list[str]:
    problems = [f"{file}:{line}: {key} is given a value named key or lang, which LabError, Text and i18n.text "
                "take themselves (a TypeError when it is raised)"
                for file, line, key, names, _ in uses if names & {"key", "lang"}]
    for lang in i18n.LANGUAGES:
        texts = i18n.catalogue(lang)
        for file, line, key, names, more in uses:
            if key not in texts:
                problems.append(f"{file}:{line}: {key} is not in {lang}.toml")
            elif not (names <= i18n.placeholders(texts[key]) if more else names == i18n.placeholders(texts[key])):
                problems.append(f"{file}:{line}: {key} is given {sorted(names)}; its {lang} text takes "
                                f"{sorted(i18n.placeholders(texts[key]))}")
    return problems


def test_every_key_the_source_names_is_in_both_catalogues_with_its_placeholders():
    sources = {str(path.relative_to(PACKAGE)): path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py")}
    uses = catalogue_uses(sources)
    assert len(uses) > 150, "the scan finds the package's refusals"
    assert catalogue_problems(uses) == []


def test_the_key_check_catches_a_missing_key_and_wrong_values(monkeypatch):
    source = """
class Refused(LabError):
    pass
class Counted(LabError):
    def __init__(self, n):
        super().__init__("gone_from_korean", n=n)
raise LabError("no_digit", extra=1)
raise Refused("image_empty" if x else "no_such_key", name="photo.png")
raise Text("errors.image_empty", name=1, **more)
"""
    english, korean = dict(i18n.catalogue("en")), dict(i18n.catalogue("ko"))
    english["errors.gone_from_korean"] = "{n} refusals"
    monkeypatch.setattr(i18n, "catalogue", lambda lang: {"en": english, "ko": korean}[lang])
    problems = catalogue_problems(catalogue_uses({"new.py": source}))
    assert any("gone_from_korean is not in ko.toml" in p for p in problems)
    assert not any("gone_from_korean is not in en.toml" in p for p in problems)
    assert any("errors.no_digit is given ['extra']" in p for p in problems)
    assert any("no_such_key is not in en.toml" in p for p in problems)
    assert not any("image_empty" in p for p in problems)  # the right values, and **more may carry the rest
