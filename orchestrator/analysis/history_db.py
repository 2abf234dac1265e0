"""The local results database: one SQLite file in the cache (history.sqlite), written through
the standard library's sqlite3, read into pandas frames (pandas.read_sql_query on the same
connection; no ORM: three tables and one upsert).

Tables (orchestrator/analysis/history_record.py says what each field is):
  runs     one row per run id (primary key): a run recorded again replaces its rows
  results  (run id, kernel variant, profile, suite): kernel cache key, patches and their
           KCIDB patchset hash, verdict and counts
  rates    (run id, kernel variant, profile, VMA count): spawn forks/s
  keyed_results (a view): each result with its whole key (tree, tree version, patchset,
           kernel variant, profile and cache key, suite), for queries by hand (sqlite3 FILE)

Concurrency: each write is one transaction taken with BEGIN IMMEDIATE (the write lock first,
so two runs recording at once queue instead of failing half-way), the file in WAL mode
(readers go on while a run records), and a busy timeout of 60 s for the lock. Switching a new
file to WAL is retried for as long: SQLite answers that pragma "database is locked" at once,
without the busy handler, while another process opens the same file (4 processes creating one
file: 3 such failures in 200 tries here).

Where: --db PATH, else $FORKDIFF_HISTORY_DB, else <cache>/history.sqlite
(orchestrator/cache.py). FORKDIFF_HISTORY_DB=off turns the automatic recording of vm-test,
compare and report off (`forkdiff history` then needs --db)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ..cache import cache_dir
from ..errors import ForkdiffError

ENV = "FORKDIFF_HISTORY_DB"
FILENAME = "history.sqlite"
BUSY_TIMEOUT_S = 60.0
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started TEXT, recorded TEXT, folder TEXT,
    tree TEXT, tree_version TEXT, tree_identity TEXT, kernel_version TEXT,
    suites TEXT, scenarios TEXT, models TEXT, verdict TEXT,
    match INTEGER, mismatch INTEGER, failing INTEGER, total INTEGER, first TEXT);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    variant TEXT NOT NULL, profile TEXT NOT NULL, suite TEXT NOT NULL,
    release TEXT, kernel_key TEXT, patchset TEXT, patches TEXT, verdict TEXT,
    match INTEGER, mismatch INTEGER, failing INTEGER, total INTEGER,
    PRIMARY KEY (run_id, variant, profile, suite));
CREATE TABLE IF NOT EXISTS rates (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    variant TEXT NOT NULL, profile TEXT NOT NULL, vmas INTEGER NOT NULL,
    kernel_key TEXT, forks_per_s REAL, runs INTEGER,
    PRIMARY KEY (run_id, variant, profile, vmas));
CREATE INDEX IF NOT EXISTS results_key ON results (variant, profile, suite, patchset);
CREATE VIEW IF NOT EXISTS keyed_results AS
    SELECT r.tree, r.tree_version, x.patchset, x.variant, x.profile, x.kernel_key, x.suite,
           r.started, r.run_id, x.verdict, x.match, x.mismatch, x.failing, x.total
    FROM results x JOIN runs r USING (run_id);
"""
_RUN_COLS = ("run_id", "started", "recorded", "folder", "tree", "tree_version", "tree_identity",
             "kernel_version", "suites", "scenarios", "models", "verdict", "match", "mismatch", "failing",
             "total", "first")
_RESULT_COLS = ("run_id", "variant", "profile", "suite", "release", "kernel_key", "patchset",
                "patches", "verdict", "match", "mismatch", "failing", "total")
_RATE_COLS = ("run_id", "variant", "profile", "vmas", "kernel_key", "forks_per_s", "runs")


def auto_path() -> Path | None:
    """The database vm-test/compare/report record into: None when FORKDIFF_HISTORY_DB=off."""
    env = os.environ.get(ENV, "")
    if env.lower() in ("off", "0", "no", "none"):
        return None
    return Path(env).expanduser() if env else cache_dir() / FILENAME


def resolve(db: str | Path | None) -> Path:
    """--db PATH, else the automatic path; a ForkdiffError when recording is off and no --db."""
    if db:
        return Path(db).expanduser()
    path = auto_path()
    if path is None:
        raise ForkdiffError(f"{ENV}=off and no --db given: no results database to read",
                            "give --db PATH, or unset FORKDIFF_HISTORY_DB")
    return path


def _wal(conn: sqlite3.Connection) -> None:
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection with the schema in place; a file that is not a database is a ForkdiffError."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ForkdiffError(f"results database {path} is not a file", "give --db a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        _wal(conn)
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        yield conn
    except sqlite3.DatabaseError as err:
        raise ForkdiffError(f"results database {path}: {err}",
                            f"move {path} aside (a new one is made on the next run), or give "
                            "--db another file") from None
    finally:
        conn.close()


def _insert(conn: sqlite3.Connection, table: str, cols: tuple[str, ...], rows: list[tuple]) -> None:
    if rows:
        conn.executemany(f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) VALUES "
                         f"({', '.join('?' * len(cols))})", rows)


def record(path: Path, rec: dict) -> None:
    """Write one run (history_record.read_run) in one transaction: its earlier rows, if it was
    recorded before, are replaced, never duplicated."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    run = {**rec, "recorded": now}
    with connect(path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table in ("results", "rates", "runs"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (rec["run_id"],))
            _insert(conn, "runs", _RUN_COLS, [tuple(run[c] for c in _RUN_COLS)])
            _insert(conn, "results", _RESULT_COLS,
                    [tuple(json.dumps(r["patches"]) if c == "patches" else
                           rec["run_id"] if c == "run_id" else r[c] for c in _RESULT_COLS)
                     for r in rec["results"]])
            _insert(conn, "rates", _RATE_COLS,
                    [tuple(rec["run_id"] if c == "run_id" else r[c] for c in _RATE_COLS)
                     for r in rec["rates"]])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def load(path: Path) -> dict[str, pd.DataFrame]:
    """The three tables as frames ("runs", "results", "rates"); a missing file is a ForkdiffError."""
    path = Path(path)
    if not path.is_file():
        raise ForkdiffError(f"no results database at {path}",
                            "record runs first: make vm-test, or forkdiff compare/report DIR "
                            "(with --db PATH for this file)")
    with connect(path) as conn:
        return {t: pd.read_sql_query(f"SELECT * FROM {t}", conn) for t in ("runs", "results", "rates")}
