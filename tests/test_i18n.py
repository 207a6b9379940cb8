"""The catalogues: the same keys and placeholders in both languages, the lecture's explanations in
each, and numbers, durations and dates written the way each language writes them."""

from __future__ import annotations

import datetime

import pytest

from cnnlab import i18n

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
    assert i18n.number(1234567, "ko") == i18n.number(1234567, "en") == "1,234,567"
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
