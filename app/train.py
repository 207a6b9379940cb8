"""The Train page's panels, top to bottom: the settings, what the run will cost, Start and Stop, the
live curves, the last run's results, run bundles, and the comparison of runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import streamlit as st

import cnnlab
from cnnlab import controls, lessons
from cnnlab.architectures import MAX_INPUT_SIZE
from cnnlab.charts import learning_rate_curve, training_curves
from cnnlab.cost import CostEstimate, check_fits, estimate_cost
from cnnlab.datasets import TEST_SHARE
from cnnlab.devices import backend
from cnnlab.errors import LabError, Text
from cnnlab.owndata import IMAGE_SHAPE
from cnnlab.pretrained import cached_path
from cnnlab.runner import BackgroundRun, RunStatus
from cnnlab.runs import history_json
from cnnlab.training import learning_rates

from . import exports, links, nav, network, session
from .nav import OWN_PAGE
from .resources import data_of, store, training_pool
from .text import arch_title, class_name, duration, gigabytes, language, run_label, say, settings_text, t
from .widgets import offer_suggestions, refusal

# How often a watching tab redraws its run. Every watching tab reruns its fragment on the server and
# redraws its chart in the browser (often a phone): a place in line changes slowly; two seconds
# keep a training run's curves live at half the cost of one (bench/class_load.py).
LIVE_EVERY_SECONDS = {RunStatus.QUEUED: 5.0, RunStatus.RUNNING: 2.0}
LIVE_POINTS = 240  # per curve: a phone's chart is about 350 pixels wide, and draws the same line


@dataclass(frozen=True)
class Plan:
    """The run the sidebar describes, checked, with the images it trains on and what it will cost."""

    arch: cnnlab.Architecture
    config: cnnlab.TrainConfig
    n_train: int
    n_test: int
    cost: CostEstimate


def settings() -> tuple[cnnlab.Architecture, cnnlab.TrainConfig]:
    """The sidebar: the network, the recipe and every setting, starting from the architecture's
    classroom defaults or from a settings link (`links.train`). Every control holds its value in Session
    State, so that a link, or a memory refusal's suggestion, can set it."""
    link = links.train()
    with st.sidebar:
        st.header(t("train.settings"))
        own = st.segmented_control(t("train.data"), links.DATA_CHOICES, key=link.key("data"),
                                   format_func=lambda choice: t(f"train.data_{choice}")) == "own"
        names = cnnlab.list_architectures(trainable=True, own=own or None)
        arch = cnnlab.get_architecture(st.selectbox(t("architecture.choose"), names, key=link.key("arch"),
                                                    format_func=arch_title))
        defaults = lessons.train_defaults(arch.name, own=own)
        recipe_name = st.selectbox(t("train.recipe"), links.RECIPE_NAMES, help=t("train.recipe_help"),
                                   key=link.key("recipe"))
        recipe = links.recipe(recipe_name)
        if recipe_name != links.CUSTOM:
            st.caption(t(f"recipes.{recipe_name}"))
        if defaults.lesson:
            st.caption(t("train.defaults_from" if defaults.reproduced else "train.defaults_closest",
                         lesson=t(f"lessons.{defaults.lesson}.title")))
        epochs = st.number_input(t("train.epochs"), *links.EPOCHS, key=link.key("epochs"))
        batch_size = st.select_slider(t("train.batch_size"), controls.BATCH_SIZES, key=link.key("batch"))
        lr = st.number_input(t("train.learning_rate"), *links.LEARNING_RATES, format="%g",
                             disabled=recipe_name != links.CUSTOM, key=link.key("lr"))
        accumulation = st.select_slider(t("train.accumulation"), controls.accumulation_steps(int(batch_size)),
                                        key=link.key("accum"), help=t("train.accumulation_help"))
        sample = st.slider(t("train.sample"), controls.SAMPLES[0], controls.SAMPLES[-1], step=controls.STEP,
                           key=link.key("sample"))
        input_size = st.number_input(t("train.input_size"), arch.min_input_size, MAX_INPUT_SIZE, key=link.key("size"),
                                     help=t("train.input_size_help", paper=arch.input_size))
        width = st.slider(t("architecture.width"), controls.WIDTHS[0], controls.WIDTHS[-1], step=controls.STEP,
                          disabled=arch.fixed_width, key=link.key("width"))
        knobs = links.knobs(arch, link)
        seed = st.number_input(t("train.seed"), *links.SEEDS, key=link.key("seed"))
    link.keep()
    with st.sidebar:
        link.share()
    config = cnnlab.TrainConfig(
        cnnlab.ModelConfig(arch.name, input_size=int(input_size), width=width, knobs=knobs),
        recipe=recipe.name, epochs=int(epochs), batch_size=int(batch_size), learning_rate=float(lr), sample=sample,
        seed=int(seed), accumulation_steps=int(accumulation))
    return arch, (_on_own_classes(arch, config) if own else config)


