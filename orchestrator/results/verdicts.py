"""The verdict table: one row per comparison, the contract between compare and report.

Columns:
  axis         "kernel-vs-simulator" | "variant-vs-variant"
  suite        maps | faults | counts | spawn
  variant      kernel variant observed (baseline | patched); "both" on the variant axis
  model        simulator variant the observation is compared with ("" on the variant axis)
  profile      kconfig profile of the kernel (faults | perf)
  scenario     scenario name
  measurement  what was compared (child_maps, map_count, maple_nodes_per_fork, fault_outcome, ...)
  key          which instance (e.g. "k=17", "vmas=421", "" when only one)
  observed     the guest's value, as text
  predicted    the simulator's value, as text
  verdict      match | mismatch | error | crashed | hung | info | skipped (a model verdict
               on a tree the simulator does not model: not a failure)
  rule         the rule used (e.g. "exact", "welch p<0.05", "cost model, fitted on baseline")
  detail       free text: what differs, console excerpt, ...
  band         timing rows: the tolerance the verdict used and where it comes from (the
               measurement's repeat spread under -icount, or the work model's validated
               leave-one-layout-out error); "" for exact rows
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .folder import VERDICTS_JSONL

COLUMNS = ["axis", "suite", "variant", "model", "profile", "scenario", "measurement", "key",
           "observed", "predicted", "verdict", "rule", "detail", "band"]
VERDICTS = ("match", "mismatch", "error", "crashed", "hung", "info", "skipped")
FAILING = ("mismatch", "error", "crashed", "hung")


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    bad = set(df["verdict"]) - set(VERDICTS)
    if bad:
        raise ValueError(f"unknown verdicts: {sorted(bad)}")
    return df.fillna("")


def write(df: pd.DataFrame, path: Path) -> None:
    with open(path, "w") as fh:
        for rec in df.to_dict(orient="records"):
            fh.write(json.dumps(rec, default=str) + "\n")


def read(path: Path) -> pd.DataFrame:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return frame(rows)


def read_compared(out: Path, purpose: str) -> pd.DataFrame:
    """A compared results folder's verdicts; a ForkdiffError, saying what `purpose` cannot be
    done, when the folder has no verdicts.jsonl or it holds no comparison."""
    from ..errors import ForkdiffError

    out = Path(out)
    if not (out / VERDICTS_JSONL).is_file():
        raise ForkdiffError(f"no verdicts in {out} (verdicts.jsonl missing): {purpose}",
                            f"run 'forkdiff compare {out}' first")
    df = read(out / VERDICTS_JSONL)
    if df.empty:
        raise ForkdiffError(f"{out}: verdicts.jsonl holds no comparisons: {purpose}",
                            "rerun the suites into a fresh OUT=, then 'forkdiff compare'")
    return df


def failing(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["verdict"].isin(FAILING)]
