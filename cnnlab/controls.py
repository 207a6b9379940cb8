"""What a learner can set on the Train page: the values each of its controls offers.

The page draws its controls from these grids and `cost.suggestions` suggests only values on them,
so every suggestion is one a learner can click.
"""

from __future__ import annotations

from .architectures import MAX_INPUT_SIZE, get_architecture

STEP = 0.05
WIDTHS = tuple(round(STEP * i, 2) for i in range(1, 21))    # filters and units x W: 0.05, 0.1, ... 1.0
SAMPLES = WIDTHS                                            # fraction of the whole training set: 0.05 ... 1.0
BATCH_SIZES = (8, 16, 32, 64, 128, 256)
ACCUMULATION_STEPS = (1, 2, 4, 8, 16, 32, 64)              # micro-batches per batch, where they divide it


def accumulation_steps(batch_size: int) -> tuple[int, ...]:
    """The accumulation steps offered for a batch: those that split it into equal micro-batches."""
    return tuple(steps for steps in ACCUMULATION_STEPS if batch_size % steps == 0)


def input_sizes(arch: str) -> range:
    """Whole pixels, from the smallest side at which no feature map vanishes to the largest the lab takes."""
    return range(get_architecture(arch).min_input_size, MAX_INPUT_SIZE + 1)
