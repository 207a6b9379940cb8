"""What a run will cost, before it starts."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab import ModelConfig, TrainConfig, i18n
from cnnlab.cost import RUNTIME_BYTES, estimate_cost

SPEED = 20e9  # a fixed machine speed, so the checks do not depend on this machine's load


def cost(arch="alexnet", n=5000, **overrides):
    model = {k: overrides.pop(k) for k in ("input_size", "width") if k in overrides}
    return estimate_cost(TrainConfig(ModelConfig(arch, **model), **overrides), n, 1000, macs_per_second=SPEED)


def test_memory_grows_with_the_batch_not_the_dataset():
    base = cost()
    assert cost(batch_size=64).peak_bytes < base.peak_bytes
    assert cost(n=10).breakdown["activations"] == base.breakdown["activations"]
    assert base.peak_bytes > RUNTIME_BYTES + base.breakdown["weights"]


def test_accumulation_cuts_activation_memory_by_its_factor():
    plain, split = cost(), cost(accumulation_steps=4)
    assert split.breakdown["activations"] * 4 == plain.breakdown["activations"]
    assert split.breakdown["weights"] > plain.breakdown["weights"]  # one accumulator per weight
    assert split.peak_bytes < plain.peak_bytes
    assert split.steps_per_epoch == math.ceil(5000 / 32)


def test_smaller_inputs_and_widths_are_cheaper_and_faster():
    full, small = cost(), cost(input_size=163, width=0.5)
    assert small.peak_bytes < full.peak_bytes and small.seconds_per_epoch < full.seconds_per_epoch


def test_lecture_alexnet_at_224_matches_the_measured_scale():
    # Peaks of whole AlexNet runs at 224, batch 128, on the bundled sample, in GB (10^9 bytes):
    # bench/results/train_memory_speed.json (2.43-2.48, with a smaller runtime then) and cost_memory.json (2.80-2.84)
    estimate = cost().peak_bytes / 1e9
    assert all(0.7 < estimate / measured < 1.3 for measured in (2.43, 2.48, 2.80, 2.84))


def test_steps_per_epoch_limits_the_epoch():
    assert cost("lenet5", n=6000, steps_per_epoch=5).steps_per_epoch == 5


def test_a_run_that_does_not_fit_is_refused_with_what_to_change(monkeypatch):
    from cnnlab.cost import check_fits

    cost = estimate_cost(TrainConfig(ModelConfig("alexnet")), 5000, 1000, macs_per_second=1e10)
    monkeypatch.setattr("cnnlab.memory.available_bytes", lambda: 2**30)
    with pytest.raises(ValueError, match=r"This run needs about \d\.\d GB.*1\.0 GB free.*smaller input size"):
        check_fits(cost)
    monkeypatch.setattr("cnnlab.memory.available_bytes", lambda: 8 * 2**30)
    check_fits(cost)


# --- the estimate against real runs -------------------------------------------------------------------------

# One epoch of two steps and its validation on every test image, in a fresh process: its high-water
# resident memory is then the whole run's peak, imports included, as the estimate means it
# (bench/cost_memory.py does the same at the lecture's sizes). VmHWM, not ru_maxrss: Linux carries
# ru_maxrss over from the process that started the child, and the test process may have been large.
_MEASURE = """
import json, sys
import cnnlab
arch, size, width, batch = json.loads(sys.argv[1])
config = cnnlab.TrainConfig(cnnlab.ModelConfig(arch, input_size=size, width=width), epochs=1, batch_size=batch,
                            steps_per_epoch=2)
run = cnnlab.train(config)
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
print(json.dumps({"peak": int(status["VmHWM"].split()[0]) * 1024, "epochs": run.epochs_completed, **run.dataset}))
"""


@pytest.mark.parametrize("arch, size, width", [
    ("lenet5", None, 1.0),     # the runtime and the traced graphs, almost nothing else
    ("alexnet", 163, 0.25),    # large dense weights with Adam's slots; the resized batch
    ("vgg19", 112, 0.125),     # many activations: about 40% of the estimate is one batch's
])
def test_the_estimate_is_within_30_percent_of_a_real_runs_peak(arch, size, width):
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps([arch, size, width, 128])], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["epochs"] == 1  # the validation ran: it belongs to the peak
    config = TrainConfig(ModelConfig(arch, input_size=size, width=width), epochs=1, batch_size=128, steps_per_epoch=2)
    estimate = estimate_cost(config, measured["n_train"], measured["n_test"], macs_per_second=SPEED)
    ratio = estimate.peak_bytes / measured["peak"]
    parts = {k: f"{v / 1e9:.3f} GB" for k, v in estimate.breakdown.items() if k != "images_per_epoch"}
    assert 0.7 <= ratio <= 1.3, (f"estimate {estimate.peak_bytes / 1e9:.2f} GB, "
                                 f"measured {measured['peak'] / 1e9:.2f} GB "
                                 f"(ratio {ratio:.2f}); estimate by part: {parts}")


@pytest.mark.parametrize("config, kinds", [
    (TrainConfig(ModelConfig("alexnet", input_size=224)), ("width", "micro-batches")),
    (TrainConfig(ModelConfig("vgg19", input_size=224)), ("input size 56 with width 0.5",)),
])
def test_a_refusal_names_settings_that_fit(monkeypatch, config, kinds):
    from cnnlab.cost import check_fits, suggestions

    free = 700 * 2**20
    monkeypatch.setattr("cnnlab.memory.available_bytes", lambda: free)
    with pytest.raises(ValueError, match="Settings that would fit") as refused:
        check_fits(estimate_cost(config, 5000, 1000, macs_per_second=SPEED), config, 5000, 1000, reserve_bytes=0)
    assert all(kind in str(refused.value) for kind in kinds), str(refused.value)
    assert "메모리에 들어가는 설정" in refused.value.in_language("ko")
    offered = suggestions(config, 5000, 1000, free)
    assert [(str(o.text), o.changes) for o in refused.value.suggestions] == [(str(o.text), o.changes) for o in offered]
    assert offered
    for option in offered:  # each suggestion really fits once its change is made
        assert str(option.text) in str(refused.value)
        assert fitted(config, option.changes, 5000, 1000) <= free, option.changes


def fitted(config: TrainConfig, changes: dict, n_train: int, n_test: int) -> int:
    """What a run needs beyond the runtime once a suggestion's changes are made, as the Train page makes
    them: the sample is a fraction of the whole training set, of which n_train is the config's sample."""
    config = config.resolved()
    model = dataclasses.replace(config.model, **{k: v for k, v in changes.items() if k in ("input_size", "width")})
    changed = dataclasses.replace(config, model=model,
                                  accumulation_steps=changes.get("accumulation_steps", config.accumulation_steps))
    if "sample" in changes:
        n_train, n_test = (max(1, round(n / config.sample * changes["sample"])) for n in (n_train, n_test))
    cost = estimate_cost(changed, n_train, n_test, macs_per_second=SPEED)
    return cost.peak_bytes - cost.breakdown["runtime"]


