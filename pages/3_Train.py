"""Train: choose a recipe, see what it will cost, start, watch the curves live, stop, compare."""

import streamlit as st

import cnnlab
import ui
from cnnlab.charts import training_curves
from cnnlab.cost import check_fits, estimate_cost
from cnnlab.runner import FAILED, QUEUED, STOPPED

ui.page("train")
st.title("Train")

trainable = [a.name for a in cnnlab.ARCHITECTURES.values() if a.trainable]
active = ui.active_run()

with st.sidebar:
    st.header("Run settings")
    arch = cnnlab.get_architecture(st.selectbox("Architecture", trainable,
                                                format_func=lambda n: cnnlab.ARCHITECTURES[n].title))
    recipe_name = st.selectbox("Recipe", [*cnnlab.RECIPES, "custom"],
                               help="seed: the lecture's settings; paper: SGD as the papers; stable: Adam at 1e-4")
    base = cnnlab.RECIPES["seed" if recipe_name == "custom" else recipe_name]
    if recipe_name != "custom":
        st.caption(base.description)
    epochs = st.number_input("Epochs", 1, 100, 3 if arch.name == "lenet5" else 1)
    batch_size = st.select_slider("Batch size", [8, 16, 32, 64, 128, 256], value=base.batch_size)
    lr = st.number_input("Learning rate", 1e-6, 1.0, base.learning_rate, format="%g",
                         disabled=recipe_name != "custom", key=f"lr-{recipe_name}")
    sample = st.slider("Sample fraction of the bundled data", 0.05, 1.0, 1.0 if arch.name == "lenet5" else 0.2, 0.05)
    input_size = st.number_input("Input size", arch.min_input_size, cnnlab.architectures.MAX_INPUT_SIZE,
                                 arch.input_size if arch.name == "lenet5" else max(arch.min_input_size, 64),
                                 help=f"The paper's is {arch.input_size}; smaller trains far faster on a CPU.")
    width = st.slider("Width multiplier", 0.05, 1.0, 1.0 if arch.name == "lenet5" or arch.fixed_width else 0.25, 0.05,
                      disabled=arch.fixed_width, key=f"train-width-{arch.name}")
    knobs = ui.knob_inputs(arch, "train")
    seed = st.number_input("Seed", 0, 2**31 - 1, 0)

config = cnnlab.TrainConfig(
    cnnlab.ModelConfig(arch.name, input_size=int(input_size), width=width, knobs=knobs),
    recipe="seed" if recipe_name == "custom" else recipe_name, epochs=int(epochs), batch_size=int(batch_size),
    learning_rate=float(lr), sample=sample, seed=int(seed))
try:
    config = config.resolved()
    data = ui.dataset(config.dataset)
    n_train = max(1, round(len(data.x_train) * sample))
    cost = estimate_cost(config, n_train, max(1, round(len(data.x_test) * sample)))
except ValueError as problem:
    st.warning(ui.say(problem))
    st.stop()

time_col, memory_col, data_col = st.columns(3)
time_col.metric("Estimated time per epoch", ui.duration(cost.seconds_per_epoch),
                help=None if not cost.once_seconds else "Only the new head trains in each epoch.")
memory_col.metric("Estimated peak memory", ui.gigabytes(cost.peak_bytes))
data_col.metric("Training images", f"{n_train:,}")
if cost.once_seconds:
    st.caption(f"Before the first epoch, the frozen base computes every image's features once: about "
               f"{ui.duration(cost.once_seconds)}. They are kept for the whole server, so training the head again "
               "with other settings (same base, weights, input size and sample) starts at once.")

start_col, stop_col = st.columns([1, 1])
if start_col.button("Start", type="primary", disabled=active is not None, width="stretch"):
    try:
        check_fits(cost)
    except ValueError as problem:
        st.warning(ui.say(problem))
    else:
        active = ui.start_run(config)
if stop_col.button("Stop", disabled=active is None, width="stretch"):
    active.stop()


