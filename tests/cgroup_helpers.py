"""A real memory cgroup for tests that need the kernel to enforce a limit, as a classroom server meets it.

    with memory_cgroup(2700) as group:             # skips the test where the machine does not allow it
        subprocess.run(group.command([sys.executable, "-m", "cnnlab", ...]))

The group is made inside this process's own memory cgroup (a nested group, like systemd's
`MemoryMax=` or a container without a cgroup namespace); making one needs root and a writable
memory controller (cgroup v1, or v2 with the memory controller delegated). Whatever runs in it is
ended and the group removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnnlab import memory


@dataclass(frozen=True)
class MemoryCgroup:
    path: Path
    version: int
    limit_bytes: int

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside the group: a shell joins it, then becomes the command (same pid)."""
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs"), *argv]

    def pids(self) -> list[int]:
        try:
            return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []


def unavailable() -> str | None:
    """Why a memory cgroup cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "making a memory cgroup needs root"
    group = memory.own_cgroup()
    if group is None:
        return "no memory cgroup controller is mounted"
    parent = _parent(group)
    if not os.access(parent, os.W_OK):
        return f"the memory cgroup {parent} is not writable"
    if group.version == 2 and "memory" not in _text(parent / "cgroup.subtree_control").split():
        return f"the memory controller is not enabled for the groups below {parent}"
    return None


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@contextlib.contextmanager
def memory_cgroup(limit_mb: int):
    """A child memory cgroup limited to `limit_mb` MB; skips the calling test where none can be made."""
    if reason := unavailable():
        pytest.skip(reason)
    group = memory.own_cgroup()
    path = _parent(group) / f"cnnlab-test-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError as error:
        pytest.skip(f"cannot make a memory cgroup in {path.parent}: {error.strerror}")
    limit = limit_mb * 2**20
    try:
        (path / ("memory.max" if group.version == 2 else "memory.limit_in_bytes")).write_text(str(limit))
        yield MemoryCgroup(path, group.version, limit)
    finally:
        _remove(MemoryCgroup(path, group.version, limit))


def _parent(group: memory.Cgroup) -> Path:
    """Where the new group goes: v1 takes a child of this process's own group; v2 allows controllers
    only in groups without processes of their own, so it takes a sibling."""
    return group.directory if group.version == 1 or group.directory == group.top else group.directory.parent


def _remove(group: MemoryCgroup) -> None:
    for pid in group.pids():  # only what the test started in its own group
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        try:
            group.path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # busy until its last process has gone
            time.sleep(0.1)
    group.path.rmdir()
