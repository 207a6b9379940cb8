"""How much memory this process may still use: what the kernel enforces, not only the machine's RAM.

A classroom server (Streamlit Community Cloud: 0.7 to 2.7 GB for everyone; systemd's `MemoryMax=`;
a container) runs in a memory cgroup; exceeding its limit kills the whole process, every learner's
session with it. Big steps ask `require` first and are refused with a message instead.

The limit that counts is not at the root of the cgroup hierarchy but on the path from this
process's own group (named in /proc/self/cgroup) up to the root: every group on it enforces its
own limit on everything below it, so the group that leaves the least free decides. The machine
itself is the outermost limit. Every path is read under `root`, so tests can build a fake tree.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import LabError, Text

ROOT = Path("/")
NO_LIMIT = 1 << 60  # v1 writes "no limit" as the largest page-aligned number, 9223372036854771712


@dataclass(frozen=True)
class Budget:
    """What this process may still use, and the limit that says so."""

    limit: int       # bytes: the limit of the group (or machine) that leaves the least free
    available: int   # bytes still free under it
    where: str       # that group's directory, or "machine"


@dataclass(frozen=True)
class Cgroup:
    """This process's own memory cgroup: its directory and the top of its hierarchy as mounted here."""

    version: int     # 1 or 2
    directory: Path
    top: Path        # the mount point; the walk up stops here

    def path_up(self) -> list[Path]:
        """The group's directory and each one above it, up to the top, innermost first."""
        return [self.directory, *(p for p in self.directory.parents if p.is_relative_to(self.top))]


def budget(root: Path = ROOT) -> Budget:
    """The tightest of every limited group from this process's own up to the root, and the machine."""
    group = own_cgroup(root)
    levels = [_level(group.version, directory) for directory in group.path_up()] if group else []
    return min([level for level in levels if level] + [_machine(root)], key=lambda level: level.available)


def limit_bytes(root: Path = ROOT) -> int:
    return budget(root).limit


def available_bytes(root: Path = ROOT) -> int:
    return budget(root).available


def require(needed: int, what: Text, instead: Text | None = None, reserve: int = 0) -> None:
    """Raise a learner's error when `needed` bytes, plus `reserve` kept back for everyone else, are
    more than this process may still use."""
    free = available_bytes()
    if needed + reserve > free:
        raise NotEnoughMemory(what, needed, free, limit_bytes(), instead, reserve)


class NotEnoughMemory(LabError):
    """A refusal; `suggestions` are the settings that would fit, as data a page can apply (empty when none)."""

    def __init__(self, what: Text, needed: int, free: int, limit: int, instead: Text | None = None,
                 reserve: int = 0, suggestions=()):
        values = {"what": what, "needed": _gb(needed), "free": _gb(free), "limit": _gb(limit),
                  "instead": instead or Text("errors.memory_later")}
        if reserve:
            super().__init__("memory_reserved", reserve=_gb(reserve), **values)
        else:
            super().__init__("memory", **values)
        self.suggestions = list(suggestions)


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f}"


# --- which group ----------------------------------------------------------------------------------------------

def own_cgroup(root: Path = ROOT) -> Cgroup | None:
    """This process's memory cgroup: v1 when a v1 hierarchy carries the memory controller, else v2."""
    paths = _membership(root)
    for version, path, match in ((1, paths.get("memory"), lambda fs, opts: fs == "cgroup" and "memory" in opts),
                                 (2, paths.get(""), lambda fs, opts: fs == "cgroup2")):
        if path is None:
            continue
        mounts = [(mount_root, point) for fs, opts, mount_root, point in _mounts(root) if match(fs, opts)]
        if mounts:
            return _locate(version, path, mounts, root)
    return None


def _membership(root: Path) -> dict[str, str]:
    """Controller name -> group path from /proc/self/cgroup ("" for the v2 line `0::/path`). When the
    file cannot be read, the hierarchy's root: what a container with its own cgroup namespace sees."""
    text = _text(root / "proc/self/cgroup")
    if text is None:
        return {"memory": "/", "": "/"}
    paths = {}
    for line in text.splitlines():
        number, _, rest = line.partition(":")
        controllers, sep, path = rest.partition(":")
        if sep and path.startswith("/") and (controllers or number == "0"):
            for name in controllers.split(",") if controllers else [""]:
                paths.setdefault(name, path)
    return paths


