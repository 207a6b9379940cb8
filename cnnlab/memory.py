"""How much memory this process may still use: the container's limit, not only the machine's RAM.

A classroom server (Streamlit Community Cloud: 0.7 to 2.7 GB for everyone) runs in a cgroup;
exceeding its limit kills the whole process, every learner's session with it. Big steps ask
`require` first and are refused with a message instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import LabError, Text

_CGROUP = Path("/sys/fs/cgroup")


def limit_bytes() -> int:
    """The cgroup's memory limit (v2, then v1), or the machine's RAM when there is none."""
    for path in (_CGROUP / "memory.max", _CGROUP / "memory" / "memory.limit_in_bytes"):
        value = _read(path)
        if value is not None and value < 1 << 60:  # v1 writes "no limit" as a huge number
            return value
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def used_bytes() -> int:
    """Memory in use inside the cgroup (every process in it), or by the whole machine."""
    for path in (_CGROUP / "memory.current", _CGROUP / "memory" / "memory.usage_in_bytes"):
        value = _read(path)
        if value is not None:
            return value
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    kib = lambda key: int(info[key].split()[0]) * 1024  # noqa: E731
    return kib("MemTotal") - kib("MemAvailable")


def available_bytes() -> int:
    return max(0, limit_bytes() - used_bytes())


def require(needed: int, what: Text, instead: Text | None = None) -> None:
    """Raise a learner's error when `needed` bytes are more than this process may still use."""
    free = available_bytes()
    if needed > free:
        raise LabError("memory", what=what, needed=f"{needed / 2**30:.1f}", free=f"{free / 2**30:.1f}",
                       limit=f"{limit_bytes() / 2**30:.1f}", instead=instead or Text("errors.memory_later"))


def _read(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
