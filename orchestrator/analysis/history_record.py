"""What the results database keeps of one results folder (orchestrator/analysis/history_db.py):
read from the folder's own files, never from the cache, so an old folder can be recorded too.

  run      run id, when it started, the folder, tree (name and version), suites, scenarios,
           which model each kernel was compared with (run.json "models"), the run's verdict and its counts (match, mismatch, failing, total)
  results  one per kernel (variant, profile, kernel cache key, its patches' hashes) and suite:
           verdict (FAIL when any row fails, else PASS) and counts; a kernel spawn measured
           without verdicts of its own (the one its work model is fitted on): verdict "-"
  rates    spawn forks/s per kernel and VMA count (the seed's counts: calibration and replayed
           layouts are not rates of the run's VMA counts), the mean over the count's runs

Run id: the earliest run id of the folder's observation records (each suite job of a run gets
one, orchestrator/run/suites.py; a resumed or merged run keeps its earliest). The same folder
recorded again (a report re-run, compare with another model) is the same run and replaces its
rows. Tree: a Debian source package's name ("debian:linux-source-6.12") with its package
version, or a user's tree's path with "<kernel version> (<commit or content hash>)".
Verdict rows of the variant axis ("both") judge the patched kernel, as in KCIDB export."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ..errors import ForkdiffError
from ..prepare.kernel_records import read_records as read_kernel_records
from ..results import verdicts as vd
from ..results.folder import OBSERVATIONS_JSONL, read_meta
from ..results.observations import iter_records
from . import triage
from .kcidb import kernel_of, patchset_hash
from .rates import spawn_rates


def tree_of(identity: str, kernel_version: str, path: str) -> tuple[str, str]:
    """(tree, tree version) of a tree identity (orchestrator/prepare/tree.py)."""
    kind, _, rest = identity.partition(":")
    if kind == "debian":
        package, _, version = rest.partition(":")
        return f"debian:{package}", version or kernel_version
    if kind == "git":
        commit = rest.partition(":")[0]
        dirty = "" if rest.endswith(":e3b0c44298fc1c14") else "+diff"
        return path or identity, f"{kernel_version} ({commit[:12]}{dirty})"
    if kind == "walk":
        return path or identity, f"{kernel_version} ({rest[:12]})"
    return path or identity or "unknown", kernel_version or "unknown"


def _obs_facts(out: Path) -> tuple[str, str, list[dict]]:
    """(run id, earliest timestamp, spawn rates) from observations.jsonl."""
    ids: set[str] = set()
    first = ""
    records = list(iter_records(out / OBSERVATIONS_JSONL))
    for r in records:
        if r.get("run_id"):
            ids.add(str(r["run_id"]))
        stamp = str(r.get("timestamp") or "")
        if stamp and (not first or stamp < first):
            first = stamp
    return (min(ids) if ids else ""), first, spawn_rates(records)


def _started(meta: dict, first_obs: str) -> str:
    """When the run started, as ISO 8601 UTC (run.json's "started", else its first record)."""
    for stamp in (meta.get("started"), first_obs):
        try:
            dt = datetime.fromisoformat(str(stamp))
        except (TypeError, ValueError):
            continue
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="seconds")
    return ""


def _counts(df: pd.DataFrame) -> dict:
    bad = int(df["verdict"].isin(vd.FAILING).sum())
    return {"verdict": "FAIL" if bad else "PASS", "match": int((df["verdict"] == "match").sum()),
            "mismatch": int((df["verdict"] == "mismatch").sum()), "failing": bad, "total": len(df)}


def _kernels(out: Path, meta: dict) -> dict[tuple[str, str], dict]:
    """(variant, profile) -> release, kernel cache key and patches: the folder's kernels/*.json,
    else (older folders) the release run.json names, without key or patches."""
    recs = read_kernel_records(out)
    kernels = {k: {"release": r["release"], "kernel_key": r["build_key"],
                   "patches": [{"name": p["name"], "sha256": p["sha256"]} for p in r["patches"]]}
               for k, r in recs.items()}
    for name, release in meta.items():
        parts = name.split()
        if len(parts) == 2 and parts[0] == "kernel" and parts[1].count("/") == 1:
            v, p = parts[1].split("/")
            kernels.setdefault((v, p), {"release": str(release), "kernel_key": "", "patches": []})
    return kernels


