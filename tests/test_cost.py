"""What a run will cost, before it starts."""

from __future__ import annotations

import math

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
    # bench/results/train_memory_speed.json: 2.43-2.48 GB peak measured for AlexNet at 224, batch 128
    estimate = cost().peak_bytes / 2**30
    assert 2.43 * 0.7 < estimate < 2.48 * 1.3


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
