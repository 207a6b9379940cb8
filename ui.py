"""What the pages share: server-wide resources and the learner's own runs in Session State.

Read-only things (datasets, the training pool) are created once per server; anything a learner
changes (models, runs) lives in that learner's session only.
"""

from __future__ import annotations

import functools

import streamlit as st

import cnnlab
import cnnlab.charts
import cnnlab.errors
import cnnlab.i18n
import cnnlab.images
import cnnlab.zoo
from cnnlab.classroom import classroom_settings
from cnnlab.runner import BackgroundRun, RunStatus, TrainingPool


def _keep_keras_state_between_reruns() -> None:
    """Stop Streamlit from calling keras.backend.clear_session() after every script run.

    Streamlit does that (script_runner._clean_problem_modules) to tidy up after apps that build
    models in the script. Here models train on background threads while the page redraws every
    second: each clear_session reset Keras's global state under a live run and forced a full
    garbage collection, which slowed LeNet's training more than tenfold. Closing matplotlib's
    figures, the other half of that clean-up, is kept.
    """
    from streamlit.runtime.scriptrunner import script_runner

    def close_figures() -> None:
        import sys

        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")

    script_runner._clean_problem_modules = close_figures


_keep_keras_state_between_reruns()

PAGES = (("streamlit_app.py", "home", "🏠"), ("pages/1_Architecture.py", "architecture", "🧱"),
         ("pages/2_Data.py", "data", "🖼️"), ("pages/3_Train.py", "train", "📈"), ("pages/4_Predict.py", "predict", "🔍"),
         ("pages/5_Evaluate.py", "evaluate", "🧮"), ("pages/6_Inside.py", "inside", "🔬"),
         ("pages/7_Your_image.py", "your_image", "✏️"), ("pages/8_Zoo.py", "zoo", "🦒"))


def page(key: str) -> None:
    """Every page starts here: its browser title and icon, and the lab's navigation in the sidebar.

    The pages/ folder gives each page its deep link (/Train, /Predict, ...); the navigation is
    drawn here so that the home page is called Home rather than after its file, in the learner's language.
    """
    icon = next(symbol for _, name, symbol in PAGES if name == key)
    st.set_page_config(page_title=f"{t(f'nav.{key}')} · CNN Lab" if key != "home" else "CNN Lab", page_icon=icon,
                       layout="wide")
    with st.sidebar:
        st.markdown(t("app.sidebar"))
        for target, name, symbol in PAGES:
            st.page_link(target, label=t(f"nav.{name}"), icon=symbol)
        _language_switch()
        _run_status()
        st.divider()


def dataset(name: str, source: str = "bundled") -> cnnlab.Dataset:
    """Shared by every session, so its arrays are made read-only: no page can change them for others.
    (A spinner only appears when loading takes longer than half a second: the first time.)"""
    with st.spinner(t("app.loading_dataset")):
        return _dataset(name, source)


@st.cache_resource(show_spinner=False)
def _dataset(name: str, source: str) -> cnnlab.Dataset:
    data = cnnlab.load_dataset(name, source)
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        array.setflags(write=False)
    return data


@st.cache_resource
def training_pool() -> TrainingPool:
    """The server's training slots, set in .streamlit/classroom.toml (or the file CNNLAB_CLASSROOM names)."""
    return TrainingPool(classroom_settings())


def _run_status() -> None:
    """The learner's active run, in the sidebar of every page. Redrawn every few seconds, it also
    tells the server that this browser tab is still open: a run whose tab has gone is stopped."""
    run = active_run()
    if run is None:
        return

    @st.fragment(run_every=HEARTBEAT_SECONDS)
    def status():
        if not run.active:
            st.rerun()  # the whole page: a finished run's model appears where it was awaited
        run.touch()
        if run.status == RunStatus.QUEUED:
            place = training_pool().place_in_line(run)
            state = t("runs.sidebar_queued", place=place) if place else t("runs.sidebar_preparing")
        else:
            state = (t("runs.sidebar_training", percent=f"{run.progress.fraction:.0%}") if run.progress
                     else t("runs.sidebar_preparing"))
        st.caption(t("runs.sidebar", run=f"#{run.id}", status=state))

    status()


