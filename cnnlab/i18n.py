"""Texts in English and Korean: one catalogue per language (`locales/en.toml`, `locales/ko.toml`).

Both catalogues hold the same keys with the same `{placeholders}`; a key missing from one language
falls back to English. Numbers, durations and dates are formatted for the language chosen.
"""

from __future__ import annotations

import datetime
import string
import tomllib
from functools import cache
from pathlib import Path

LANGUAGES = {"en": "English", "ko": "한국어"}
FALLBACK = "en"
_LOCALES = Path(__file__).parent / "locales"


def language_of(locale: str | None) -> str:
    """The catalogue for a browser locale such as "ko-KR" or "en-GB"; English for anything else."""
    primary = (locale or "").replace("_", "-").split("-")[0].lower()
    return primary if primary in LANGUAGES else FALLBACK


class UnknownLanguage(ValueError):
    """A language with no catalogue, said in every language that has one (this module renders the
    lab's texts, so its one refusal is its own rather than an errors.LabError, which renders here)."""

    def __init__(self, lang):
        self.values = {"language": repr(lang)[:60], "choices": ", ".join(LANGUAGES)}
        super().__init__(self.in_language(FALLBACK))

    def in_language(self, lang: str) -> str:
        return text("errors.i18n.unknown_language", lang, **self.values)


@cache
def catalogue(lang: str) -> dict[str, str]:
    """Every text of one language by its dotted key ("explain.lenet5", ...)."""
    if lang not in LANGUAGES:
        raise UnknownLanguage(lang)
    with open(_LOCALES / f"{lang}.toml", "rb") as file:
        return dict(_flatten(tomllib.load(file)))


def text(key: str, lang: str = FALLBACK, **values) -> str:
    """The text for `key` in `lang`, its placeholders filled; an int is written grouped by thousands (1,000)."""
    template = catalogue(lang).get(key)
    if template is None:
        template = catalogue(FALLBACK).get(key)
    if template is None:
        raise KeyError(f"No text {key!r} in the catalogues.")
    return template.format(**{name: _formatted(value) for name, value in values.items()})


def has(key: str) -> bool:
    return key in catalogue(FALLBACK)


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def number(value: float, digits: int = 0) -> str:
    """1,234,567 in every language (Korean groups digits by thousands too); `digits` decimals."""
    return f"{value:,.{digits}f}"


def duration(seconds: float, lang: str = FALLBACK) -> str:
    """"2 min 05 s" / "2분 05초"; "under 1 s" / "1초 미만" below a second."""
    if seconds < 1:
        return text("units.under_a_second", lang)
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return text("units.hours_minutes", lang, hours=hours, minutes=f"{minutes:02d}")
    if minutes:
        return text("units.minutes_seconds", lang, minutes=minutes, seconds=f"{seconds:02d}")
    return text("units.seconds", lang, seconds=seconds)


def date(day: datetime.date, lang: str = FALLBACK) -> str:
    """"28 November 2026" / "2026년 11월 28일"."""
    month = text(f"units.month_{day.month}", lang)
    return text("units.date", lang, day=str(day.day), month=month, year=str(day.year))


def _formatted(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return number(value) if isinstance(value, int) else value


def _flatten(table: dict, prefix: str = ""):
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value