def _mounts(root: Path) -> list[tuple[str, set[str], str, str]]:
    """(filesystem type, super options, mount's root, mount point) of each cgroup mount in
    /proc/self/mountinfo; when it cannot be read, the usual places (v1's memory controller, else v2)."""
    text = _text(root / "proc/self/mountinfo")
    if text is None:
        usual = [("cgroup", {"memory"}, "/", "/sys/fs/cgroup/memory"), ("cgroup2", set(), "/", "/sys/fs/cgroup")]
        return [mount for mount in usual if (root / mount[3].lstrip("/")).is_dir()][:1]
    mounts = []
    for line in text.splitlines():
        mine, sep, theirs = line.partition(" - ")
        mine, theirs = mine.split(), theirs.split()
        if sep and len(mine) >= 5 and len(theirs) >= 3 and theirs[0] in ("cgroup", "cgroup2"):
            mounts.append((theirs[0], set(theirs[2].split(",")), _unescape(mine[3]), _unescape(mine[4])))
    return mounts


def _locate(version: int, path: str, mounts: list[tuple[str, str]], root: Path) -> Cgroup:
    """The group's directory. A mount shows the hierarchy from its own root (field 4 of mountinfo: a
    container without a cgroup namespace sees only its own part of the host's tree), so the group's
    path is taken relative to it; a path outside every mount's root is seen as the mount itself."""
    for mount_root, point in mounts:
        if PurePosixPath(path).is_relative_to(mount_root):
            relative = PurePosixPath(path).relative_to(mount_root)
            if ".." not in relative.parts:
                top = root / point.lstrip("/")
                return Cgroup(version, top / relative, top)
    top = root / mounts[0][1].lstrip("/")
    return Cgroup(version, top, top)


def _unescape(field: str) -> str:
    """mountinfo writes a space in a path as \\040."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


# --- what one group allows ------------------------------------------------------------------------------------

# limit, usage, and the page cache's total, shared-memory and mapped parts (v1's total_: the group and those below)
_FILES = {1: ("memory.limit_in_bytes", "memory.usage_in_bytes", ("total_cache", "total_shmem", "total_mapped_file")),
          2: ("memory.max", "memory.current", ("file", "shmem", "file_mapped"))}


def _level(version: int, directory: Path) -> Budget | None:
    """A limited group's limit and what is free under it; None for a group without a limit."""
    limit_file, usage_file, cache_keys = _FILES[version]
    limit = _number(directory / limit_file)
    if limit is None or limit >= NO_LIMIT:
        return None
    # The kernel drops page cache before it kills anything, from the active list as well as the
    # inactive one (it ages active pages down as it reclaims), so cache counts as free: counting
    # only inactive_file would miss every file read twice (in a real 2,700 MB group, 1.5 GB read
    # twice was all active). Except: shared memory and tmpfs files sit in the cache but cannot be
    # dropped without swap, and pages mapped into a process are the running server's libraries
    # (TensorFlow's among them), which would fault straight back in; the estimate's runtime counts them.
    stat = _stat(directory / "memory.stat")
    cache, shmem, mapped = (stat.get(key, 0) for key in cache_keys)
    used = max(0, (_number(directory / usage_file) or 0) - max(0, cache - shmem - mapped))
    return Budget(limit, max(0, limit - used), str(directory))  # unreadable usage: the limit still holds


def _machine(root: Path) -> Budget:
    """The machine's RAM and what the kernel says is available in it (cache it can drop included)."""
    info = {}
    for line in (_text(root / "proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        if value.split() and value.split()[0].isdigit():
            info[key] = int(value.split()[0]) * 1024
    if "MemTotal" in info and "MemAvailable" in info:
        return Budget(info["MemTotal"], info["MemAvailable"], "machine")
    page = os.sysconf("SC_PAGE_SIZE")
    return Budget(page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES"), "machine")


def _stat(path: Path) -> dict[str, int]:
    pairs = (line.split() for line in (_text(path) or "").splitlines())
    return {pair[0]: int(pair[1]) for pair in pairs if len(pair) == 2 and pair[1].isdigit()}


def _number(path: Path) -> int | None:
    """A whole number of bytes; None for "max", a missing file or anything odd."""
    text = (_text(path) or "").strip()
    return int(text) if text.isdigit() else None


def _text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