# How often a watching tab redraws its run. Every watching tab reruns its fragment on the server and
# redraws its chart in the browser (often a phone): a place in line changes slowly; two seconds
# keep a training run's curves live at half the cost of one (bench/class_load.py).
LIVE_EVERY_SECONDS = {RunStatus.QUEUED: 5.0, RunStatus.RUNNING: 2.0}
LIVE_POINTS = 240  # per curve: a phone's chart is about 350 pixels wide, and draws the same line


def live_curves(run: BackgroundRun):
    """The live chart of a run, built again only when the run has moved on since this tab last drew it."""
    key = (run.id, len(run.batches), len(run.epochs), language())
    drawn = st.session_state.get("live-figure")
    if drawn is None or drawn[0] != key:
        figure = cnnlab.charts.training_curves([(f"#{run.id}", run.batches, run.epochs)], lang=language(),
                                               points=LIVE_POINTS)
        drawn = st.session_state["live-figure"] = (key, figure)
    return drawn[1]


IMAGE_UPLOAD_MB = cnnlab.images.MAX_BYTES // 2**20  # photos and digits; run bundles may be larger (classroom.toml)
HEARTBEAT_SECONDS = 5  # far below any sensible abandoned_after_seconds, even in a throttled background tab


def language() -> str:
    """The language of this browser session: the sidebar's choice once made, else the browser's
    locale (Korean for ko-*), else English."""
    chosen = st.session_state.get("language")
    if chosen in cnnlab.i18n.LANGUAGES:
        return chosen
    return cnnlab.i18n.language_of(st.context.locale)


def _language_switch() -> None:
    """The sidebar's language choice; it holds for the rest of this browser session, on every page."""
    languages = list(cnnlab.i18n.LANGUAGES)

    def keep():
        st.session_state["language"] = st.session_state["language_switch"]

    st.selectbox(t("app.language"), languages, index=languages.index(language()), key="language_switch",
                 format_func=cnnlab.i18n.LANGUAGES.get, on_change=keep)


def t(key: str, **values) -> str:
    """A text from the catalogue, in this browser session's language."""
    return cnnlab.i18n.text(key, language(), **values)


def class_name(names, index: int) -> str:
    """A class's name in this session's language (CIFAR-10's are translated; digits stay digits)."""
    key = f"classes.{names[index]}"
    return t(key) if cnnlab.i18n.has(key) else names[index]


def class_names(names) -> list[str]:
    return [class_name(names, i) for i in range(len(names))]


def arch_title(arch: cnnlab.Architecture) -> str:
    """An architecture's title in this session's language; the papers' names stay as they are."""
    if cnnlab.i18n.has(f"arch_title.{arch.name}"):
        return t(f"arch_title.{arch.name}")
    if arch.application:
        return t("arch_title.keras", name=cnnlab.zoo.APPLICATIONS[arch.application].name)
    return arch.title


def say(thing) -> str:
    """An error or a run's note, in this browser session's language."""
    return cnnlab.errors.in_language(thing, language())


def knob_inputs(arch: cnnlab.Architecture, key: str) -> dict:
    """A widget per architecture knob, in the sidebar section the page opened; their values by name."""
    knobs = {}
    for knob in arch.knobs:
        widget_key = f"{key}-{arch.name}-{knob.name}"
        label = t(f"knobs.{knob.name}.label")
        help_text = t(f"knobs.{knob.name}.{'keras' if arch.application else arch.name}")
        if knob.choices:
            knobs[knob.name] = st.selectbox(label, knob.choices, index=knob.choices.index(knob.default),
                                            help=help_text, key=widget_key)
        else:
            knobs[knob.name] = st.number_input(label, min_value=float(knob.range[0]), max_value=float(knob.range[1]),
                                               value=float(knob.default), help=help_text, key=widget_key, format="%g")
    return knobs


def adjustable_keys(arch: cnnlab.Architecture) -> dict[str, str]:
    """The Train page's widget keys of the settings a memory refusal may suggest changing
    (`cost.Suggestion.changes`), per architecture where their defaults differ."""
    return {"input_size": f"train-input-{arch.name}", "width": f"train-width-{arch.name}",
            "sample": f"train-sample-{arch.name}", "accumulation_steps": "train-accumulation"}


