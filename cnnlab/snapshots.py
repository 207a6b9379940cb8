"""The network changing while it trains: snapshots of its first layer's filters and of one fixed test
image's feature maps, taken between two batches.

A run takes one before its first batch and one at the end of every epoch, and keeps them (at most
`MAX_KEPT`: past that, every second epoch's goes, as a long run's curve is thinned), so that the learner
can scrub through how the filters formed. While it trains it also takes a live one every
`LIVE_SECONDS` or more. A snapshot costs one forward pass of one image; the next live one waits at
least `COST_SHARE`'s inverse times as long as the last one took, so live snapshots take at most that
share of the run's time on any network (bench/snapshot_cost.py measures it).

A snapshot is small and of a bounded size, whatever the network: the first `MAX_FILTERS` filters, and
for at most `MAX_LAYERS` convolution and pooling layers the first `MAX_CHANNELS` maps, shrunk to at most
`MAX_SIDE` pixels a side by averaging, each scaled to 0-255 on its own. Snapshots travel between
processes and to disk as one .npz of plain arrays (`encode`, `decode`), read without pickles.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import layers

from .explain import spatial_layers

LIVE_SECONDS = 3.0      # live snapshots at most this often
COST_SHARE = 0.03       # and at most this share of the run's time
MAX_KEPT = 21           # the start and up to 20 epochs' ends
MAX_FILTERS = 64
MAX_LAYERS = 16
MAX_CHANNELS = 8
MAX_SIDE = 28
KINDS = ("start", "epoch", "live")


@dataclass(frozen=True)
class Snapshot:
    """The network at one moment of its training: `at` in epochs (1.5 is half-way through the second)."""

    kind: str                              # "start", "epoch" (an epoch's end) or "live"
    at: float
    epoch: int                             # the epoch it was taken in, or at the end of (0 before the first)
    filters: np.ndarray                    # (filters, kh, kw, channels) uint8, each filter scaled on its own
    layers: tuple[str, ...]                # the layers whose maps it holds, in the network's order
    maps: tuple[np.ndarray, ...]           # per layer: (channels, h, w) uint8, each map scaled on its own
    shapes: tuple[tuple[int, int, int], ...] = ()  # per layer: its full output (h, w, channels)
    image: int = 0                         # the test image's index

    @property
    def nbytes(self) -> int:
        return self.filters.nbytes + sum(m.nbytes for m in self.maps)

    def maps_of(self, layer: str) -> np.ndarray:
        return self.maps[self.layers.index(layer)]


@dataclass
class Snapshots:
    """What one run keeps: the start, its epochs' ends (thinned past MAX_KEPT), and the latest live one."""

    kept: list[Snapshot] = field(default_factory=list)
    latest: Snapshot | None = None
    every: int = 1                         # the epochs between two kept ones, once thinned

    def add(self, snapshot: Snapshot) -> None:
        self.latest = snapshot
        if snapshot.kind == "live":
            return
        if self.kept and self.kept[-1].kind == "epoch" and self.kept[-1].epoch % self.every:
            self.kept.pop()  # kept only as the last so far: this one is later
        self.kept.append(snapshot)
        while len(self.kept) > MAX_KEPT:
            self.every *= 2
            last = self.kept[-1]
            self.kept = [s for s in self.kept if s.kind == "start" or s.epoch % self.every == 0 or s is last]


