"""Train: choose a recipe, see what it will cost, start, watch the curves live, stop, compare."""

import dataclasses

import streamlit as st

import cnnlab
import cnnlab.errors
import ui
from cnnlab import controls
from cnnlab.bundle import bundle_bytes
from cnnlab.charts import learning_rate_curve, training_curves
from cnnlab.cost import check_fits, estimate_cost
from cnnlab.runner import RunStatus

ui.page("train")
st.title(ui.t("train.title"))

trainable = [a.name for a in cnnlab.ARCHITECTURES.values() if a.trainable]
active = ui.active_run()

with st.sidebar:
    st.header(ui.t("train.settings"))
    arch = cnnlab.get_architecture(st.selectbox(ui.t("architecture.choose"), trainable, key="train-arch",
                                                format_func=lambda n: ui.arch_title(cnnlab.ARCHITECTURES[n])))
    recipe_name = st.selectbox(ui.t("train.recipe"), [*cnnlab.RECIPES, "custom"], help=ui.t("train.recipe_help"))
    base = cnnlab.RECIPES["seed" if recipe_name == "custom" else recipe_name]
    if recipe_name != "custom":
        st.caption(ui.t(f"recipes.{recipe_name}"))
    epochs = st.number_input(ui.t("train.epochs"), 1, 100, 3 if arch.name == "lenet5" else 1)
    batch_size = st.select_slider(ui.t("train.batch_size"), controls.BATCH_SIZES, value=base.batch_size)
    lr = st.number_input(ui.t("train.learning_rate"), 1e-6, 1.0, base.learning_rate, format="%g",
                         disabled=recipe_name != "custom", key=f"lr-{recipe_name}")
    # The controls a memory refusal may change hold their values in Session State (see ui.apply).
    keys = ui.adjustable_keys(arch)
    steps_offered = controls.accumulation_steps(int(batch_size))
    ui.seed_widgets({keys["sample"]: 1.0 if arch.name == "lenet5" else 0.2,
                     keys["input_size"]: arch.input_size if arch.name == "lenet5" else max(arch.min_input_size, 64),
                     keys["width"]: 1.0 if arch.name == "lenet5" or arch.fixed_width else 0.25,
                     keys["accumulation_steps"]: 1}, offered={keys["accumulation_steps"]: steps_offered})
    accumulation = st.select_slider(ui.t("train.accumulation"), steps_offered, key=keys["accumulation_steps"],
                                    help=ui.t("train.accumulation_help"))
    sample = st.slider(ui.t("train.sample"), controls.SAMPLES[0], controls.SAMPLES[-1], step=controls.STEP, key=keys["sample"])
    input_size = st.number_input(ui.t("train.input_size"), arch.min_input_size, cnnlab.architectures.MAX_INPUT_SIZE,
                                 key=keys["input_size"], help=ui.t("train.input_size_help", paper=arch.input_size))
    width = st.slider(ui.t("architecture.width"), controls.WIDTHS[0], controls.WIDTHS[-1], step=controls.STEP,
                      disabled=arch.fixed_width, key=keys["width"])
    knobs = ui.knob_inputs(arch, "train")
    seed = st.number_input(ui.t("train.seed"), 0, 2**31 - 1, 0)

config = cnnlab.TrainConfig(
    cnnlab.ModelConfig(arch.name, input_size=int(input_size), width=width, knobs=knobs),
    recipe="seed" if recipe_name == "custom" else recipe_name, epochs=int(epochs), batch_size=int(batch_size),
    learning_rate=float(lr), sample=sample, seed=int(seed), accumulation_steps=int(accumulation))
try:
    config = config.resolved()
    data = ui.dataset(config.dataset)
    n_train = max(1, round(len(data.x_train) * sample))
    cost = estimate_cost(config, n_train, max(1, round(len(data.x_test) * sample)))
except ValueError as problem:
    st.warning(ui.say(problem))
    st.stop()

time_col, memory_col, data_col = st.columns(3)
time_col.metric(ui.t("train.time_per_epoch"), ui.duration(cost.seconds_per_epoch),
                help=None if not cost.once_seconds else ui.t("train.head_only"))
memory_col.metric(ui.t("train.peak_memory"), ui.gigabytes(cost.peak_bytes))
data_col.metric(ui.t("train.training_images"), cnnlab.i18n.number(n_train))
if cost.once_seconds:
    st.caption(ui.t("train.features_once", duration=ui.duration(cost.once_seconds)))
with st.expander(ui.t("train.rate_header")):
    st.plotly_chart(learning_rate_curve(*cnnlab.training.learning_rates(config, n_train), lang=ui.language()),
                    width="stretch", key="rates")
    st.caption(ui.t("train.rate_note"))

start_col, stop_col = st.columns([1, 1])
if start_col.button(ui.t("train.start"), type="primary", disabled=active is not None, width="stretch"):
    try:
        check_fits(cost, config, n_train, max(1, round(len(data.x_test) * sample)),
                   ui.training_pool().settings.memory_reserve_bytes)
    except ValueError as problem:
        st.warning(ui.say(problem))
        ui.offer_suggestions(problem, arch)
    else:
        active = ui.start_run(config)
if stop_col.button(ui.t("train.stop"), disabled=active is None, width="stretch"):
    active.stop()


watched = active.status if active is not None else None


