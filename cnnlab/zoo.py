"""The model zoo: the lecture's Keras Applications table, counted and timed here, and pretrained predictions.

Counting builds each network without weights (no memory; see `architectures.without_weights`).
Timing runs the real network, so it runs in a child process: the memory it takes (VGG19 briefly
needs over 1 GB to initialise its weights) goes back to the system the moment it ends, and the
server's own process never holds it. Timings are cached on disk for this machine.
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from . import memory
from .architectures import ModelConfig, build_model
from .architectures.applications import APPLICATIONS, Application, get_application
from .cost import RUNTIME_BYTES
from .data import as_images
from .errors import LabError, Text
from .images import MAX_PIXELS, read_image
from .inference import predict_proba
from .layer_table import layer_table
from .pretrained import top_classes

TIMING_BATCH = 4           # images per timed call: small enough for a 2-core server
TIMING_REPEATS = 3         # the best of these, after one warm-up call
TIMING_TIMEOUT_S = 600
INIT_FACTOR = 2.5          # bytes held while Keras initialises or loads weights, per byte of weights
_counting = threading.Lock()
_counts: dict = {}         # key -> Counted, for the life of the server


@dataclass(frozen=True)
class Counted:
    """What the network built here with weights=None says about itself."""

    params: int
    weight_layers: int      # layers holding weights: the documentation's "depth"
    longest_path: int       # weight layers on the longest input-to-output path
    layers: int             # every Keras layer, activations and merges included
    weights_mib: float      # float32 weights, in MiB

    def to_dict(self) -> dict:
        return asdict(self)


def counted(key: str) -> Counted:
    """Counted once per server (NASNetLarge's 1,041 layers take a few seconds), one model at a time."""
    app = get_application(key)
    with _counting:
        if key not in _counts:
            table = layer_table(app.architecture)
            _counts[key] = Counted(table.total_params, table.weight_layers, table.longest_path(),
                                   len(table.rows) - 1, round(table.total_params * 4 / 2**20, 1))
        return _counts[key]


def count_all(progress=None) -> dict[str, Counted]:
    """Count every model (about 30 s on two cores, no weight memory); `progress(i, n, name)` follows it."""
    for i, (key, app) in enumerate(APPLICATIONS.items()):
        if progress is not None:
            progress(i, len(APPLICATIONS), app.name)
        counted(key)
    return dict(_counts)


def disagreements(app: Application, ours: Counted) -> list[Text]:
    """Where our count differs from the documentation's row, and why; empty when they agree."""
    doc, notes = app.documented, []
    if round(ours.params / 1e6, 1) != doc.params_m:
        notes.append(Text("zoo.params_differ", ours=ours.params, documented=str(doc.params_m)))
    if ours.weight_layers != doc.depth:
        notes.append(Text("zoo.depth_differs", ours=ours.weight_layers, documented=doc.depth))
    return notes


def zoo_rows(timings: dict[str, float] | None = None, lang: str = "en") -> list[dict]:
    """One row per model: the documentation's numbers, ours where counted, and this server's timing;
    the notes in `lang`."""
    timings = timings if timings is not None else cached_timings()
    rows = []
    for key, app in APPLICATIONS.items():
        doc, ours = app.documented, _counts.get(key)
        rows.append({"model": app.name, "architecture": app.architecture, "year": app.year,
                     "size_mb": doc.size_mb, "top1": doc.top1, "top5": doc.top5, "params_m": doc.params_m,
                     "depth": doc.depth, "cpu_ms": doc.cpu_ms, "gpu_ms": doc.gpu_ms,
                     "params_here": ours.params if ours else None,
                     "depth_here": ours.weight_layers if ours else None,
                     "longest_path_here": ours.longest_path if ours else None,
                     "cpu_ms_per_image_here": timings.get(key),
                     "agrees": (not disagreements(app, ours)) if ours else None,
                     "notes": "; ".join(n.in_language(lang) for n in disagreements(app, ours)) if ours else ""})
    return rows


def cache_dir() -> Path:
    return Path(os.environ.get("CNNLAB_CACHE_DIR") or Path.home() / ".cache" / "cnnlab")


def machine() -> str:
    """Timings are only reused on the same kind of machine and software."""
    return f"{platform.machine()} {os.cpu_count()} cpus, keras {keras.__version__} {keras.backend.backend()}"


def _timings_file() -> Path:
    return cache_dir() / "zoo_cpu_ms.json"


def cached_timings() -> dict[str, float]:
    try:
        data = json.loads(_timings_file().read_text())
    except (OSError, ValueError):
        return {}
    return data.get("timings", {}) if data.get("machine") == machine() else {}


def timing_memory(key: str) -> int:
    """Bytes a timing process needs: the runtime, the weights while they are initialised, a batch's activations."""
    ours = counted(key)
    table = layer_table(get_application(key).architecture)
    return int(RUNTIME_BYTES + ours.params * 4 * INIT_FACTOR + TIMING_BATCH * table.total_activations * 4)


def measure_cpu_ms(key: str) -> float:
    """Milliseconds per image for one forward pass on this server, measured once and cached on disk."""
    app = get_application(key)
    known = cached_timings()
    if key in known:
        return known[key]
    memory.require(timing_memory(key), Text("errors.what_timing", name=app.name), Text("errors.timing_instead"))
    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run([sys.executable, "-m", "cnnlab.zoo", "time", key], cwd=root, capture_output=True,
                              text=True, timeout=TIMING_TIMEOUT_S, env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"})
    except subprocess.TimeoutExpired:
        raise LabError("timing_timeout", name=app.name, minutes=str(TIMING_TIMEOUT_S // 60)) from None
    if done.returncode != 0:
        raise LabError("timing_failed", name=app.name, reason=(done.stderr.strip().splitlines() or ["-"])[-1])
    ms = float(json.loads(done.stdout.strip().splitlines()[-1])["cpu_ms_per_image"])
    _save_timing(key, ms)
    return ms


def _save_timing(key: str, ms: float) -> None:
    timings = cached_timings() | {key: round(ms, 2)}
    path = _timings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"machine": machine(), "timings": timings}, indent=1))
    os.replace(temporary, path)


def _time_here(key: str) -> float:
    """Runs in the child process: build with random weights, warm up once, best of TIMING_REPEATS."""
    app = get_application(key)
    model = build_model(ModelConfig(app.architecture))
    images = np.random.default_rng(0).integers(0, 256, (TIMING_BATCH, app.input_size, app.input_size, 3), np.uint8)
    model(images, training=False)
    best = float("inf")
    for _ in range(TIMING_REPEATS):
        start = time.perf_counter()
        np.asarray(model(images, training=False))
        best = min(best, time.perf_counter() - start)
    return best / TIMING_BATCH * 1000


def pretrained_memory(key: str) -> int:
    ours = counted(key)
    table = layer_table(get_application(key).architecture)
    return int(ours.params * 4 * INIT_FACTOR + table.total_activations * 4 * 2)


def load_pretrained(key: str):
    """The ImageNet classifier with Keras's pretrained weights (raises WeightsUnavailable offline,
    and a ValueError when the server has too little memory free for it)."""
    app = get_application(key)
    memory.require(pretrained_memory(key), Text("errors.what_pretrained", name=app.name),
                   Text("errors.pretrained_instead"))
    return build_model(ModelConfig(app.architecture, knobs={"weights": "imagenet"}))


def classify(model, picture: bytes | np.ndarray, k: int = 5,
             name: str | None = None) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """A photo (PNG/JPEG bytes, or an RGB array of any size) resized to what the model takes, and
    its k most likely ImageNet classes; the model does its own preprocessing. `name`: the file's
    name, for a refusal to say which file it means."""
    if isinstance(picture, (bytearray, memoryview)):
        picture = bytes(picture)
    if not isinstance(picture, bytes):
        try:
            array = np.asarray(picture)
        except (TypeError, ValueError):
            array = np.asarray(None)
        if array.ndim == 3 and array.shape[-1] == 4:
            array = array[..., :3]  # RGBA: the photo without its transparency
        if array.ndim not in (2, 3):
            raise LabError("photo_shape", shape=str(array.shape))
        if array.shape[0] * array.shape[1] > MAX_PIXELS:
            raise LabError("image_pixels", name=Text("errors.the_upload"), size=f"{array.shape[1]}x{array.shape[0]}",
                           limit=str(MAX_PIXELS // 1_000_000))
        array = as_images((array[..., None] if array.ndim == 2 else array)[None], "photo")[0]
        encoded = io.BytesIO()
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(encoded, format="PNG")
        picture = encoded.getvalue()
    image = read_image(picture, tuple(model.input_shape[1:]), name=name)
    return image, top_classes(predict_proba(model, image)[0], k)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "time":
        sys.exit("usage: python -m cnnlab.zoo time <model key>")
    print(json.dumps({"model": sys.argv[2], "cpu_ms_per_image": _time_here(sys.argv[2])}))
