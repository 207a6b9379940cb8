"""The working size of a learner's own photos: what MobileNetV2's frozen features cost per image at each
side, against 96 pixels measured in the same run, and what a photo takes on disk and in memory.

What: MobileNetV2's convolutional base with global average pooling, as transfer learning builds it
(`build_model("transfer", base="mobilenetv2")`, random weights: the time does not depend on them), on
the same 64 photo-like images (smooth colour fields with noise, PNG-encoded as the Your classes page keeps
them) at 96, 128, 160 and 224 pixels. Each size is timed computing the 64 images' features in batches of
`features.BATCH`, the median of `--repeats` rounds after one warm-up; the ratio is against 96 px in the
same run. The disk figure is the mean PNG size of those images at that side, the memory one the raw pixels.

    PYTHONPATH=. python bench/own_size.py             # about a minute on 2 cores
    PYTHONPATH=. python bench/own_size.py --repeats 5

Writes bench/results/own_size.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np

from common import RESULTS, write_json  # bench/ is on sys.path when a script here runs
from machine import machine

SIDES = (96, 128, 160, 224)
IMAGES = 64


def photos(side: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:side, 0:side] / side
    out = []
    for _ in range(IMAGES):
        a, b, c = rng.uniform(0, 255, 3)
        field = np.stack([a * ys + (255 - a) * xs, b * xs, c * (1 - ys)], axis=-1)
        out.append(np.clip(field + rng.normal(0, 12, field.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import keras
    from PIL import Image

    from cnnlab import build_model
    from cnnlab.features import BATCH

    rows = []
    for side in SIDES:
        images = photos(side)
        model = build_model("transfer", input_size=side, raw_shape=(side, side, 3), classes=2,
                            knobs={"base": "mobilenetv2", "weights": "random"})
        extractor = keras.Model(model.input, model.get_layer("head_norm").input)

        def features(extractor=extractor, images=images):
            for start in range(0, IMAGES, BATCH):
                np.asarray(extractor(images[start:start + BATCH], training=False))

        features()  # warm-up: the graph is traced once
        times = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            features()
            times.append(time.perf_counter() - began)
        png = statistics.mean(len(_png(Image, image)) for image in images[:16])
        rows.append({"side": side, "seconds_per_image": statistics.median(times) / IMAGES,
                     "png_bytes": round(png), "raw_bytes": side * side * 3})
    base = rows[0]["seconds_per_image"]
    for row in rows:
        row["ratio_to_96"] = round(row["seconds_per_image"] / base, 2)
    result = {"machine": machine(), "images": IMAGES, "repeats": args.repeats, "rows": rows}
    write_json(RESULTS / "own_size.json", result)
    print("| side | features ms / image | x 96 px | PNG KB | raw KB |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['side']} | {row['seconds_per_image'] * 1000:.1f} | {row['ratio_to_96']:.2f} | "
              f"{row['png_bytes'] / 1024:.1f} | {row['raw_bytes'] / 1024:.1f} |")


def _png(image_module, pixels) -> bytes:
    buffer = io.BytesIO()
    image_module.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    main()