@pytest.mark.parametrize("config, n_train, n_test", [
    (TrainConfig(ModelConfig("alexnet", input_size=224), batch_size=256), 5000, 1000),
    (TrainConfig(ModelConfig("vgg19", input_size=224, width=0.5), sample=0.6), 3000, 600),
    (TrainConfig(ModelConfig("vgg19", input_size=168)), 5000, 1000),
    (TrainConfig(ModelConfig("lenet5", width=2.0), batch_size=64, source="full", sample=0.9), 54000, 9000),
])
def test_every_suggestion_is_a_value_the_train_page_offers(config, n_train, n_test):
    from cnnlab import controls
    from cnnlab.cost import suggestions

    grids = {"width": controls.WIDTHS, "sample": controls.SAMPLES,
             "accumulation_steps": controls.accumulation_steps(config.resolved().batch_size),
             "input_size": controls.input_sizes(config.model.arch)}
    seen = set()
    for share in (0.3, 0.5, 0.8, 0.95):  # of what the run needs: it does not fit
        free = int(share * fitted(config, {}, n_train, n_test))
        for option in suggestions(config, n_train, n_test, free):
            assert option.changes and all(value in grids[key] for key, value in option.changes.items()), option.changes
            assert fitted(config, option.changes, n_train, n_test) <= free, option.changes
            assert "0.0625" not in str(option.text) and "0.125" not in str(option.text)
            seen |= set(option.changes)
            if "sample" in option.changes:  # a fraction of the whole training set, and the text counts its images
                whole_train = round(n_train / config.resolved().sample)
                images = i18n.number(max(1, round(whole_train * option.changes["sample"])))
                assert f" {images} training images" in str(option.text)
    assert seen, "some change was suggested"


def test_the_train_pages_controls_offer_these_grids():
    from cnnlab import controls
    from cnnlab.architectures import MAX_INPUT_SIZE

    assert controls.WIDTHS[:3] == (0.05, 0.1, 0.15) and controls.WIDTHS[-1] == 1.0 and len(controls.WIDTHS) == 20
    assert controls.SAMPLES == controls.WIDTHS and controls.BATCH_SIZES == (8, 16, 32, 64, 128, 256)
    assert controls.accumulation_steps(128) == (1, 2, 4, 8, 16, 32, 64)
    assert controls.accumulation_steps(8) == (1, 2, 4, 8)
    assert controls.accumulation_steps(96) == (1, 2, 4, 8, 16, 32)
    sizes = controls.input_sizes("alexnet")
    assert (sizes[0], sizes[-1]) == (163, MAX_INPUT_SIZE) and 200 in sizes and 162 not in sizes


def test_the_mildest_width_on_the_sliders_grid_is_suggested():
    from cnnlab import controls
    from cnnlab.cost import suggestions

    config = TrainConfig(ModelConfig("vgg19", input_size=64))
    for free_gb in (0.5, 1.0, 1.5):
        free = int(free_gb * 2**30)
        width = next(o.changes["width"] for o in suggestions(config, 5000, 1000, free) if "width" in o.changes)
        assert fitted(config, {"width": width}, 5000, 1000) <= free
        wider = controls.WIDTHS[controls.WIDTHS.index(width) + 1]
        assert fitted(config, {"width": wider}, 5000, 1000) > free  # the next step up would not fit


def test_a_refusal_without_the_runs_settings_offers_none_and_says_what_to_change(monkeypatch):
    from cnnlab.cost import check_fits

    monkeypatch.setattr("cnnlab.memory.available_bytes", lambda: 2**20)
    with pytest.raises(ValueError, match="smaller input size or width") as refused:
        check_fits(cost("vgg19"), reserve_bytes=0)
    assert refused.value.suggestions == []


def test_counts_and_speeds_that_make_no_sense_are_refused():
    config = TrainConfig(ModelConfig("lenet5"))
    for n_train, n_test, speed in [(0, 0, SPEED), (-500, 0, SPEED), (10**12, 0, SPEED), (100, -1, SPEED),
                                   (100, 0, -1e9), (100, 0, float("nan")), ("100", 0, SPEED)]:
        with pytest.raises(ValueError, match="n_train|n_test|macs_per_second"):
            estimate_cost(config, n_train, n_test, macs_per_second=speed)
