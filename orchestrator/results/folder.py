"""A results folder's files (docs/records.md has their contents):

    run.json            what the run was and how long each part took (meta.py: RunMeta)
    observations.jsonl  one record per measurement (observations.py)
    verdicts.jsonl      one row per comparison (verdicts.py)
    guest-elf.json      the guest binaries' program headers (elves.py)
    kernels/            each kernel's record (orchestrator/prepare/kernel_records.py)
    shard.json          a shard's part of the run (orchestrator/run/shards.py)
    report.html, report.md, junit.xml   the report (orchestrator/analysis/report.py)"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ForkdiffError

RUN_JSON = "run.json"
OBSERVATIONS_JSONL = "observations.jsonl"
VERDICTS_JSONL = "verdicts.jsonl"
GUEST_ELF = "guest-elf.json"
KERNELS = "kernels"
SHARD_JSON = "shard.json"
REPORT_HTML = "report.html"


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @property
    def run_json(self) -> Path:
        return self.root / RUN_JSON

    @property
    def observations(self) -> Path:
        return self.root / OBSERVATIONS_JSONL

    @property
    def verdicts(self) -> Path:
        return self.root / VERDICTS_JSONL

    @property
    def guest_elf(self) -> Path:
        return self.root / GUEST_ELF

    @property
    def kernels(self) -> Path:
        return self.root / KERNELS

    @property
    def shard(self) -> Path:
        return self.root / SHARD_JSON

    @property
    def report(self) -> Path:
        return self.root / REPORT_HTML


def read_meta(folder: Path) -> dict:
    """<folder>/run.json as a dict ({} when the folder has none; a ForkdiffError when it is not
    JSON), for the readers that show or compare its entries."""
    path = Path(folder) / RUN_JSON
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise ForkdiffError(f"{path} is not JSON: {err}", "rerun the run, or remove the broken file") from None