@st.fragment(run_every=1.0 if active is not None else None)
def live():
    run = ui.active_run() or (ui.runs()[-1] if ui.runs() else None)
    if run is None:
        st.info("Choose the settings on the left and press **Start**. The curves appear here while it trains.")
        return
    if run.status == QUEUED:
        place = ui.training_pool().place_in_line(run)
        st.info(f"Waiting for a free training slot: you are number {place} in line." if place
                else "Starting...")
    elif run.progress is not None:
        p = run.progress
        eta = ("estimating the time left" if len(run.batches) < 3 else "almost done" if p.eta < 1
               else f"about {ui.duration(p.eta)} left")
        st.progress(p.fraction, text=f"{ui.run_label(run)} · epoch {p.epoch}/{p.epochs} · batch {p.step}/{p.steps}"
                                     f" · {ui.duration(p.elapsed)} elapsed · {eta}")
        st.plotly_chart(training_curves([(f"#{run.id}", run.batches, run.epochs)]), width="stretch",
                        key=f"live-{run.id}")
        st.caption("Training: the running mean over the current epoch, after every batch (it restarts at each "
                   "epoch). Validation: the test sample, after every epoch.")
    else:
        st.progress(0.0, text=f"{ui.run_label(run)} · "
                              f"{ui.say(run.status_text) if run.status_text else 'building the model and preparing the first batch...'}")
    if run.active:
        for note in run.notes:
            st.info(ui.say(note))
    if not run.active and st.session_state.get("drawn_finished") != run.id:
        st.session_state["drawn_finished"] = run.id
        st.rerun()  # draw the results and re-enable Start


live()

last = ui.runs()[-1] if ui.runs() else None
if last is not None and not last.active:
    if last.status == FAILED:
        st.error(f"The run failed: {last.error}")
    elif last.run is not None:
        result = last.run
        for note in result.notes:
            st.info(ui.say(note))
        if last.status == STOPPED:
            batches = len(last.batches)
            st.warning(f"Run #{last.id} {last.stop_reason or 'stopped'} after {batches} batch"
                       f"{'' if batches == 1 else 'es'}; its model and curves are kept.")
        st.metric("Test accuracy", f"{result.test_accuracy:.2%}" if result.test_accuracy is not None else "-")
        if last.collapse is not None and result.epochs_completed:  # a run stopped early has not converged anywhere
            st.error(f"The predictions have collapsed: {last.collapse.share:.0%} of the test images are called "
                     f"'{last.collapse.class_name}'. The network learnt to guess one class, as the lecture's VGG19 "
                     "did with Adam at 0.001. Try the **stable** recipe (Adam at 0.0001).")
        name = f"{last.config.model.arch}_run{last.id}"
        model_col, csv_col, json_col = st.columns(3)
        model_col.download_button("Model (.keras)", lambda: cnnlab.training.model_bytes(result.model),
                                  file_name=f"{name}.keras", mime="application/octet-stream", on_click="ignore")
        csv_col.download_button("History (CSV)", result.history.to_csv(), file_name=f"{name}_history.csv",
                                mime="text/csv", on_click="ignore")
        json_col.download_button("History (JSON)", cnnlab.training.history_json(result),
                                 file_name=f"{name}_history.json", mime="application/json", on_click="ignore")

done = [run for run in ui.runs() if not run.active and run.batches]
if len(done) > 1:
    st.subheader("Compare runs")
    st.caption(f"The last {ui.KEPT_RUNS} runs of this browser session are kept.")
    by_id = {run.id: run for run in done}
    chosen = [by_id[i] for i in st.multiselect("Overlay", list(by_id), default=list(by_id)[-2:],
                                               format_func=lambda i: ui.run_label(by_id[i]))]
    if chosen:
        st.plotly_chart(training_curves([(f"#{r.id}", r.batches, r.epochs) for r in chosen]), width="stretch",
                        key="compare")
