"""Long fault sweeps split into k-ranges, and joined again.

A sweep whose estimated cost is above the run's part size (SWEEP_PART= seconds) is split, when
the run has shards or a Dask executor, into up to n parts: `faultsweep --k-from A --max-k B`,
the last one open-ended (the run's --max-k). Each part is a job of its own, its repeat
"kA-B", so that its check_count, not_reached and sweep_end records have keys of their own;
its fault records are keyed by k like any sweep's. join() turns the records of a sweep's parts
back into the records one whole sweep writes (keys without the part): the first part's probe
(check_count), the lowest not_reached, and one sweep_end summing the parts (failed and absorbed
forks, changed maps, net objects per cache; complete when a part reached the end). Records
of steps past the sweep's end (a part that started after it) are dropped. compare then sees
one sweep, as from an unsplit run."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import replace

from ..results.observations import record_key
from .suites import Job

PART = re.compile(r"^k(\d+)-(\d*)$")


def estimated_checks(vmas: int) -> int:
    """Fail-nth checks of one fork under dup_mmap: about 2.5 per VMA (vm_area_struct, vma_lock,
    anon_vma_chain, maple nodes) plus the static binary's (mixed-small: 99-101)."""
    return int(40 + 2.5 * vmas)


def split(job: Job, vmas: int, parts: int) -> list[Job]:
    """The sweep as `parts` k-ranges (the job itself when it is not a whole sweep)."""
    args = list(job.args)
    if parts < 2 or job.program != "faultsweep" or "--count-only" in args or "--max-k" not in args \
            or "--k-from" in args:
        return [job]
    width = max(1, math.ceil(estimated_checks(vmas) / parts))
    out = []
    for p in range(parts):
        a, b = 1 + p * width, (p + 1) * width if p < parts - 1 else None
        part = list(args)
        if b is not None:
            part[part.index("--max-k") + 1] = str(b)
        out.append(replace(job, args=("--k-from", str(a), *part), repeat=f"k{a}-{b or ''}",
                           timeout=job.timeout / parts + 300))
    return out


def _sum(dicts: list[dict | None]) -> dict:
    out: dict[str, int] = defaultdict(int)
    for d in dicts:
        for c, n in (d or {}).items():
            out[c] += n
    return dict(out)


def _rekey(rec: dict, measurement: str, repeat=None) -> dict:
    sc = rec["scenario"]["name"] if isinstance(rec.get("scenario"), dict) else str(rec.get("scenario"))
    return {**rec, "repeat": repeat,
            "key": record_key(rec["suite"], rec["variant"], rec["profile"], sc, measurement, repeat)}


def _joined_end(ends: list[dict], complete_at: int | None) -> dict:
    ends = sorted(ends, key=lambda r: int(PART.match(str(r["repeat"])).group(1)))
    vs = [e["values"] for e in ends]
    v = dict(vs[0])
    v.pop("k_from", None)
    v["complete"] = complete_at is not None
    v["last_k"] = complete_at - 1 if complete_at is not None else max(x.get("last_k", 0) for x in vs)
    for f in ("failed_forks", "absorbed_faults", "maps_changed"):
        v[f] = sum(x.get(f, 0) for x in vs)
    v["maps_unchanged_at_end"] = all(x.get("maps_unchanged_at_end", True) for x in vs)
    if any("net" in x for x in vs):
        v["net"] = _sum([x.get("net") for x in vs])
        v["settled"] = all(x.get("settled", True) for x in vs)
        v["settle_ms"] = max(x.get("settle_ms", 0) for x in vs)
        if all("settle_bound_ms" in x for x in vs):  # each part waited at most this long
            v["settle_bound_ms"] = min(x["settle_bound_ms"] for x in vs)
        v["slab_end"] = vs[-1].get("slab_end")
    v["parts"] = [f"k{x.get('k_from', 1)}-{x.get('last_k')}" for x in vs]
    return {**_rekey(ends[0], "sweep_end"), "values": v, "value": v["last_k"]}


def join(records: list[dict]) -> list[dict]:
    """Records with every split sweep's parts joined (see the module's doc); others unchanged."""
    parted: dict[tuple, list[dict]] = defaultdict(list)
    rest: list[dict] = []
    for r in records:
        if r.get("suite") == "faults" and PART.match(str(r.get("repeat") or "")) \
                and r.get("measurement") in ("check_count", "not_reached", "sweep_end"):
            name = r["scenario"]["name"] if isinstance(r.get("scenario"), dict) else str(r.get("scenario"))
            parted[(r["variant"], r["profile"], name)].append(r)
        else:
            rest.append(r)
    if not parted:
        return records
    joined: list[dict] = []
    ends_at: dict[tuple, int] = {}
    for sweep, recs in parted.items():
        nr = sorted((r for r in recs if r["measurement"] == "not_reached"), key=lambda r: r["values"]["k"])
        first_cc = [r for r in recs if r["measurement"] == "check_count"
                    and str(r["repeat"]).startswith("k1-")]
        ends = [r for r in recs if r["measurement"] == "sweep_end"]
        complete_at = nr[0]["values"]["k"] if nr else None
        if complete_at is not None:
            ends_at[sweep] = complete_at
            joined.append(_rekey(nr[0], "not_reached"))
        if first_cc:
            joined.append(_rekey(first_cc[0], "check_count"))
        if ends:
            joined.append(_joined_end(ends, complete_at))
    out = []
    for r in rest:
        name = r["scenario"]["name"] if isinstance(r.get("scenario"), dict) else None
        end = ends_at.get((r.get("variant"), r.get("profile"), name))
        if end is not None and r.get("suite") == "faults" and r.get("measurement") == "fault" \
                and r["values"]["k"] >= end:
            continue  # a later part's step past the end of the sweep
        out.append(r)
    return out + joined