def _on_own_classes(arch: cnnlab.Architecture, config: cnnlab.TrainConfig) -> cnnlab.TrainConfig | None:
    """The run on the learner's own classes, split with the run's seed as they stand now; None (with why,
    and the way to the page that makes them) while they cannot be trained on."""
    own = session.own_data()
    problems = own.problems()
    if problems:
        st.info(t("own.not_ready", why=say(problems[0])))
        nav.link(OWN_PAGE, label=t("train.own_make"), icon="🧺")
        return None
    with refusal():
        path = own.freeze(config.seed, keep={run.config.data_path for run in session.runs() if run.config.data_path})
    base = arch.base(config.model.knobs)
    if base is not None and (config.model.knobs.get("weights") == "random" or not cached_path(base.no_top).is_file()):
        st.caption(t("train.own_weights_random" if config.model.knobs.get("weights") == "random"
                     else "train.own_weights_download", name=base.name))
    config = dataclasses.replace(config, data_path=str(path))
    model = dataclasses.replace(config.model, raw_shape=IMAGE_SHAPE, classes=data_of(config).num_classes)
    return dataclasses.replace(config, model=model)


def plan(arch: cnnlab.Architecture, config: cnnlab.TrainConfig) -> Plan:
    """What the run will cost, before it starts: time per epoch, peak memory, images, the learning rate."""
    with refusal():
        config = config.resolved()
        n_train, n_test = data_of(config).sizes(config.sample)
        cost = estimate_cost(config, n_train, n_test)
    time_col, memory_col, data_col = st.columns(3)
    time_col.metric(t("train.time_per_epoch"), duration(cost.seconds_per_epoch),
                    help=None if not cost.once_seconds else t("train.head_only"))
    memory_col.metric(t("train.peak_memory"), gigabytes(cost.peak_bytes))
    data_col.metric(t("train.training_images"), cnnlab.i18n.number(n_train))
    if config.data_path is not None:
        st.caption(t("train.own_split", share=f"{TEST_SHARE:.0%}", train=n_train, test=n_test, seed=config.seed))
    if cost.once_seconds:
        st.caption(t("train.features_once", duration=duration(cost.once_seconds)))
    st.caption(t("train.backend", **backend()))
    engine = training_pool().engine  # where runs train, and why not in workers where "auto" kept threads
    st.caption(say(engine.why or engine.describe()))
    with st.expander(t("train.rate_header")):
        st.plotly_chart(learning_rate_curve(*learning_rates(config, n_train), lang=language()), width="stretch",
                        key="rates")
        st.caption(t("train.rate_note"))
    return Plan(arch, config, n_train, n_test, cost)


def start_and_stop(planned: Plan) -> None:
    """Start checks that the run fits in the memory left (offering settings that would) and queues it;
    the page is drawn again at once, so that Start shows it cannot be pressed while the run trains.
    Before a run that would make the workspace let its oldest go, the page says which, with its download."""
    if session.read_only():
        return
    active = session.active_run()
    _before_removal()
    start_col, stop_col = st.columns([1, 1])
    if start_col.button(t("train.start"), type="primary", disabled=active is not None, width="stretch"):
        with refusal(stop=False, arch=planned.arch):
            check_fits(planned.cost, planned.config, planned.n_train, planned.n_test,
                       training_pool().settings.memory_reserve_bytes)
            training_pool().engine.check_fits(planned.cost.peak_bytes - planned.cost.breakdown["runtime"])
            session.start_run(planned.config)
            st.rerun()
    if stop_col.button(t("train.stop"), disabled=active is None, width="stretch"):
        active.stop()


def _before_removal() -> None:
    """The run that starting one more would remove, with its bundle to keep."""
    oldest = store().next_to_remove(session.workspace())
    if oldest is None:
        return
    st.warning(t("train.will_remove", count=session.kept_runs(), run=run_label(oldest)))
    st.download_button(t("train.download_bundle"), lambda: session.bundle(oldest),
                       file_name=f"{oldest.config.model.arch}_run{oldest.id}.zip", mime="application/zip",
                       on_click="ignore", key="download-oldest")


