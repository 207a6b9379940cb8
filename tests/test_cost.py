"""What a run will cost, before it starts."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab import ModelConfig, TrainConfig
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
    assert 0.7 <= ratio <= 1.3, (f"estimate {estimate.peak_bytes / 1e9:.2f} GB, measured {measured['peak'] / 1e9:.2f} GB "
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
        check_fits(estimate_cost(config, 5000, 1000, macs_per_second=SPEED), config, 5000, 1000)
    assert all(kind in str(refused.value) for kind in kinds), str(refused.value)
    assert "메모리에 들어가는 설정" in refused.value.in_language("ko")
    for option in suggestions(config, 5000, 1000, free):  # each suggestion really fits
        values = option.values
        model = dict(input_size=values.get("size", config.model.input_size), width=float(values.get("width", 1.0)))
        changed = TrainConfig(ModelConfig(config.model.arch, **model), batch_size=config.batch_size,
                              accumulation_steps=values.get("steps", 1))
        n = values.get("images", 5000)
        fitted = estimate_cost(changed, n, 1000 if n == 5000 else max(1, int(1000 * n / 5000)), macs_per_second=SPEED)
        assert fitted.peak_bytes - fitted.breakdown["runtime"] <= free, option.key


def test_counts_and_speeds_that_make_no_sense_are_refused():
    config = TrainConfig(ModelConfig("lenet5"))
    for n_train, n_test, speed in [(0, 0, SPEED), (-500, 0, SPEED), (10**12, 0, SPEED), (100, -1, SPEED),
                                   (100, 0, -1e9), (100, 0, float("nan")), ("100", 0, SPEED)]:
        with pytest.raises(ValueError, match="n_train|n_test|macs_per_second"):
            estimate_cost(config, n_train, n_test, macs_per_second=speed)
