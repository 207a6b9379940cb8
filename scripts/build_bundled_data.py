"""Build the 10% samples that ship inside cnnlab (cnnlab/bundled/*.npz).

    python scripts/build_bundled_data.py [--source ../shared/datasets]

MNIST: 6,000 training and 1,000 test images; CIFAR-10: 5,000 and 1,000, as the lecture's 10%
samples. Drawn at random without replacement with a fixed seed, so a rebuild gives the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SIZES = {"mnist": (6000, 1000), "cifar10": (5000, 1000)}
SEED = 2024


def build(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for name, (n_train, n_test) in SIZES.items():
        with np.load(source / f"{name}.npz") as full:
            arrays = {}
            for split, n in (("train", n_train), ("test", n_test)):
                x, y = full[f"x_{split}"], full[f"y_{split}"]
                index = np.sort(rng.choice(len(x), size=n, replace=False))
                arrays[f"x_{split}"], arrays[f"y_{split}"] = x[index], y[index]
        np.savez_compressed(target / f"{name}.npz", **arrays)
        print(f"{name}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=root.parent / "shared" / "datasets")
    args = parser.parse_args()
    build(args.source, root / "cnnlab" / "bundled")
