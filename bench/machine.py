"""What both benchmarks record about the machine they ran on."""

from __future__ import annotations

from importlib import metadata


def package_version(*distributions: str) -> str | None:
    """The installed version of the first of these distributions that is present."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return None
