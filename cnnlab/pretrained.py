"""Pretrained ImageNet weights: found in Keras's cache, downloaded once, or explained when neither works.

Files live where Keras keeps them, `$KERAS_HOME/models` (default `~/.keras/models`), under
Keras's own names, so weights Keras downloaded before are found, and a file downloaded by hand
on another machine can simply be placed there. Only weights are read from these files, into a
network cnnlab builds itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import checks
from .errors import LabError, Text

if TYPE_CHECKING:  # for the hints only: cnnlab.architectures reads this module
    from .architectures.applications import Application, WeightsFile

DOWNLOAD_TIMEOUT_S = 20          # per network read: an offline server answers at once or not at all
_CLASS_INDEX = Path(__file__).parent / "bundled" / "imagenet_class_index.json"
_downloads = threading.Lock()    # one download at a time: two learners asking for VGG19 fetch it once


class WeightsUnavailable(LabError):
    """The weights are not on this machine and could not be downloaded; the message says how to get them."""


def keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def cached_path(file: WeightsFile) -> Path:
    return keras_home() / "models" / file.file_name


def weights_path(app: Application, top: bool = True) -> Path:
    """The local path of `app`'s ImageNet weights (with or without its classifier), downloading them once."""
    file = app.top if top else app.no_top
    path = cached_path(file)
    with _downloads:
        if not path.is_file():
            try:
                _download(file, path)
            except urllib.error.URLError as problem:  # no network, no name server, refused, timed out
                reason = Text("errors.no_connection", host=urllib.parse.urlsplit(file.url).netloc,
                              reason=str(problem.reason))
                raise missing(app, top, reason) from None
            except (OSError, ValueError) as problem:
                raise missing(app, top, problem) from None
    return path


def missing(app: Application, top: bool, problem) -> WeightsUnavailable:
    file = app.top if top else app.no_top
    return WeightsUnavailable("weights_missing" if top else "base_weights_missing", name=app.name,
                              problem=problem if isinstance(problem, Text) else str(problem), url=file.url,
                              size=str(app.documented.size_mb), path=str(cached_path(file)))


def _download(file: WeightsFile, path: Path) -> None:
    """Stream `file` into `path` through a temporary file, checking Keras's MD5 where it has one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5()
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(file.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if file.md5 and digest.hexdigest() != file.md5:
            raise LabError("damaged_download", found=digest.hexdigest(), expected=file.md5)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


@cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet class names, in the models' output order (Keras's imagenet_class_index.json,
    bundled so that no download is needed)."""
    index = json.loads(_CLASS_INDEX.read_text())
    return tuple(index[str(i)][1].replace("_", " ") for i in range(len(index)))


def top_classes(probabilities: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
    """The k most likely ImageNet classes of one image's probabilities, most likely first."""
    names = imagenet_class_names()
    probabilities = checks.numbers(probabilities, "probabilities", finite=False).reshape(-1)
    if len(probabilities) != len(names):
        raise LabError("pretrained.count", classes=str(len(names)), received=str(len(probabilities)))
    if not np.isfinite(probabilities).all():
        raise LabError("pretrained.not_finite")
    k = checks.whole(k, "k", 1)
    order = np.argsort(probabilities)[::-1][:k]
    return [(names[i], float(probabilities[i])) for i in order]