class Camera:
    """Takes a run's snapshots: built once per run on the network that trains, with the test image."""

    def __init__(self, model: keras.Model, image: np.ndarray, image_index: int = 0):
        chosen = spatial_layers(model)
        if len(chosen) > MAX_LAYERS:  # evenly through the network, its first and last included
            picks = np.unique(np.linspace(0, len(chosen) - 1, MAX_LAYERS).round().astype(int))
            chosen = [chosen[i] for i in picks]
        self.first = next((layer for layer in model.layers if isinstance(layer, layers.Conv2D)), None)
        self.layers = tuple(layer.name for layer in chosen)
        self.probe = keras.Model(model.input, [layer.output for layer in chosen]) if chosen else None
        self.image, self.image_index = np.asarray(image)[None], image_index
        self.snapshots = Snapshots()
        self.took = 0.0                    # seconds the last snapshot took
        self.last = -math.inf              # when the last live one was taken (time.monotonic)

    def live_due(self) -> bool:
        now = time.monotonic()
        return now - self.last >= max(LIVE_SECONDS, self.took / COST_SHARE)

    def take(self, kind: str, at: float, epoch: int) -> Snapshot:
        began = time.perf_counter()
        outputs = [] if self.probe is None else self.probe(self.image, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        arrays = [np.asarray(keras.ops.convert_to_numpy(o))[0] for o in outputs]
        kernel = (np.zeros((0, 1, 1, 1), np.uint8) if self.first is None else
                  np.moveaxis(np.asarray(keras.ops.convert_to_numpy(self.first.kernel)), -1, 0)[:MAX_FILTERS])
        snapshot = Snapshot(kind, float(at), int(epoch), _bytes(kernel, axes=(1, 2, 3)), self.layers,
                            tuple(_picture(a) for a in arrays),
                            tuple(tuple(int(d) for d in a.shape) for a in arrays), self.image_index)
        self.took = time.perf_counter() - began
        if kind == "live":
            self.last = time.monotonic()
        self.snapshots.add(snapshot)
        return snapshot


def _picture(output: np.ndarray) -> np.ndarray:
    """A layer's (h, w, channels) output as its first maps in bytes: each map scaled on its own, or, where a
    map is one pixel (LeNet's C5), the pixels scaled together, so that they still tell the channels apart."""
    maps = _shrink(np.moveaxis(output, -1, 0)[:MAX_CHANNELS])
    return _bytes(maps, axes=(0, 1, 2) if maps.shape[1:] == (1, 1) else (1, 2))


def _shrink(maps: np.ndarray) -> np.ndarray:
    """(channels, h, w) to at most MAX_SIDE a side, each output pixel the mean of the block it covers."""
    factor = math.ceil(max(maps.shape[1:]) / MAX_SIDE)
    if factor <= 1:
        return maps
    c, h, w = maps.shape
    h2, w2 = h // factor, w // factor
    if not h2 or not w2:
        return maps[:, ::factor, ::factor]
    return maps[:, :h2 * factor, :w2 * factor].reshape(c, h2, factor, w2, factor).mean(axis=(2, 4))


def _bytes(values: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Each slice along the first axis scaled on its own to 0-255: a picture of its pattern, not its size."""
    values = np.asarray(values, np.float32)
    if values.size == 0:
        return values.astype(np.uint8)
    low, high = values.min(axis=axes, keepdims=True), values.max(axis=axes, keepdims=True)
    return np.round((values - low) / np.maximum(high - low, 1e-12) * 255).astype(np.uint8)


def encode(snapshots: list[Snapshot]) -> bytes:
    """Snapshots as the bytes of one .npz of plain arrays and a JSON index."""
    arrays, index = {}, []
    for i, s in enumerate(snapshots):
        arrays[f"f{i}"] = s.filters
        for j, m in enumerate(s.maps):
            arrays[f"m{i}_{j}"] = m
        index.append({"kind": s.kind, "at": s.at, "epoch": s.epoch, "layers": list(s.layers),
                      "shapes": [list(x) for x in s.shapes], "image": s.image})
    arrays["index"] = np.frombuffer(json.dumps(index).encode(), np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def decode(data: bytes) -> list[Snapshot]:
    """What `encode` wrote; arrays only (no pickles), uint8 only."""
    with np.load(io.BytesIO(data), allow_pickle=False) as saved:
        index = json.loads(saved["index"].tobytes().decode())
        found = []
        for i, s in enumerate(index):
            maps = tuple(_uint8(saved[f"m{i}_{j}"], 3) for j in range(len(s["layers"])))
            found.append(Snapshot(s["kind"] if s["kind"] in KINDS else "live", float(s["at"]), int(s["epoch"]),
                                  _uint8(saved[f"f{i}"], 4), tuple(map(str, s["layers"])), maps,
                                  tuple(tuple(int(d) for d in x) for x in s["shapes"]), int(s["image"])))
    return found


def _uint8(array: np.ndarray, ndim: int) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim != ndim:
        raise ValueError(f"a snapshot's array is {array.dtype} with {array.ndim} axes")
    return array