def read_run(out: Path) -> dict:
    """The database record of a compared results folder (a ForkdiffError when it has none)."""
    out = Path(out)
    df = vd.read_compared(out, "nothing to record")
    meta = read_meta(out)
    run_id, first_obs, rates = _obs_facts(out)
    if not run_id:
        raise ForkdiffError(f"{out}: no observation record names its run id", "record a folder "
                            "`make vm-test` or `forkdiff run` wrote (observations.jsonl)")
    kernels = _kernels(out, meta)
    identity = str(meta.get("tree_identity") or "")
    if not identity:  # a folder without run.json: the kernels' own records say which tree
        identity = next((r["tree"]["identity"] for r in read_kernel_records(out).values()), "")
    version = str(meta.get("kernel_version") or "")
    tree, tree_version = tree_of(identity, version, str(meta.get("tree") or ""))
    first = triage.first_divergence(df)
    results = []
    rows = df.to_dict(orient="records")
    by_kernel: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        by_kernel.setdefault((*kernel_of(r), r["suite"]), []).append(r)
    for (variant, profile, suite), krows in sorted(by_kernel.items()):
        k = kernels.get((variant, profile), {"release": "", "kernel_key": "", "patches": []})
        results.append({"variant": variant, "profile": profile, "suite": suite,
                        "release": k["release"], "kernel_key": k["kernel_key"],
                        "patches": k["patches"],
                        "patchset": patchset_hash(p["sha256"] for p in k["patches"]),
                        **_counts(pd.DataFrame(krows))})
    judged = {(r["variant"], r["profile"], r["suite"]) for r in results}
    for r in rates:
        k = kernels.get((r["variant"], r["profile"]), {"release": "", "kernel_key": "", "patches": []})
        r["kernel_key"] = k["kernel_key"]
        if (r["variant"], r["profile"], "spawn") not in judged:
            # measured without verdicts of its own (the kernel spawn's work model is fitted
            # on): a result with verdict "-" so that its rates have a line of their own
            judged.add((r["variant"], r["profile"], "spawn"))
            results.append({"variant": r["variant"], "profile": r["profile"], "suite": "spawn",
                            "release": k["release"], "kernel_key": k["kernel_key"],
                            "patches": k["patches"],
                            "patchset": patchset_hash(p["sha256"] for p in k["patches"]),
                            "verdict": "-", "match": 0, "mismatch": 0, "failing": 0, "total": 0})
    return {"run_id": run_id, "started": _started(meta, first_obs), "folder": str(out.resolve()),
            "tree": tree, "tree_version": tree_version, "tree_identity": identity,
            "kernel_version": version, "suites": str(meta.get("suites") or ", ".join(
                s for s in triage.SUITE_ORDER if s in set(df["suite"]))),
            "scenarios": str(meta.get("scenarios") or ""),
            "models": str(meta.get("models") or ""),
            **_counts(df), "first": triage.describe_first(first) if first else "",
            "results": results, "rates": rates}


def record_folder(out: Path, db: Path | str | None = None, file=None) -> Path | None:
    """Record a compared folder after vm-test/compare/report: into --db, else the automatic
    database (none with FORKDIFF_HISTORY_DB=off). The run's own verdict never depends on it: a
    folder that cannot be recorded, or a database that cannot be written, is said in one line
    on stderr (with the next step) and the run goes on. Returns the database written, or None."""
    import sys

    from . import history_db

    path = Path(db).expanduser() if db else history_db.auto_path()
    if path is None:
        return None
    try:
        history_db.record(path, read_run(out))
    except ForkdiffError as err:
        print(f"forkdiff: history: not recorded: {err.one_line().removeprefix('forkdiff: error: ')}",
              file=file or sys.stderr)
        return None
    return path
