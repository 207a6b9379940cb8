"""Learners' workspaces: every run kept on disk, so that a reload, a second tab or a restarted server
loses nothing of a finished epoch.

    <data folder>/index.sqlite3          the index (SQLite, WAL): workspaces, their runs and how each stands
    <data folder>/runs/<n>/bundle.zip    run n as it stood at its last finished epoch, or as it ended (`bundle`)
    <data folder>/runs/<n>/predictions.npz  its predicted class of every test image, at the bundle's epoch
    <data folder>/runs/<n>/snapshots.npz    its network at its start and epochs' ends (cnnlab.snapshots)
    <data folder>/own/<key>/             the workspace's own classes and the splits its runs trained on (`owndata`)

The data folder is `CNNLAB_DATA_DIR`, else `cnnlab` in the user's cache folder (`XDG_CACHE_HOME`, else
`~/.cache`). One server uses one data folder: when it starts, the runs the index still lists as
waiting or training were cut short by the last server's end, and are marked interrupted.

A workspace is named by a token of 192 random bits (`secrets`) that only the learner's link carries.
The index keeps the token's SHA-256, never the token, and no token or name a learner sends ever
becomes part of a path: run folders are numbered by the index. A run's read-only link carries a
token of its own, which opens that run and nothing else.

Every file is written beside its final name and renamed over it (`write_atomic`), so a crash at any
moment leaves the previous version whole. Finished runs' models are read from disk when a page needs
one, and a few are held for everyone (`cached_models`); the rest take no memory.

Limits (`.streamlit/classroom.toml`): `kept_runs` and `workspace_mb` per workspace, `server_mb` for all
of them, and `workspace_days` unused before a workspace goes. What makes room goes oldest first, and
the index remembers what was removed and why, for the learner's next visit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import i18n, snapshots
from .bundle import Packed, read_bundle, write_bundle
from .classroom import PoolSettings
from .errors import LabError, Text, in_language
from .files import write_atomic
from .inference import Collapse
from .owndata import OwnData
from .runner import BackgroundRun, RunStatus, curves
from .snapshots import Snapshot
from .training import History, Progress, Run, TrainConfig

TOKEN_BYTES = 24                      # 192 bits, written in 32 URL-safe characters
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
EXPIRE_EVERY_SECONDS = 3600           # unused workspaces are looked for at most this often, as new ones are made
SEEN_EVERY_SECONDS = 60               # a workspace's "last seen" is written at most this often per workspace
SCHEMA = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS workspaces (
    key TEXT PRIMARY KEY,             -- SHA-256 of the token
    created REAL NOT NULL,
    seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace TEXT NOT NULL REFERENCES workspaces(key) ON DELETE CASCADE,
    share TEXT NOT NULL UNIQUE,       -- the token of its read-only link
    label TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,             -- TrainConfig.to_dict(), as JSON
    epochs_done INTEGER NOT NULL DEFAULT 0,
    planned INTEGER NOT NULL DEFAULT 0, -- the epochs it is to reach, a continued run's earlier ones included
    bytes INTEGER NOT NULL DEFAULT 0, -- its folder on disk
    created REAL NOT NULL,
    seen REAL NOT NULL,               -- the last time it changed
    outcome TEXT NOT NULL DEFAULT '{}' -- how it ended: error, stop reason, notes, collapse, as JSON
);
CREATE INDEX IF NOT EXISTS runs_of ON runs(workspace, id);
CREATE TABLE IF NOT EXISTS notes (
    workspace TEXT NOT NULL REFERENCES workspaces(key) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,              -- JSON: what a page keeps for the workspace (a lesson's runs)
    PRIMARY KEY (workspace, name)
);
CREATE TABLE IF NOT EXISTS removed (
    workspace TEXT NOT NULL,
    run INTEGER NOT NULL,
    label TEXT NOT NULL,
    reason TEXT NOT NULL,             -- kept_runs, workspace_mb or server_mb
    at REAL NOT NULL
);
"""


