"""Words on the page: the catalogue's texts in this browser session's language, and the lab's names,
numbers and errors as a learner reads them."""

from __future__ import annotations

import re

import streamlit as st

import cnnlab
from cnnlab import errors, i18n
from cnnlab.runner import BackgroundRun


def language() -> str:
    """The language of this browser session: the sidebar's choice once made, else the browser's
    locale (Korean for ko-*), else English."""
    chosen = st.session_state.get("language")
    if chosen in i18n.LANGUAGES:
        return chosen
    return i18n.language_of(st.context.locale)


def t(key: str, **values) -> str:
    """A text from the catalogue, in this browser session's language."""
    return i18n.text(key, language(), **values)


def say(thing) -> str:
    """An error or a run's note, in this browser session's language."""
    return errors.in_language(thing, language())


def plain(text: str) -> str:
    """A learner's own words (a class name, a file's name) shown as they are: Markdown in them draws nothing."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~:<>$])", r"\\\1", text)


def class_name(names, index: int) -> str:
    """A class's name in this session's language (CIFAR-10's are translated; digits stay digits)."""
    key = f"classes.{names[index]}"
    return t(key) if i18n.has(key) else names[index]


def class_names(names) -> list[str]:
    return [class_name(names, i) for i in range(len(names))]


def class_label(names, index: int) -> str:
    """'7' for MNIST's digits, '3 · cat' for CIFAR-10."""
    return names[index] if names[index] == str(index) else f"{index} · {class_name(names, index)}"


def class_text(names, index: int) -> str:
    """`class_label` inside Markdown (a caption, a sentence): a learner's own class name draws nothing."""
    return plain(class_label(names, index))


def arch_title(arch: cnnlab.Architecture | str) -> str:
    """An architecture's title in this session's language; the papers' names stay as they are."""
    arch = cnnlab.get_architecture(arch) if isinstance(arch, str) else arch
    if i18n.has(f"arch_title.{arch.name}"):
        return t(f"arch_title.{arch.name}")
    if arch.zoo:
        return t("arch_title.keras", name=arch.base({}).name)
    return arch.title


def run_label(run: BackgroundRun) -> str:
    c = run.config
    return t("runs.label", id=str(run.id), arch=c.model.arch, recipe=c.recipe, lr=f"{c.learning_rate:g}",
             epochs=c.epochs)


def duration(seconds: float) -> str:
    return i18n.duration(seconds, language())


def gigabytes(n: int) -> str:
    return f"{n / 2**30:.2f} GB"


SETTING_LABELS = {"input_size": "train.input_size", "width": "architecture.width", "sample": "train.sample",
                  "epochs": "train.epochs", "batch_size": "train.batch_size"}


def settings_text(settings: dict) -> str:
    """A run's settings as the Train page labels them: "Input size 32 · Width 0.25 · Epochs 8"."""
    return " · ".join(f"{t(SETTING_LABELS[key])} {value:g}" for key, value in settings.items()
                      if key in SETTING_LABELS and value is not None)
