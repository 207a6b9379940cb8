"""What the benchmarks share to measure: peak memory, worker processes, results files, the app under AppTest.

(`machine.py` says what a result was measured on: the machine, the packages and the commit.)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


# ---------------------------------------------------------------- memory

def peak_bytes() -> int:
    """This process's peak resident memory so far; Linux reports ru_maxrss in KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_gb() -> float:
    """This process's peak resident memory so far, in GB (10^9 bytes)."""
    return round(peak_bytes() / 1e9, 3)


def proc_status_bytes(pid: int, field: str) -> int | None:
    """A memory figure of a running process from /proc/PID/status ("VmRSS", "VmHWM", ...), in bytes;
    None once the process has gone or when it has no such line."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) * 1024 for line in text.splitlines() if line.startswith(f"{field}:")), None)


# ---------------------------------------------------------------- one measurement per process

def worker_env() -> dict[str, str]:
    """The environment of a worker process: TensorFlow's start-up chatter off, the repository on the path."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def worker_result(what: str, returncode: int, stdout: str, stderr: str) -> dict:
    """A finished worker's result, the JSON on its last line of output; the bench stops with the worker's
    error output when it failed."""
    if returncode != 0:
        sys.exit(f"{what} failed (exit {returncode}):\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def run_worker(script: str, *args: str, what: str) -> dict:
    """`python SCRIPT --worker ARGS...` in a fresh process, and the result it printed."""
    done = subprocess.run([sys.executable, script, "--worker", *args], env=worker_env(), capture_output=True, text=True)
    return worker_result(what, done.returncode, done.stdout, done.stderr)


# ---------------------------------------------------------------- results

def write_json(path: Path, result: dict, **dump_options) -> Path:
    """Write one run's results (its folder made if need be), as every benchmark's results file is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, **dump_options) + "\n")
    return path


# ---------------------------------------------------------------- the app under Streamlit's AppTest

def open_page(path: str = "streamlit_app.py", timeout_s: float = 120):
    """The app opened on one page by a new learner (a deep link): a fresh session, nothing in its state.
    Not yet run: call `.run()` on it."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=timeout_s)
    if path != "streamlit_app.py":
        at.switch_page(path)
    return at