def data_dir() -> Path:
    """Where the lab keeps its learners' work: `CNNLAB_DATA_DIR`, else the user's cache folder."""
    chosen = os.environ.get("CNNLAB_DATA_DIR")
    if chosen:
        return Path(chosen).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnlab"


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def well_formed(token) -> bool:
    """A token as `new_token` writes them; anything else (a path, a very long or unicode string) is not one."""
    return isinstance(token, str) and _TOKEN.fullmatch(token) is not None


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class Saved:
    """A text as it read in every language when it was saved: a run's error, stop reason or note."""

    def __init__(self, texts: dict):
        self.texts = {str(lang): str(text) for lang, text in texts.items()} if isinstance(texts, dict) else {}

    @classmethod
    def of(cls, thing) -> Saved | None:
        return None if thing is None else cls({lang: in_language(thing, lang) for lang in i18n.LANGUAGES})

    def in_language(self, lang: str) -> str:
        return self.texts.get(lang) or self.texts.get(i18n.FALLBACK) or ""

    def __str__(self) -> str:
        return self.in_language(i18n.FALLBACK)


@dataclass(frozen=True)
class Removed:
    """A run that made room for newer ones: `reason` is the setting it made room under."""

    run: int
    label: str
    reason: str
    at: float


@dataclass(eq=False)
class StoredRun:
    """A run as its workspace keeps it, for the pages: the same things a page reads of a BackgroundRun.
    Its curves are read from its bundle, and its model (`run`) through the store's bounded cache."""

    store: Store
    id: int
    label: str
    status: RunStatus
    config: TrainConfig
    epochs_done: int
    planned: int
    size: int
    created: float
    changed: float
    share: str
    outcome: dict

    @property
    def active(self) -> bool:
        return self.status.active

    @property
    def saved(self) -> bool:
        """Its folder holds a bundle: what it learnt is on disk."""
        return self.size > 0

    @property
    def trained(self) -> bool:
        return self.status.finished and self.saved

    @property
    def run(self) -> Run | None:
        """The run with its model, read from disk the first time any page asks (then held for a while);
        None once it is gone (removed from another tab to make room)."""
        try:
            return self.store.model(self.id) if self.saved else None
        except FileNotFoundError:
            return None

    @property
    def batches(self) -> list[Progress]:
        return self._curves()[0]

    @property
    def epochs(self) -> list[Progress]:
        return self._curves()[1]

    def _curves(self) -> tuple[list[Progress], list[Progress]]:
        """Its curves; an interrupted run's progress counts to the epochs it was to reach. A run whose
        worker died keeps the curves that reached the server, past its last checkpoint."""
        if "curves" in self.outcome:
            batches, epochs = self.outcome["curves"]
            return [Progress(*p) for p in batches], [Progress(*p) for p in epochs]
        if not self.saved:
            return [], []
        try:
            return self.store.curves(self.id, self.planned)
        except FileNotFoundError:  # removed from another tab a moment ago
            return [], []

    @property
    def progress(self) -> Progress | None:
        return (self.batches or self.epochs or [None])[-1]

    @property
    def batches_before(self) -> int:
        return int(self.outcome.get("batches_before", 0))

    @property
    def finished(self) -> float:
        return float(self.outcome.get("finished", self.changed))

    @property
    def error(self) -> Saved | None:
        return _saved(self.outcome.get("error"))

    @property
    def stop_reason(self) -> Saved | None:
        return _saved(self.outcome.get("stop_reason"))

    @property
    def notes(self) -> list[Saved]:
        return [Saved(note) for note in self.outcome.get("notes", [])]

    @property
    def collapse(self) -> Collapse | None:
        found = self.outcome.get("collapse")
        return Collapse(int(found[0]), found[1], float(found[2])) if found else None

    @property
    def snapshots(self) -> list[Snapshot]:
        try:
            return self.store.snapshots(self.id)
        except FileNotFoundError:
            return []

    @property
    def latest_snapshot(self) -> Snapshot | None:
        return (self.snapshots or [None])[-1]

    def touch(self) -> None:
        """Nothing trains here to be kept alive."""

    def stop(self, reason=None) -> None:
        """Nothing trains here to stop."""


def _saved(texts) -> Saved | None:
    return Saved(texts) if texts else None


_OPEN: dict[Path, Store] = {}
_OPENING = threading.Lock()


