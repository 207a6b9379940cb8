"""What every benchmark records about the machine it ran on, and the code it measured."""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_version(*distributions: str) -> str | None:
    """The installed version of the first of these distributions that is present."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return None


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
            "platform": platform.platform(), "python": platform.python_version(),
            "streamlit": package_version("streamlit"), "keras": package_version("keras"),
            "tensorflow": package_version("tensorflow", "tensorflow-cpu"), "numpy": package_version("numpy"),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def _git(*args: str) -> str | None:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return done.stdout.rstrip() if done.returncode == 0 else None


def source() -> dict:
    """The commit measured, and the files that differed from it (the pages are read from disk at every run)."""
    changes = _git("status", "--porcelain")
    diff = _git("diff", "HEAD", "--", ".", ":(exclude)*.json") or ""
    return {"commit": _git("rev-parse", "--short", "HEAD"),
            "uncommitted": [line for line in (changes or "").splitlines() if not line.endswith(".json")],
            "diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:12] if diff else None}


def commit() -> str | None:
    """The commit measured, in one word: with "+changes" when tracked files differ from it."""
    head = _git("rev-parse", "--short", "HEAD")
    return head + ("+changes" if _git("status", "--porcelain", "--untracked-files=no") else "") if head else None
