"""Settings links: the Train and Architecture pages keep their settings in the URL's query, so that one
link opens a page set as its sender had it: `/Train?arch=alexnet&recipe=seed&epochs=5`.

Before a page draws its widgets, `train()` or `architecture()` gives each of them its first value through
Session State (the widgets pass no value of their own): the page's default, or what the query says
where it names the setting. The query is read on the first run of the page in a session, and again
whenever it differs from what this session last wrote there (a link opened in this tab, the browser's
Back). Each value is checked against what its widget offers; one it does not offer (a slider's value
off the slider's steps included: it is refused, not rounded) is named in a warning in the learner's
language, and the default stands in for it. The link's other values still apply, and a setting it
leaves out keeps its default, or the value the learner gave it.

After the widgets are drawn, `Link.keep()` writes the settings back, so that the URL is always a link to
what the page shows. Only the settings that differ from the page's defaults for the chosen network (and,
for the batch, its recipe) are written: a link says what its sender changed and stays short, and a
learner who changes nothing keeps a bare URL. Only the names in `TRAIN_NAMES` and `ARCHITECTURE_NAMES`
are ever set or removed: the rest of the query (the workspace's) is left as it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import streamlit as st

import cnnlab
from cnnlab import checks, controls, lessons
from cnnlab.architectures import MAX_INPUT_SIZE
from cnnlab.errors import LabError, Text

from .text import arch_title, say, t
from .widgets import adjustable_keys, seed_widgets

CUSTOM = "custom"                          # the Train page's recipe with the learner's own learning rate
RECIPE_NAMES = (*cnnlab.RECIPES, CUSTOM)
EPOCHS = (1, 100)                          # what the Train page's number fields take
LEARNING_RATES = (1e-6, 1.0)
SEEDS = (0, 2**31 - 1)
ARCHITECTURE_WIDTHS = tuple(round(controls.STEP * i, 2) for i in range(1, 41))  # the Architecture page's: 0.05 ... 2


def _knob_names(architectures) -> tuple[str, ...]:
    return tuple(dict.fromkeys(knob.name for name in architectures for knob in cnnlab.get_architecture(name).knobs))


# The query's names each page reads and writes: its settings, and each knob under the knob's own name.
DATA_CHOICES = ("lecture", "own")          # the Train page's data: the network's dataset, or the learner's own classes
TRAIN_NAMES = ("data", "arch", "recipe", "epochs", "batch", "lr", "sample", "size", "width", "accum", "seed",
               *_knob_names(cnnlab.list_architectures(trainable=True)))
ARCHITECTURE_NAMES = ("arch", "size", "width", *_knob_names(cnnlab.list_architectures()))


class Refused(ValueError):
    """A link's value its widget does not offer, as a catalogue text."""

    def __init__(self, text: Text):
        self.text = text
        super().__init__(str(text))


@dataclass(frozen=True)
class Setting:
    """One setting a link carries: its name in the query, its widget's key and first value, and `read`,
    which turns the query's text into a value the widget offers (or raises LabError or Refused)."""

    name: str
    key: str
    default: Any
    read: Callable[[str], Any]
    offered: tuple | None = None  # options that follow another setting (accumulation steps, the batch)
    unused: Text | None = None    # why the link may not set it here: the widget is drawn, its value does not count


