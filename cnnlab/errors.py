"""Mistakes and limits a learner can meet, with their explanation in every language of the catalogues.

`str(error)` is the English text, so the command line and the Python API read as before; the app
shows `error.in_language(lang)`. The text is `errors.<key>` in the catalogues, filled with `values`;
a value that is itself a `Text` is put in the same language.
"""

from __future__ import annotations

from . import i18n


class Text:
    """A catalogue text not yet put into a language: `Text("errors.memory_later")`."""

    def __init__(self, key: str, **values):
        self.key, self.values = key, values

    def in_language(self, lang: str) -> str:
        return i18n.text(self.key, lang, **{name: _in(value, lang) for name, value in self.values.items()})

    def __str__(self) -> str:
        return self.in_language(i18n.FALLBACK)


class LabError(ValueError):
    def __init__(self, key: str, **values):
        self.text = Text(f"errors.{key}", **values)
        self.key, self.values = key, values
        super().__init__(str(self.text))

    def in_language(self, lang: str) -> str:
        return self.text.in_language(lang)


def in_language(thing, lang: str) -> str:
    """What to show a learner for an error or a note: its own language's text where it has one."""
    return thing.in_language(lang) if hasattr(thing, "in_language") else str(thing)


def _in(value, lang: str):
    return value.in_language(lang) if isinstance(value, (Text, LabError)) else value
