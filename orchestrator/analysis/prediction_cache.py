"""The simulator's predictions kept on disk between runs (cache/predictions/<digest>.pickle).

A prediction is a pure function of its inputs: the simulator's code, the scenario, the guest
program and its program headers, the VMA count, the kernel model, the measurements asked for,
the kernel config (simulator.fork.KernelConfig) and the fault settings (FaultSettings). The
file's name is a digest of all of them, the simulator's code being every file of the
`simulator` package, so a change to any of them is a new entry and an old one is never read
for it. Nothing measured goes into a prediction or its key.

Why: the same scenarios are predicted in run after run (a fault sweep of anon-touched-421 with
its per-k outcomes, spawn's 11 counts up to 51,221 VMAs and its calibration layouts: 20-25 s of
CPU a compare on this machine), and `make test` predicts them dozens of times. A hit costs the
unpickling (milliseconds). Entries are pickles of the records exactly as the simulator returns
them (tuples stay tuples); an unreadable entry is computed again and rewritten. `forkdiff cache
prune` removes entries not used for its DAYS (a hit touches the file)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import simulator

from ..cache import atomic_write, cache_path

FOLDER = "predictions"


@lru_cache(maxsize=1)
def simulator_digest() -> str:
    """sha256 over the simulator package's files (relative path and content), sorted."""
    root = Path(simulator.__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                       and p.suffix not in (".pyc", ".pyo")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _plain(obj):
    """JSON for the key: dataclasses as dicts, sets sorted (their order varies by process)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (set, frozenset)):
        return sorted((_plain(x) for x in obj), key=repr)
    if isinstance(obj, (list, tuple)):
        return [_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    return obj


def key_of(*inputs) -> str:
    text = json.dumps([simulator_digest(), _plain(list(inputs))], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def cached(key: str, compute: Callable[[], list[dict]]) -> list[dict]:
    """The entry's records, else compute() written to the cache. FORKDIFF_PREDICTION_CACHE=off
    computes every time and writes nothing."""
    if os.environ.get("FORKDIFF_PREDICTION_CACHE", "").lower() in ("off", "0", "no"):
        return compute()
    path = cache_path(FOLDER) / f"{key}.pickle"
    try:
        with open(path, "rb") as fh:
            records = pickle.load(fh)
        os.utime(path)  # used: kept by `forkdiff cache prune`
        return records
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError):
        pass  # not there, or unreadable (cut short, another Python): computed below
    records = compute()
    try:
        atomic_write(path, pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError:
        pass  # a read-only or full cache: the run goes on with what it computed
    return records
