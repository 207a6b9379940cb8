"""Build the datasets that ship inside cnnlab (cnnlab/bundled/*.npz).

    python scripts/build_bundled_data.py [--source ../shared/datasets]

MNIST: all 60,000 training images, the lecture's data for LeNet-5, with the 5,000 test images the
source holds. CIFAR-10: 5,000 training and 1,000 test images, the lecture's 10% sample, drawn at
random without replacement with a fixed seed, so a rebuild gives the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SIZES = {"mnist": (None, None), "cifar10": (5000, 1000)}   # None: every image, in the source's order
SEED = 2024
# MNIST was once a 6,000/1,000 sample drawn first from the same stream; those draws are still made so
# that CIFAR-10's sample stays the one every committed measurement used.
EARLIER_DRAWS = {"mnist": (6000, 1000)}

def build(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for name, (n_train, n_test) in SIZES.items():
        with np.load(source / f"{name}.npz") as full:
            arrays = {}
            for i, (split, n) in enumerate((("train", n_train), ("test", n_test))):
                x, y = full[f"x_{split}"], full[f"y_{split}"]
                if name in EARLIER_DRAWS:
                    rng.choice(len(x), size=EARLIER_DRAWS[name][i], replace=False)
                index = np.arange(len(x)) if n is None else np.sort(rng.choice(len(x), size=n, replace=False))
                arrays[f"x_{split}"], arrays[f"y_{split}"] = x[index], y[index]
        np.savez_compressed(target / f"{name}.npz", **arrays)
        print(f"{name}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=root.parent / "shared" / "datasets")
    args = parser.parse_args()
    build(args.source, root / "cnnlab" / "bundled")