def live() -> None:
    """The active run (or the last one) as it trains: its place in line, progress and live curves,
    redrawn every few seconds on its own; the whole page once the run moves on."""
    active = session.active_run()
    watched = active.status if active is not None else None

    @st.fragment(run_every=LIVE_EVERY_SECONDS.get(watched))
    def view():
        run = session.active_run() or session.latest()
        if run is not None and run.active and not session.read_only():
            run.touch()  # this tab of the workspace is still open (a read-only view keeps nothing alive)
            if run.status != watched:
                st.rerun()  # from waiting in line to training: the whole page, at the training pace
        if run is None:
            st.info(t("train.choose_and_start"))
            return
        _progress(run)
        if run.active:
            for note in run.notes:
                st.info(say(note))
        if not run.active and st.session_state.get("drawn_finished") != run.id:
            st.session_state["drawn_finished"] = run.id
            st.rerun()  # draw the results and enable Start again

    view()


def _progress(run: BackgroundRun) -> None:
    if run.status == RunStatus.QUEUED:
        place = training_pool().place_in_line(run)
        st.info(t("train.waiting", place=place) if place else t("train.starting"))
    elif run.progress is not None:
        p = run.progress
        eta = (t(f"runs.status.{run.status}") if not run.active else t("train.eta_unknown")
               if len(run.batches) < 3 else t("train.eta_done") if p.eta < 1
               else t("train.eta", duration=duration(p.eta)))
        st.progress(p.fraction, text=t("train.progress", run=run_label(run), epoch=p.epoch, epochs=p.epochs,
                                       step=p.step, steps=p.steps, elapsed=duration(p.elapsed), eta=eta))
        shown = run.active and run.latest_snapshot is not None
        curves_col, network_col = st.columns([3, 2]) if shown else (st.container(), None)
        curves_col.plotly_chart(_live_curves(run), width="stretch", key=f"live-{run.id}")
        curves_col.caption(t("train.curves_note"))
        if network_col is not None:
            with network_col:
                network.panel(run, live=True)
    else:
        st.progress(0.0, text=t("train.preparing", run=run_label(run),
                                status=say(run.status_text) if run.status_text else t("train.building")))


def _live_curves(run: BackgroundRun):
    """The live chart of a run, built again only when the run has moved on since this tab last drew it."""
    key = (run.id, len(run.batches), len(run.epochs), language())
    drawn = st.session_state.get("live-figure")
    if drawn is None or drawn[0] != key:
        figure = training_curves([(f"#{run.id}", run.batches, run.epochs)], lang=language(), points=LIVE_POINTS)
        drawn = st.session_state["live-figure"] = (key, figure)
    return drawn[1]


def results(epochs: int | None) -> None:
    """The last run, once it has ended: how it ended, its accuracy, a collapse onto one class, its
    downloads and read-only link, and a button to train it `epochs` more (an interrupted run: what it had left)."""
    last = session.latest()
    if last is None or last.active:
        return
    if last.status == RunStatus.INTERRUPTED and not last.trained:
        st.warning(t("train.interrupted_early", run=f"#{last.id}"))
        if not session.read_only() and st.button(t("train.start_again", run=f"#{last.id}"),
                                                 disabled=session.active_run() is not None):
            with refusal(stop=False):
                session.start_run(last.config, label=last.label)
                st.rerun()
        return
    if last.status == RunStatus.FAILED and not last.trained:
        st.error(t("train.failed", error=say(last.error)))
        offer_suggestions(last.error, cnnlab.get_architecture(last.config.model.arch))  # refused at its turn
        return
    if not last.trained:
        return
    result = last.run
    for note in result.notes:
        st.info(say(note))
    trained_here = len(last.batches) - last.batches_before
    more = epochs
    if last.status == RunStatus.INTERRUPTED:  # the server stopped: kept at its last finished epoch
        more = max(1, last.planned - result.epochs_completed)
        st.warning(t("train.interrupted_restart", run=f"#{last.id}", epoch=result.epochs_completed))
    elif last.status == RunStatus.FAILED:  # interrupted mid-run: what it learnt so far is kept
        st.error(t("train.interrupted", run=f"#{last.id}", batches=trained_here, error=say(last.error)))
    elif last.status == RunStatus.STOPPED and not trained_here:  # uploaded, not trained here
        st.info(t("train.uploaded_stopped", run=f"#{last.id}"))
    elif last.status == RunStatus.STOPPED:
        st.warning(t("train.stopped", run=f"#{last.id}", reason=say(last.stop_reason), batches=trained_here))
    st.metric(t("evaluate.accuracy"), f"{result.test_accuracy:.2%}" if result.test_accuracy is not None else "-")
    network.panel(last, live=False)
    if last.collapse is not None and result.epochs_completed:  # a run stopped early has not converged anywhere
        st.error(t("train.collapsed", share=f"{last.collapse.share:.0%}",
                   name=class_name(result.class_names, last.collapse.class_index)))
        _collapse_advice(last.config)
    name = f"{last.config.model.arch}_run{last.id}"
    bundle_col, csv_col, json_col = st.columns(3)
    bundle_col.download_button(t("train.download_bundle"), lambda: session.bundle(last), file_name=f"{name}.zip",
                               mime="application/zip", on_click="ignore", help=t("train.download_bundle_help"))
    csv_col.download_button(t("train.download_csv"), result.history.to_csv(), file_name=f"{name}_history.csv",
                            mime="text/csv", on_click="ignore")
    json_col.download_button(t("train.download_json"), history_json(result), file_name=f"{name}_history.json",
                             mime="application/json", on_click="ignore")
    exports.download(result.model, result.class_names, name)
    if session.read_only():
        return
    _share(last)
    if st.button(t("train.continue_run", run=f"#{last.id}", epochs=more), disabled=session.active_run() is not None,
                 help=t("train.continue_help")):
        with refusal(stop=False):
            session.start_run(dataclasses.replace(last.config, epochs=more), resume=last)
            st.rerun()


