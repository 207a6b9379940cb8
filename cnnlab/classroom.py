"""How one server is shared by a class: `.streamlit/classroom.toml`, section [classroom].

The app's training pool and the command line's memory check both read it (`classroom_settings`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from . import checks
from .errors import LabError

ENGINES = ("auto", "workers", "threads")


@dataclass(frozen=True)
class PoolSettings:
    """How one server is shared by a class: `.streamlit/classroom.toml`, section [classroom]."""

    max_concurrent_runs: int = 1            # runs training at the same time, server-wide
    max_run_minutes: float = 30             # every run is stopped after this long, whatever its settings
    abandoned_after_seconds: float = 180    # a run whose browser tab has not been seen this long is stopped
    max_bundle_mb: int = 200                # the largest run bundle a learner may upload
    kept_runs: int = 20                     # runs kept per workspace, on disk; beyond it the oldest finished goes
    memory_reserve_mb: int = 400            # kept free when a run is admitted: other learners' pages, uploads, imports
    workspace_mb: int = 500                 # disk one workspace's runs may take; beyond it the oldest finished goes
    server_mb: int = 5000                   # disk all workspaces may take together; beyond it the server's oldest goes
    workspace_days: float = 30              # a workspace no tab has opened for this many days is removed
    cached_models: int = 4                  # finished runs' models held in memory for every page, server-wide
    engine: str = "auto"                    # where runs train: "workers", "threads", or "auto" (see engines.choose)
    worker_min_mb: int = 1200               # "auto" starts workers only when each may have this much memory
    reproducible: bool = False              # workers give bit-identical weights for a seed, at a cost in speed
    own_images: int = 500                   # images a workspace's own classes may hold, all classes together

    def __post_init__(self):
        limits = {"max_concurrent_runs": (1, 64), "max_run_minutes": (0.001, 24 * 60),
                  "abandoned_after_seconds": (0.001, 24 * 3600), "max_bundle_mb": (1, 4096), "kept_runs": (1, 1000),
                  "memory_reserve_mb": (0, 64 * 1024), "workspace_mb": (1, 1024**2), "server_mb": (1, 1024**3),
                  "workspace_days": (0.001, 3650), "cached_models": (1, 64), "worker_min_mb": (200, 1024**2),
                  "own_images": (10, 100_000)}
        object.__setattr__(self, "engine", checks.choice(self.engine, "engine", ENGINES))
        if not isinstance(self.reproducible, bool):
            raise LabError("choice", name="reproducible", choices="true, false", value=checks.shown(self.reproducible))
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if name not in ("max_run_minutes", "abandoned_after_seconds", "workspace_days"):
                value = checks.whole(value, name, low, high)
            else:
                value = checks.number(value, name, low, high)
            object.__setattr__(self, name, value)  # 3.0 in a TOML file is 3

    @property
    def max_run_seconds(self) -> float:
        return self.max_run_minutes * 60

    @property
    def max_bundle_bytes(self) -> int:
        return self.max_bundle_mb * 2**20

    @property
    def memory_reserve_bytes(self) -> int:
        return self.memory_reserve_mb * 2**20

    @property
    def workspace_bytes(self) -> int:
        return self.workspace_mb * 2**20

    @property
    def server_bytes(self) -> int:
        return self.server_mb * 2**20

    @classmethod
    def from_file(cls, path: str | Path) -> PoolSettings:
        """The [classroom] section of a TOML file; a missing file means the defaults."""
        path = Path(path)
        if not path.exists():
            return cls()
        try:
            section = tomllib.loads(path.read_text(encoding="utf-8")).get("classroom", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise LabError("classroom_toml", path=str(path), reason=str(error)) from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise LabError("classroom_unknown", path=str(path), name=repr(unknown[0]), names=", ".join(sorted(known)))
        return cls(**section)


CLASSROOM = Path(__file__).resolve().parents[1] / ".streamlit" / "classroom.toml"


def classroom_settings() -> PoolSettings:
    """The classroom's settings, for the app and the command line alike: the file CNNLAB_CLASSROOM
    names, else the `.streamlit/classroom.toml` beside the package, else the defaults."""
    return PoolSettings.from_file(os.environ.get("CNNLAB_CLASSROOM") or CLASSROOM)