def seed_widgets(defaults: dict, offered: dict | None = None) -> None:
    """Give widgets their first values through Session State, so that a button can set them later
    without Streamlit's warning; a value no longer offered (a batch that changed) goes back to its default."""
    for key, value in defaults.items():
        if key not in st.session_state or key in (offered or {}) and st.session_state[key] not in offered[key]:
            st.session_state[key] = value


def offer_suggestions(problem, arch: cnnlab.Architecture) -> None:
    """A "Use this" button for each setting a memory refusal says would fit (cost.Suggestion)."""
    for i, suggestion in enumerate(getattr(problem, "suggestions", [])):
        st.button(t("train.use_this", option=say(suggestion.text)), key=f"use-{i}", on_click=apply,
                  args=(adjustable_keys(arch), suggestion.changes))


def apply(keys: dict[str, str], changes: dict) -> None:
    """A suggestion's "use this": its settings into the widgets, before the page draws them again."""
    for name, value in changes.items():
        st.session_state[keys[name]] = value


def pretrained(key: str):
    """One pretrained ImageNet network at a time for the whole server: they weigh 14 to 549 MB."""
    with st.spinner(t("app.loading_pretrained")):
        return _pretrained(key)


@st.cache_resource(max_entries=1, show_spinner=False)
def _pretrained(key: str):
    return cnnlab.zoo.load_pretrained(key)


def runs() -> list[BackgroundRun]:
    """This learner's runs, oldest first."""
    return st.session_state.setdefault("runs", [])


def active_run() -> BackgroundRun | None:
    return next((run for run in reversed(runs()) if run.active), None)


def finished_runs() -> list[BackgroundRun]:
    return [run for run in runs() if run.status.finished and run.run is not None]


def kept_runs() -> int:
    """Finished runs kept per session: every run holds its model in the server's memory."""
    return training_pool().settings.kept_runs


def start_run(config: cnnlab.TrainConfig, label: str = "", resume: BackgroundRun | None = None) -> BackgroundRun:
    """Queue a run for this learner (continuing `resume`'s model when given)."""
    config = config.resolved()
    run = training_pool().submit(config, dataset(config.dataset), label or (
        t("runs.continued", id=resume.id) if resume else ""), resume.run if resume else None)
    return _keep(run)


def _keep(run: BackgroundRun) -> BackgroundRun:
    """Add a run to this learner's; beyond kept_runs(), the oldest finished run is let go."""
    history = runs()
    history.append(run)
    while len(history) > kept_runs():
        oldest_finished = next((r for r in history if not r.active), None)
        if oldest_finished is None:
            break
        history.remove(oldest_finished)
    return run


def import_bundle(data: bytes) -> BackgroundRun:
    """A run bundle the learner uploaded, rebuilt by cnnlab (nothing in the file is run), kept
    like a run trained here."""
    from cnnlab.bundle import read_bundle

    pool = training_pool()
    run = read_bundle(data, pool.settings.max_bundle_bytes)
    images = dataset(run.config.dataset)
    if (tuple(run.config.model.raw_shape), run.config.model.classes) != (images.image_shape, images.num_classes):
        raise cnnlab.errors.LabError("bundle.other_data", shape=tuple(run.config.model.raw_shape),
                                     classes=run.config.model.classes, dataset=cnnlab.errors.Text(f"datasets.{images.name}.title"))
    run.class_names = images.class_names  # the lab's own names, not labels from the file
    return _keep(pool.adopt(run, images, t("runs.imported")))