def _share(run) -> None:
    """The run's read-only link: its curves, confusion matrix and predictions, for a teacher to project."""
    share = getattr(run, "share", None) or getattr(store().get(run.id), "share", None)
    if share is None:
        return
    with st.expander(t("train.share_header"), icon="🔗"):
        st.caption(t("train.share_note"))
        st.code(f"{(st.context.url or '').rstrip('/')}?{session.VIEW}={share}", language=None)


def _collapse_advice(config: cnnlab.TrainConfig) -> None:
    """What was measured to help a run like this one, or, where nothing was, what helped elsewhere."""
    found = lessons.fix_for(config)
    if found is None:
        st.info(t("train.collapse_unmeasured"))
        return
    lesson, helping, preset = found
    accuracies = preset.accuracies[helping.label]
    st.info(t("train.collapse_fix", lesson=t(f"lessons.{lesson.name}.title"), run=t(f"lessons.runs.{helping.label}"),
              low=f"{min(accuracies):.0%}", high=f"{max(accuracies):.0%}", seeds=len(accuracies),
              settings=settings_text(preset.settings)))


def bundles() -> None:
    """Upload a run bundle: each file is read once, into a run of this workspace, or why it was refused."""
    if session.read_only():
        return
    with st.expander(t("train.bundle_header")):
        st.caption(t("train.bundle_intro"))
        upload = st.file_uploader(t("train.bundle_uploader"), type=["zip"], key="bundle-upload",
                                  max_upload_size=training_pool().settings.max_bundle_mb,
                                  disabled=session.active_run() is not None)  # the results stay the training run's
        if upload is None:
            return
        file_id, outcome = st.session_state.get("bundle-import", (None, None))
        if file_id != upload.file_id:
            try:
                with st.spinner(t("errors.bundle.what")):
                    outcome = f"#{session.import_bundle(upload.getvalue()).id}"
            except Exception as problem:  # noqa: BLE001 - any failure is one unreadable file; only its text is kept
                outcome = problem.text if isinstance(problem, LabError) else \
                    Text("errors.bundle.unreadable", reason=type(problem).__name__)
            st.session_state["bundle-import"] = (upload.file_id, outcome)
            if isinstance(outcome, str):
                st.rerun()  # draw the uploaded run as this session's latest
        if isinstance(outcome, str):
            st.success(t("train.bundle_loaded", run=outcome))
        else:
            st.error(say(outcome))


def compare() -> None:
    """The curves of this workspace's finished runs, overlaid."""
    done = [run for run in session.runs() if not run.active and run.batches]
    if len(done) < 2:
        return
    st.subheader(t("train.compare"))
    st.caption(t("train.kept", count=session.kept_runs()))
    by_id = {run.id: run for run in done}
    chosen = [by_id[i] for i in st.multiselect(t("train.overlay"), list(by_id), default=list(by_id)[-2:],
                                               format_func=lambda i: run_label(by_id[i]))]
    if chosen:
        st.plotly_chart(training_curves([(f"#{r.id}", r.batches, r.epochs) for r in chosen], lang=language()),
                        width="stretch", key="compare")