def open_store(root: str | Path, settings: PoolSettings | None = None) -> Store:
    """The store of a data folder, one per process: opening it again (Streamlit clearing its caches, say)
    finds the same runs training, rather than taking them for a dead server's."""
    root = Path(root).resolve()
    with _OPENING:
        if root not in _OPEN:
            _OPEN[root] = Store(root, settings)
        elif settings is not None:
            _OPEN[root].settings = settings  # the classroom's file, read again
        return _OPEN[root]


class Store:
    """The workspaces of one data folder: the index, the run folders and a few models held in memory.
    It is the training pool's Keeper: runs get their numbers here and are saved here as they train."""

    def __init__(self, root: str | Path, settings: PoolSettings | None = None):
        self.root = Path(root)
        self.settings = settings or PoolSettings()
        (self.root / "runs").mkdir(parents=True, exist_ok=True)
        self._index = self.root / "index.sqlite3"
        with contextlib.closing(self._connect()) as db:
            db.executescript(SCHEMA)
        self._held: OrderedDict[tuple, Run] = OrderedDict()       # (run, bundle's mtime) -> the run with its model
        self._curves: OrderedDict[tuple, tuple] = OrderedDict()   # (run, bundle's mtime) -> its curves
        self._lock = threading.Lock()
        self._reading = threading.Lock()  # one bundle read at a time: thirty tabs opening one link read it once
        self._seen: dict[str, float] = {}
        self._expired_at = 0.0
        self._changes = 0                 # writes so far: what was read before the last one is read again
        self._answers: dict[tuple, tuple[int, object]] = {}
        self._made: dict[tuple, StoredRun] = {}  # a row as the run it describes (its settings parsed once)
        self.interrupted = self._recover()
        self.expire()

    # -- the index ------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._index, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=30000")
        return db

    @contextlib.contextmanager
    def _write(self):
        """One transaction that takes the index's write lock at once, so two writers never interleave."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            with self._lock:
                self._changes += 1
            db.close()

    def _rows(self, sql: str, *args) -> list[tuple]:
        """The rows of a query. Every tab asks for its workspace's runs every few seconds, and the index
        changes only when a run does (at most once an epoch), so an answer is kept until the next write."""
        with self._lock:
            changes = self._changes
            kept = self._answers.get((sql, args))
            if kept is not None and kept[0] == changes:
                return kept[1]
        with contextlib.closing(self._connect()) as db:
            rows = db.execute(sql, args).fetchall()
        with self._lock:
            if self._changes == changes:
                if len(self._answers) > 4096:
                    self._answers.clear()
                self._answers[(sql, args)] = (changes, rows)
        return rows

    def _recover(self) -> int:
        """Runs the index lists as waiting or training belonged to a server that has ended: interrupted.
        A folder the index does not name (its run removed while it was being written) goes."""
        with self._write() as db:
            count = db.execute("UPDATE runs SET status=?, seen=? WHERE status IN (?, ?)",
                               (RunStatus.INTERRUPTED, time.time(), RunStatus.QUEUED, RunStatus.RUNNING)).rowcount
            known = {str(row[0]) for row in db.execute("SELECT id FROM runs")}
        for folder in (self.root / "runs").iterdir():
            if folder.name not in known:
                shutil.rmtree(folder, ignore_errors=True)
            for partial in folder.glob(".*.part"):  # a write the last server did not finish
                partial.unlink(missing_ok=True)
        return count

    # -- workspaces -----------------------------------------------------------------------------------

    def create_workspace(self) -> str:
        """A new workspace; its token is the only way back to it."""
        if time.time() - self._expired_at > EXPIRE_EVERY_SECONDS:
            self.expire()
        token = new_token()
        now = time.time()
        with self._write() as db:
            db.execute("INSERT INTO workspaces VALUES (?, ?, ?)", (_key(token), now, now))
        return token

    def exists(self, token) -> bool:
        return well_formed(token) and bool(self._rows("SELECT 1 FROM workspaces WHERE key=?", _key(token)))

    def seen(self, token: str) -> None:
        """A tab of the workspace is open (written at most once a minute: expiry counts days)."""
        key, now = _key(token), time.time()
        if now - self._seen.get(key, 0.0) < SEEN_EVERY_SECONDS:
            return
        self._seen[key] = now
        with self._write() as db:
            db.execute("UPDATE workspaces SET seen=? WHERE key=?", (now, key))

    def remember(self, token: str, name: str, value) -> None:
        """Something a page keeps for the workspace, beyond its runs (which runs a lesson started)."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO notes VALUES (?, ?, ?)", (_key(token), name, json.dumps(value)))

    def recall(self, token: str, name: str, default=None):
        rows = self._rows("SELECT value FROM notes WHERE workspace=? AND name=?", _key(token), name)
        return json.loads(rows[0][0]) if rows else default

    def delete_workspace(self, token: str) -> list[int]:
        """The workspace and every run in it, gone; returns the runs' numbers (a caller stops the live ones)."""
        with self._write() as db:
            ids = self._delete(db, _key(token))
        self._drop(ids)
        shutil.rmtree(self._own_folder(_key(token)), ignore_errors=True)
        return ids

    def own(self, token: str) -> OwnData:
        """The workspace's own classes, kept in a folder named by the workspace's key (never by its token)."""
        return OwnData(self._own_folder(_key(token)), self.settings.own_images)

    def _own_folder(self, key: str) -> Path:
        return self.root / "own" / key[:32]

    @staticmethod
    def _delete(db, key: str) -> list[int]:
        """A workspace's rows, all of them; the numbers of its runs, whose folders go next."""
        ids = [row[0] for row in db.execute("SELECT id FROM runs WHERE workspace=?", (key,))]
        for table, column in (("runs", "workspace"), ("removed", "workspace"), ("notes", "workspace"),
                              ("workspaces", "key")):
            db.execute(f"DELETE FROM {table} WHERE {column}=?", (key,))
        return ids

    def expire(self) -> int:
        """Workspaces no tab has opened for `workspace_days`, removed with their runs (never one with a run
        waiting or training); how many. Called when the store opens, and then at most hourly."""
        self._expired_at = time.time()
        before = time.time() - self.settings.workspace_days * 86400
        with self._write() as db:
            keys = [row[0] for row in db.execute(
                "SELECT key FROM workspaces WHERE seen < ? AND key NOT IN "
                "(SELECT workspace FROM runs WHERE status IN (?, ?))", (before, RunStatus.QUEUED, RunStatus.RUNNING))]
            ids = [run_id for key in keys for run_id in self._delete(db, key)]
        self._drop(ids)
        for key in keys:
            shutil.rmtree(self._own_folder(key), ignore_errors=True)
        return len(keys)

    # -- runs -----------------------------------------------------------------------------------------

    def runs(self, token: str) -> list[StoredRun]:
        """The workspace's runs, oldest first."""
        return [self._stored(row) for row in self._rows(f"SELECT {_COLUMNS} FROM runs WHERE workspace=? ORDER BY id",
                                                        _key(token))]

    def shared(self, share) -> StoredRun | None:
        """The run a read-only link names; None for any other token."""
        if not well_formed(share):
            return None
        rows = self._rows(f"SELECT {_COLUMNS} FROM runs WHERE share=?", share)
        return self._stored(rows[0]) if rows else None

    def get(self, run_id: int) -> StoredRun | None:
        rows = self._rows(f"SELECT {_COLUMNS} FROM runs WHERE id=?", int(run_id))
        return self._stored(rows[0]) if rows else None

    def removed(self, token: str, since: float = 0.0) -> list[Removed]:
        """The workspace's runs removed to make room after `since`, newest first."""
        rows = self._rows("SELECT run, label, reason, at FROM removed WHERE workspace=? ORDER BY at DESC, run DESC",
                          _key(token))
        return [Removed(*row) for row in rows if row[3] > since]

    def next_to_remove(self, token: str) -> StoredRun | None:
        """The run that starting one more would remove, when the workspace is at `kept_runs`."""
        finished = [run for run in self.runs(token) if not run.active]
        if len(self.runs(token)) < self.settings.kept_runs or not finished:
            return None
        return finished[0]

    def add(self, workspace: str, config: TrainConfig, label: str, status: RunStatus = RunStatus.QUEUED,
            room: bool = True) -> int:
        """A new run in the workspace (with `room`, its oldest finished runs go first when it is full); its number."""
        key, now = _key(workspace), time.time()
        with self._write() as db:
            if not db.execute("SELECT 1 FROM workspaces WHERE key=?", (key,)).fetchone():
                raise LabError("workspace.gone")
            count = db.execute("SELECT COUNT(*) FROM runs WHERE workspace=?", (key,)).fetchone()[0]
            gone = self._make_room(db, key, "kept_runs", count + 1 - self.settings.kept_runs, None) if room else []
            run_id = db.execute("INSERT INTO runs (workspace, share, label, status, config, planned, created, seen) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (key, new_token(), label, status,
                                                                    json.dumps(config.to_dict()), config.epochs or 0,
                                                                    now, now)).lastrowid
        self._drop(gone)
        (self._folder(run_id)).mkdir(parents=True, exist_ok=True)
        return run_id

    def import_run(self, workspace: str, run: Run, label: str) -> StoredRun:
        """A run trained elsewhere (an uploaded bundle), kept like one trained here. It takes an older
        run's place only once it is on disk: a write that fails removes nothing but itself."""
        status = RunStatus.STOPPED if run.stopped else RunStatus.DONE
        run_id = self.add(workspace, run.config, label, RunStatus.FAILED, room=False)  # not shown as done until saved
        outcome = {"finished": time.time(), "batches_before": len(curves(run.history)[0])}
        if run.stopped:
            outcome["stop_reason"] = Saved.of(Text("runs.stopped_before_saved")).texts
        try:
            self._save(run_id, run, len(run.history.epochs), status, outcome)
        except BaseException:
            self._forget(run_id)
            raise
        key = _key(workspace)
        with self._write() as db:
            count = db.execute("SELECT COUNT(*) FROM runs WHERE workspace=?", (key,)).fetchone()[0]
            gone = self._make_room(db, key, "kept_runs", count - self.settings.kept_runs, run_id)
        self._drop(gone)
        return self.get(run_id)

    def _forget(self, run_id: int) -> None:
        """A run that could not be kept: its row and its folder."""
        with self._write() as db:
            db.execute("DELETE FROM runs WHERE id=?", (run_id,))
        self._remove_files(run_id)

    def started(self, run_id: int) -> None:
        self._update(run_id, status=RunStatus.RUNNING)

    def checkpoint(self, run_id: int, run: Run | Packed, planned: int) -> None:
        """The run at the end of an epoch, on disk before its row says so; `planned`: the epochs it is to
        reach. A run trained in a worker process arrives packed (its bundle's bytes)."""
        self._save(run_id, run, _epochs(run), None, None, planned=planned)

    def ended(self, run_id: int, background: BackgroundRun) -> None:
        """How a run ended, with what it learnt (a run refused before it trained has nothing to keep). A run
        whose worker died has no model to give: its last checkpoint stays, and its curves as they came."""
        outcome = {"finished": background.finished or time.time(), "batches_before": background.batches_before,
                   "error": _texts(background.error), "stop_reason": _texts(background.stop_reason),
                   "notes": [Saved.of(note).texts for note in [*background.notes,
                                                               *(background.run.notes if background.run else [])]],
                   "collapse": None if background.collapse is None else list(dataclasses.astuple(background.collapse))}
        run = background.run
        more = {"planned": background.progress.epochs} if background.progress is not None else {}
        if run is None and background.batches:
            outcome["curves"] = [[dataclasses.astuple(p) for p in background.batches],
                                 [dataclasses.astuple(p) for p in background.epochs]]
        try:
            self._save(run_id, run.packed or run if run else None, run.epochs_completed if run else None,
                       background.status, outcome, **more)
        except (OSError, sqlite3.Error) as error:  # its last checkpoint stays; the row says how it ended
            outcome["notes"].append(Saved.of(Text("runs.not_saved_end", reason=str(error)[:200])).texts)
            self._update(run_id, status=background.status, outcome=json.dumps(outcome))
            raise

    def _save(self, run_id: int, run: Run | Packed | None, epochs: int | None, status: RunStatus | None,
              outcome: dict | None, **more) -> bool:
        """The run's files first (when there is a run), then its row: the index never names what is not on
        disk. False when the run is no longer in the index (its workspace was deleted while it trained)."""
        folder = self._folder(run_id)
        if not self.get(run_id) or not folder.is_dir():
            return False
        if run is not None:
            predictions = run.predictions if isinstance(run, Packed) else run.test_predictions
            if predictions is not None:  # first: a bundle never pairs with a later epoch's predictions
                buffer = io.BytesIO()
                np.savez(buffer, predictions=np.asarray(predictions, dtype=np.int16), epochs=np.int64(_epochs(run)))
                write_atomic(folder / "predictions.npz", buffer.getvalue())
            write_atomic(folder / "bundle.zip",
                         run.bundle if isinstance(run, Packed) else lambda f: write_bundle(run, f, compress=False))
            shots = run.snapshots if isinstance(run, Packed) else snapshots.encode(run.snapshots) if run.snapshots \
                else None
            if shots:
                write_atomic(folder / "snapshots.npz", shots)
        if epochs is not None:  # None: the row's count, as of its last checkpoint, stands
            more = {"epochs_done": epochs, **more}
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        changes = {"bytes": size, **more}
        if status is not None:
            changes["status"] = status
        if outcome is not None:
            changes["outcome"] = json.dumps(outcome)
        if not self._update(run_id, **changes):  # removed while it was being written
            self._remove_files(run_id)
            return False
        if status is not None and status.finished:
            self._within_disk(run_id)
        return True

    def _update(self, run_id: int, **changes) -> bool:
        """The run's row changed; False when there is no such row any more."""
        columns = ", ".join(f"{name}=?" for name in changes)
        with self._write() as db:
            return db.execute(f"UPDATE runs SET {columns}, seen=? WHERE id=?",
                              (*changes.values(), time.time(), run_id)).rowcount > 0

    def _within_disk(self, keep: int) -> None:
        """The workspace's and the server's disk limits, kept by removing the oldest finished runs."""
        with self._write() as db:
            key = db.execute("SELECT workspace FROM runs WHERE id=?", (keep,)).fetchone()
            if key is None:
                return
            used = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM runs WHERE workspace=?", key).fetchone()[0]
            gone = self._make_room(db, key[0], "workspace_mb", used - self.settings.workspace_bytes, keep, by="bytes")
            total = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM runs").fetchone()[0]
            gone += self._make_room(db, None, "server_mb", total - self.settings.server_bytes, keep, by="bytes")
        self._drop(gone)

    @staticmethod
    def _make_room(db, key: str | None, reason: str, excess: int, keep: int | None, by: str = "count") -> list[int]:
        """Remove the oldest finished runs (of one workspace, or of all with `key` None) until `excess`,
        in runs or in bytes, is made up; each is written down for its learner. Returns their numbers."""
        if excess <= 0:
            return []
        where, args = ("workspace=? AND ", (key,)) if key is not None else ("", ())
        candidates = db.execute(f"SELECT id, workspace, label, bytes FROM runs WHERE {where}status NOT IN (?, ?) "
                                f"AND id != ? ORDER BY id", (*args, RunStatus.QUEUED, RunStatus.RUNNING,
                                                                    -1 if keep is None else keep)).fetchall()
        gone = []
        for run_id, workspace, label, size in candidates:
            if excess <= 0:
                break
            db.execute("DELETE FROM runs WHERE id=?", (run_id,))
            db.execute("INSERT INTO removed VALUES (?, ?, ?, ?, ?)", (workspace, run_id, label, reason, time.time()))
            gone.append(run_id)
            excess -= size if by == "bytes" else 1
        return gone

    def _drop(self, run_ids: list[int]) -> None:
        for run_id in run_ids:
            self._remove_files(run_id)

    def _remove_files(self, run_id: int) -> None:
        shutil.rmtree(self._folder(run_id), ignore_errors=True)
        with self._lock:
            for cache in (self._held, self._curves):
                for key in [k for k in cache if k[0] == run_id]:
                    del cache[key]

    def _folder(self, run_id: int) -> Path:
        return self.root / "runs" / str(int(run_id))

    def bundle_path(self, run_id: int) -> Path:
        return self._folder(run_id) / "bundle.zip"

    def _stored(self, row: tuple) -> StoredRun:
        with self._lock:
            made = self._made.get(row)
        if made is not None:
            return made
        made = self._make(row)
        with self._lock:
            if len(self._made) > 4096:
                self._made.clear()
            self._made[row] = made
        return made

    def _make(self, row: tuple) -> StoredRun:
        run_id, label, status, config, epochs, planned, size, created, seen, share, outcome = row
        return StoredRun(self, run_id, label, RunStatus(status), TrainConfig.from_dict(json.loads(config)), epochs,
                         planned, size, created, seen, share, json.loads(outcome))

    # -- what pages read, from disk ---------------------------------------------------------------------

    def _version(self, run_id: int) -> tuple:
        return run_id, self.bundle_path(run_id).stat().st_mtime_ns

    def model(self, run_id: int) -> Run:
        """The run with its model (without its optimizer), held in memory for every page and tab;
        the least recently used goes once `cached_models` are held."""
        version = self._version(run_id)
        with self._lock:
            if version in self._held:
                self._held.move_to_end(version)
                return self._held[version]
        with self._reading:
            with self._lock:
                if version in self._held:
                    return self._held[version]
            run = self.load(run_id, optimizer=False)
            self._hold(run_id, run, version)
        return run

    def _hold(self, run_id: int, run: Run, version: tuple | None = None) -> None:
        version = version or self._version(run_id)
        with self._lock:
            for key in [k for k in self._held if k[0] == run_id]:
                del self._held[key]
            self._held[version] = run
            while len(self._held) > self.settings.cached_models:
                self._held.popitem(last=False)

    def load(self, run_id: int, optimizer: bool = True) -> Run:
        """The run as its bundle keeps it, read afresh (with its optimizer's state, to train on from)."""
        path = self.bundle_path(run_id)
        run = read_bundle(path.read_bytes(), max_bytes=max(path.stat().st_size, 1), optimizer=optimizer)
        predictions = path.with_name("predictions.npz")
        if predictions.is_file():
            with np.load(predictions, allow_pickle=False) as saved:
                found, epochs = saved["predictions"], int(saved["epochs"])
            if found.ndim == 1 and epochs == run.epochs_completed and run.dataset.get("n_test") in (0, len(found)):
                run.test_predictions = found.astype(np.int64)
        return run

    def snapshots(self, run_id: int) -> list[Snapshot]:
        """A saved run's snapshots (none for a run saved without them); read once per version of the file."""
        path = self._folder(run_id) / "snapshots.npz"
        if not path.is_file():
            return []
        version = (run_id, "snapshots", path.stat().st_mtime_ns)
        with self._lock:
            if version in self._curves:
                return self._curves[version]
        try:
            found = snapshots.decode(path.read_bytes())
        except (OSError, ValueError, KeyError):  # a damaged file costs the pictures, not the run
            found = []
        with self._lock:
            self._curves[version] = found
            while len(self._curves) > 64:
                self._curves.popitem(last=False)
        return found

    def curves(self, run_id: int, planned: int = 0) -> tuple[list[Progress], list[Progress]]:
        """A saved run's curves, read from its bundle's history alone (no model is built); `planned`
        as in `runner.curves`."""
        version = (*self._version(run_id), planned)
        with self._lock:
            if version in self._curves:
                self._curves.move_to_end(version)
                return self._curves[version]
        with zipfile.ZipFile(self.bundle_path(run_id)) as zf:
            record = json.loads(zf.read("run.json"))
        history = record.get("history", {})
        drawn = curves(History(list(history.get("batches", [])), list(history.get("epochs", []))), planned=planned)
        with self._lock:
            self._curves[version] = drawn
            while len(self._curves) > 64:
                self._curves.popitem(last=False)
        return drawn


_COLUMNS = "id, label, status, config, epochs_done, planned, bytes, created, seen, share, outcome"


def _epochs(run: Run | Packed) -> int:
    return run.epochs if isinstance(run, Packed) else run.epochs_completed


def _texts(thing) -> dict | None:
    saved = Saved.of(thing)
    return None if saved is None else saved.texts