def choose_trained_run() -> BackgroundRun:
    """The learner picks one of this session's trained models; without one, the page explains how
    to get one in one click and stops there."""
    trained = finished_runs()
    if not trained:
        active = active_run()
        if active is not None:
            st.info(t("runs.still_training", run=run_label(active)))
            st.page_link("pages/3_Train.py", label=t("runs.watch"), icon="📈")
            st.stop()
        st.info(t("runs.none_yet"))
        quick = cnnlab.TrainConfig(cnnlab.ModelConfig("lenet5"), epochs=1, batch_size=32, learning_rate=3e-3, seed=1)
        if st.button(t("runs.quick_lenet"), type="primary"):
            start_run(quick, label="quick LeNet-5")
            st.switch_page("pages/3_Train.py")
        st.stop()
    by_id = {run.id: run for run in reversed(trained)}
    return by_id[st.selectbox(t("runs.model"), list(by_id), format_func=lambda i: run_label(by_id[i]))]


def test_images(run: BackgroundRun) -> cnnlab.Dataset:
    """The test sample this run was validated on."""
    return run.data.sample(run.config.sample, seed=run.config.seed)


_CANVAS_HTML = """
<div class="pad">
  <canvas width="280" height="280"></canvas>
  <button type="button">{clear}</button>
</div>
"""
_CANVAS_CSS = """
.pad { display: flex; flex-direction: column; gap: 0.5rem; align-items: flex-start; }
canvas { border: 1px solid var(--st-border-color, #ccc); border-radius: 6px; background: #fff;
         touch-action: none; cursor: crosshair; }
button { font: inherit; padding: 0.25rem 0.9rem; border-radius: 6px; border: 1px solid #ccc; background: #fff; }
"""
_CANVAS_JS = """
export default function(component) {
  const { parentElement, setStateValue } = component;
  const canvas = parentElement.querySelector('canvas');
  const ctx = canvas.getContext('2d');
  if (!canvas.dataset.ready) {
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, canvas.width, canvas.height);
    canvas.dataset.ready = '1';
  }
  ctx.lineWidth = 18; ctx.lineCap = 'round'; ctx.lineJoin = 'round'; ctx.strokeStyle = '#000';
  let drawing = false;
  const at = (e) => { const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height]; };
  canvas.onpointerdown = (e) => { drawing = true; canvas.setPointerCapture(e.pointerId);
    const [x, y] = at(e); ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 0.1, y); ctx.stroke(); };
  canvas.onpointermove = (e) => { if (!drawing) return; const [x, y] = at(e); ctx.lineTo(x, y); ctx.stroke(); };
  canvas.onpointerup = () => { if (!drawing) return; drawing = false; setStateValue('png', canvas.toDataURL('image/png')); };
  parentElement.querySelector('button').onclick = () => {
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, canvas.width, canvas.height); setStateValue('png', '');
  };
}
"""


@functools.cache
def _canvas_component(lang: str):
    import streamlit.components.v2 as components

    html = _CANVAS_HTML.replace("{clear}", cnnlab.i18n.text("your_image.clear", lang))
    return components.component(f"cnnlab_canvas_{lang}", html=html, css=_CANVAS_CSS, js=_CANVAS_JS)


def drawing_canvas(key: str) -> bytes | None:
    """A 280x280 drawing pad built with Streamlit's own component API: black ink on white paper.
    Returns the drawing as PNG bytes, or None before anything is drawn (or after Clear)."""
    import base64

    result = _canvas_component(language())(key=key, on_png_change=lambda: None)
    data_url = getattr(result, "png", None) or ""
    if not data_url.startswith("data:image/png;base64,"):
        return None
    return base64.b64decode(data_url.split(",", 1)[1])


def class_label(names, index: int) -> str:
    """'7' for MNIST's digits, '3 · cat' for CIFAR-10."""
    return names[index] if names[index] == str(index) else f"{index} · {class_name(names, index)}"


def run_label(run: BackgroundRun) -> str:
    c = run.config
    return t("runs.label", id=str(run.id), arch=c.model.arch, recipe=c.recipe, lr=f"{c.learning_rate:g}",
             epochs=c.epochs)


def duration(seconds: float) -> str:
    return cnnlab.i18n.duration(seconds, language())


def gigabytes(n: int) -> str:
    return f"{n / 2**30:.2f} GB"


def upscaled(image, scale: int = 6):
    """A small dataset image enlarged with hard pixel edges, as a learner should see it."""
    import numpy as np

    picture = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    return picture[..., 0] if picture.shape[-1] == 1 else picture