class Link:
    """One page's settings in its URL: put into the widgets' Session State before they are drawn
    (`train()`, `architecture()`), written back to the URL by `keep()` after."""

    def __init__(self, page: str, names: tuple[str, ...]):
        self.names, self.record = names, f"links-{page}"
        query = st.query_params
        self.asked = {name: query[name] for name in names if name in query}
        last = st.session_state.get(self.record)
        self.fresh = last is None or last["written"] != self.asked  # a link this session did not write
        self.problems: list[Text] = []
        self.settings: dict[str, Setting] = {}
        self.slot = None

    def take(self, setting: Setting) -> Any:
        """The setting's value for its widget: a fresh link's where it names it, else what the widget
        holds, else the default."""
        self.settings[setting.name] = setting
        text = self.asked.get(setting.name) if self.fresh else None
        if text is not None and setting.unused is not None:
            self.problems.append(_unused(setting.name, text, setting.unused))
        if text is not None and setting.unused is None:
            try:
                st.session_state[setting.key] = setting.read(text)
            except (LabError, Refused) as problem:
                self.problems.append(problem.text)
                st.session_state[setting.key] = setting.default
        else:
            seed_widgets({setting.key: setting.default},
                         offered={setting.key: setting.offered} if setting.offered else None)
        return st.session_state[setting.key]

    def taken(self, arch: cnnlab.Architecture) -> Link:
        """Every setting is taken: the link's names that no widget here has (another network's knob) are
        named too, and a place for the warning is kept where the page starts."""
        if self.fresh:
            self.problems += [_unused(name, text, Text("links.why_no_setting", title=arch_title(arch)))
                              for name, text in self.asked.items() if name not in self.settings]
        last = st.session_state.get(self.record)
        if self.problems or not self.fresh and last["problems"]:
            self.slot = st.empty()
        return self

    def key(self, name: str) -> str:
        """The widget key of a setting by its name in the query."""
        return self.settings[name].key

    def keep(self) -> None:
        """After the widgets: their values into the URL (those that differ from the defaults), and the
        warning for a link's refused values, until the learner changes a setting."""
        written = {}
        for name, setting in self.settings.items():
            value = _text(st.session_state[setting.key])
            if setting.unused is None and value != _text(setting.default):
                written[name] = value
        last = st.session_state.get(self.record)
        problems = self.problems if self.fresh else last["problems"] if written == last["written"] else []
        st.session_state[self.record] = {"written": written, "problems": problems}
        query = st.query_params
        changed = {name: value for name, value in written.items() if query.get_all(name) != [value]}
        if changed:
            query.update(changed)
        for name in self.names:
            if name in query and name not in written:
                del query[name]
        if self.slot is not None and problems:
            self.slot.warning(t("links.refused", problems="\n".join(f"- {_plain(say(p))}" for p in problems)))
        self.written = written

    def share(self) -> None:
        """This page's settings as a link to send, without the workspace's key that the address bar also carries."""
        address = (st.context.url or "").rstrip("/")
        with st.expander(t("links.share_header"), icon="🔗"):
            st.caption(t("links.share_note"))
            st.code(f"{address}?{urlencode(self.written)}" if self.written else address, language=None)


def recipe(name: str) -> cnnlab.Recipe:
    """A recipe of the Train page by name; custom starts from the lecture's."""
    return cnnlab.RECIPES["seed" if name == CUSTOM else name]


def train() -> Link:
    """The Train page's settings, from its URL where a link names them; before the sidebar is drawn."""
    link = Link("train", TRAIN_NAMES)
    own = link.take(Setting("data", "train-data", DATA_CHOICES[0], _one_of("data", DATA_CHOICES))) == "own"
    names = cnnlab.list_architectures(trainable=True, own=own or None)
    key = "own-" if own else ""  # the own classes' settings are kept apart from the lecture's
    arch = cnnlab.get_architecture(link.take(Setting("arch", f"train-arch{'-own' if own else ''}", names[0],
                                                     _one_of("arch", names))))
    defaults = lessons.train_defaults(arch.name, own=own)
    recipe_name = link.take(Setting("recipe", f"train-recipe-{key}{arch.name}", defaults.recipe,
                                    _one_of("recipe", RECIPE_NAMES)))
    chosen = recipe(recipe_name)
    batch = link.take(Setting("batch", f"train-batch-{key}{arch.name}-{recipe_name}",  # a recipe brings its own batch
                              defaults.batch_size if recipe_name == defaults.recipe else chosen.batch_size,
                              _one_of("batch", controls.BATCH_SIZES)))
    classroom, keys, steps = defaults.classroom, adjustable_keys(arch, own), controls.accumulation_steps(int(batch))
    for setting in (
            Setting("epochs", f"train-epochs-{key}{arch.name}", classroom.epochs, _whole("epochs", *EPOCHS)),
            Setting("lr", f"lr-{recipe_name}", chosen.learning_rate, _number("lr", *LEARNING_RATES),
                    unused=None if recipe_name == CUSTOM else Text("links.why_recipe_rate", recipe=recipe_name)),
            Setting("accum", keys["accumulation_steps"], 1, _one_of("accum", steps), offered=steps),
            Setting("sample", keys["sample"], classroom.sample, _on_grid("sample", controls.SAMPLES)),
            Setting("size", keys["input_size"], max(arch.min_input_size, classroom.input_size or arch.input_size),
                    _whole("size", arch.min_input_size, MAX_INPUT_SIZE)),
            Setting("width", keys["width"], classroom.width, _on_grid("width", controls.WIDTHS), unused=_fixed(arch)),
            *_knobs(arch, f"train-{key}".rstrip("-"), defaults.knobs),
            Setting("seed", "train-seed", SEEDS[0], _whole("seed", *SEEDS))):
        link.take(setting)
    return link.taken(arch)


