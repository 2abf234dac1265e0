"""observations.jsonl: one JSON record per measurement, appended as it arrives.

Every record is written with a single write() of the whole line (newline included) on a file
opened with O_APPEND, then fsync'ed, so an interrupted run leaves only whole lines. A record's
key (suite, variant, profile, scenario, measurement, repeat) identifies it; `--resume` skips
work whose key is already in the file. The schema is in docs/records.md.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from ..errors import ForkdiffError
from .folder import OBSERVATIONS_JSONL
from .outdir import writable_folder

FILENAME = OBSERVATIONS_JSONL


def record_key(suite: str, variant: str, profile: str, scenario: str, measurement: str,
               repeat: int | str | None = None) -> str:
    parts = [suite, variant, profile, scenario, measurement]
    if repeat is not None:
        parts.append(str(repeat))
    return "|".join(parts)


def iter_records(path: Path) -> Iterator[dict]:
    """Records of an observations file. A line that is not a JSON object (a file written by
    something else, or cut by a full disk) is reported on stderr and skipped."""
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        return
    with fh:
        for no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                print(f"forkdiff: warning: {path}:{no}: not a JSON line, skipped", file=sys.stderr)
                continue
            if isinstance(rec, dict):
                yield rec


def read_records(path: Path) -> list[dict]:
    return list(iter_records(path))


class ObservationLog:
    """Appends records to <out>/observations.jsonl and knows which keys are already there."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / FILENAME
        writable_folder(self.path.parent)
        try:
            with open(self.path, "a"):
                pass
        except OSError as err:
            raise ForkdiffError(f"output folder {out_dir} cannot be written ({err.strerror})",
                                "give --out (OUT=) a writable folder") from None
        self._keys = {r["key"] for r in iter_records(self.path) if isinstance(r.get("key"), str)}

    def has(self, key: str) -> bool:
        return key in self._keys

    def keys(self) -> set[str]:
        return set(self._keys)

    def append(self, record: dict) -> None:
        """Write one record as one line in one write() call, then fsync."""
        data = (json.dumps(record, separators=(",", ":"), sort_keys=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, data)
            if written != len(data):  # only on a full disk: cut the partial line off again
                os.ftruncate(fd, os.fstat(fd).st_size - written)
                raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
        key = record.get("key")
        if isinstance(key, str):
            self._keys.add(key)