@st.fragment(run_every=ui.LIVE_EVERY_SECONDS.get(watched))
def live():
    run = ui.active_run() or (ui.runs()[-1] if ui.runs() else None)
    if run is not None and run.active:
        run.touch()  # this tab is still open
        if run.status != watched:
            st.rerun()  # from waiting in line to training: the whole page, at the training pace
    if run is None:
        st.info(ui.t("train.choose_and_start"))
        return
    if run.status == RunStatus.QUEUED:
        place = ui.training_pool().place_in_line(run)
        st.info(ui.t("train.waiting", place=place) if place else ui.t("train.starting"))
    elif run.progress is not None:
        p = run.progress
        eta = (ui.t(f"runs.status.{run.status}") if not run.active else ui.t("train.eta_unknown")
               if len(run.batches) < 3 else ui.t("train.eta_done") if p.eta < 1
               else ui.t("train.eta", duration=ui.duration(p.eta)))
        st.progress(p.fraction, text=ui.t("train.progress", run=ui.run_label(run), epoch=p.epoch, epochs=p.epochs,
                                          step=p.step, steps=p.steps, elapsed=ui.duration(p.elapsed), eta=eta))
        st.plotly_chart(ui.live_curves(run), width="stretch", key=f"live-{run.id}")
        st.caption(ui.t("train.curves_note"))
    else:
        st.progress(0.0, text=ui.t("train.preparing", run=ui.run_label(run),
                                   status=ui.say(run.status_text) if run.status_text else ui.t("train.building")))
    if run.active:
        for note in run.notes:
            st.info(ui.say(note))
    if not run.active and st.session_state.get("drawn_finished") != run.id:
        st.session_state["drawn_finished"] = run.id
        st.rerun()  # draw the results and re-enable Start


live()

last = ui.runs()[-1] if ui.runs() else None
if last is not None and not last.active:
    if last.status == RunStatus.FAILED and last.run is None:
        st.error(ui.t("train.failed", error=ui.say(last.error)))
        ui.offer_suggestions(last.error, cnnlab.get_architecture(last.config.model.arch))  # refused at its turn
    elif last.run is not None:
        result = last.run
        for note in result.notes:
            st.info(ui.say(note))
        if last.status == RunStatus.FAILED:  # interrupted mid-run: what it learnt so far is kept
            st.error(ui.t("train.interrupted", run=f"#{last.id}", batches=len(last.batches) - last.batches_before,
                          error=ui.say(last.error)))
        elif last.status == RunStatus.STOPPED and last.batches_before == len(last.batches):  # uploaded, not trained here
            st.info(ui.t("train.uploaded_stopped", run=f"#{last.id}"))
        elif last.status == RunStatus.STOPPED:
            st.warning(ui.t("train.stopped", run=f"#{last.id}", reason=ui.say(last.stop_reason),
                            batches=len(last.batches) - last.batches_before))
        st.metric(ui.t("evaluate.accuracy"), f"{result.test_accuracy:.2%}" if result.test_accuracy is not None else "-")
        if last.collapse is not None and result.epochs_completed:  # a run stopped early has not converged anywhere
            st.error(ui.t("train.collapsed", share=f"{last.collapse.share:.0%}",
                          name=ui.class_name(result.class_names, last.collapse.class_index)))
        name = f"{last.config.model.arch}_run{last.id}"
        bundle_col, csv_col, json_col = st.columns(3)
        bundle_col.download_button(ui.t("train.download_bundle"), lambda: bundle_bytes(result),
                                   file_name=f"{name}.zip", mime="application/zip", on_click="ignore",
                                   help=ui.t("train.download_bundle_help"))
        csv_col.download_button(ui.t("train.download_csv"), result.history.to_csv(), file_name=f"{name}_history.csv",
                                mime="text/csv", on_click="ignore")
        json_col.download_button(ui.t("train.download_json"), cnnlab.runs.history_json(result),
                                 file_name=f"{name}_history.json", mime="application/json", on_click="ignore")
        if st.button(ui.t("train.continue_run", run=f"#{last.id}", epochs=int(epochs)), disabled=active is not None,
                     help=ui.t("train.continue_help")):
            ui.start_run(dataclasses.replace(last.config, epochs=int(epochs)), resume=last)
            st.rerun()

with st.expander(ui.t("train.bundle_header")):
    st.caption(ui.t("train.bundle_intro"))
    upload = st.file_uploader(ui.t("train.bundle_uploader"), type=["zip"], key="bundle-upload",
                              max_upload_size=ui.training_pool().settings.max_bundle_mb,
                              disabled=active is not None)  # the results below stay the run's being trained
    if upload is not None:
        file_id, outcome = st.session_state.get("bundle-import", (None, None))
        if file_id != upload.file_id:  # each file is read once: its run, or why it was refused
            try:
                with st.spinner(ui.t("errors.bundle.what")):
                    outcome = f"#{ui.import_bundle(upload.getvalue()).id}"
            except Exception as problem:  # kept as its text only: the file and its model are let go
                outcome = problem.text if isinstance(problem, cnnlab.errors.LabError) else \
                    cnnlab.errors.Text("errors.bundle.unreadable", reason=type(problem).__name__)
            st.session_state["bundle-import"] = (upload.file_id, outcome)
            if isinstance(outcome, str):
                st.rerun()  # draw the uploaded run as this session's latest
        if isinstance(outcome, str):
            st.success(ui.t("train.bundle_loaded", run=outcome))
        else:
            st.error(ui.say(outcome))

done = [run for run in ui.runs() if not run.active and run.batches]
if len(done) > 1:
    st.subheader(ui.t("train.compare"))
    st.caption(ui.t("train.kept", count=ui.kept_runs()))
    by_id = {run.id: run for run in done}
    chosen = [by_id[i] for i in st.multiselect(ui.t("train.overlay"), list(by_id), default=list(by_id)[-2:],
                                               format_func=lambda i: ui.run_label(by_id[i]))]
    if chosen:
        st.plotly_chart(training_curves([(f"#{r.id}", r.batches, r.epochs) for r in chosen], lang=ui.language()),
                        width="stretch", key="compare")