def architecture() -> Link:
    """The Architecture page's settings, from its URL where a link names them; before its widgets are drawn.
    Its input size takes what its field takes, a size too small for the network included: the page explains
    the refusal itself."""
    link = Link("architecture", ARCHITECTURE_NAMES)
    names = cnnlab.list_architectures()
    arch = cnnlab.get_architecture(link.take(Setting("arch", "architecture", names[0], _one_of("arch", names))))
    for setting in (Setting("size", f"size-{arch.name}", arch.input_size, _whole("size", 1, MAX_INPUT_SIZE)),
                    Setting("width", f"width-{arch.name}", 1.0, _on_grid("width", ARCHITECTURE_WIDTHS),
                            unused=_fixed(arch)),
                    *_knobs(arch, "architecture", {})):
        link.take(setting)
    return link.taken(arch)


def knobs(arch: cnnlab.Architecture, link: Link) -> dict:
    """A widget per knob of `arch`, in the sidebar section the page opened, holding the value `link`
    gave it; their values by name."""
    values = {}
    for knob in arch.knobs:
        label, key = t(f"knobs.{knob.name}.label"), link.key(knob.name)
        help_text = t(f"knobs.{knob.name}.{'keras' if arch.zoo else arch.name}")
        if knob.choices:
            values[knob.name] = st.selectbox(label, knob.choices, help=help_text, key=key)
        elif knob.whole:
            values[knob.name] = st.number_input(label, int(knob.range[0]), int(knob.range[1]), help=help_text,
                                                key=key)
        else:
            values[knob.name] = st.number_input(label, float(knob.range[0]), float(knob.range[1]), help=help_text,
                                                key=key, format="%g")
    return values


def _knobs(arch: cnnlab.Architecture, prefix: str, defaults: dict) -> list[Setting]:
    """A setting per knob, named after it (`pooling=max`), its widget keyed `<prefix>-<network>-<knob>`."""
    settings = []
    for knob in arch.knobs:
        default = defaults.get(knob.name, knob.default)
        settings.append(Setting(knob.name, f"{prefix}-{arch.name}-{knob.name}",
                                default if knob.choices else int(default) if knob.whole else float(default),
                                _one_of(knob.name, knob.choices) if knob.choices else _checked(knob.check)))
    return settings


def _fixed(arch: cnnlab.Architecture) -> Text | None:
    return Text("links.why_fixed_width", title=arch_title(arch)) if arch.fixed_width else None


def _value(text: str):
    """The query's text as a number where it reads as one, else as it is (and a check says what it is not)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _one_of(name: str, choices) -> Callable[[str], Any]:
    choices = tuple(choices)
    words = all(isinstance(choice, str) for choice in choices)
    return lambda text: choices[choices.index(checks.choice(text if words else _value(text), name, choices))]


def _whole(name: str, low: int, high: int) -> Callable[[str], int]:
    return lambda text: checks.whole(_value(text), name, low, high)


def _number(name: str, low: float, high: float) -> Callable[[str], float]:
    return lambda text: checks.number(_value(text), name, low, high)


def _checked(check: Callable[[Any], Any]) -> Callable[[str], Any]:
    return lambda text: check(_value(text))


def _on_grid(name: str, grid: tuple[float, ...]) -> Callable[[str], float]:
    """A slider's value: in its range, and on one of its steps (refused, not rounded, when between two)."""
    def read(text: str) -> float:
        value = checks.number(_value(text), name, grid[0], grid[-1])
        on_step = next((step for step in grid if math.isclose(step, value, abs_tol=1e-9)), None)
        if on_step is None:
            raise Refused(Text("links.off_step", name=name, step=f"{controls.STEP:g}", low=f"{grid[0]:g}",
                               high=f"{grid[-1]:g}", value=checks.shown(value)))
        return on_step
    return read


def _unused(name: str, text: str, why: Text) -> Text:
    return Text("links.unused", name=name, value=checks.shown(_value(text)), why=why)


def _text(value) -> str:
    """A value as the query writes it: 0.25, 0.0001, 128, max."""
    return f"{value:.12g}" if isinstance(value, float) else str(value)


def _plain(text: str) -> str:
    """A text quoting a link's values, with what Markdown would make a link, an image or HTML of escaped:
    a crafted link cannot draw a link of its own on the page."""
    return re.sub(r"[\\\[\]<>@]|:(?=/)|(?<=www)\.", lambda found: "\\" + found.group(), text, flags=re.IGNORECASE)
