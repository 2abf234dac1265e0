"""A run as a deterministic list of jobs, and its split into shards.

Every job of a `forkdiff vm-test` (one guest program run: suite, kernel variant, scenario,
repeat) becomes a Unit with a name and an estimated cost in seconds. The list follows only
from the run's options (suites, variants, scenarios, VMA counts, duration, ...), so every
shard process computes the same list. `--shard i/n` runs the i-th of n bins, filled largest
first: each unit goes to the bin where the total after adding it is smallest, counting a
guest boot for a kernel the bin does not boot yet (ties: the lower bin). Costs are estimates
from this project's TCG figures (docs/performance.md), for balance only."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ForkdiffError
from .suites import Job, RunOptions

BOOT_SECONDS = 8.0  # a guest boot under TCG with -icount, quiet machine (docs/performance.md)


@dataclass(frozen=True)
class Unit:
    suite: str
    variant: str
    profile: str
    job: Job
    cost: float
    kernel: tuple  # what one guest boots: (variant, profile, kmemleak)

    @property
    def name(self) -> str:
        return unit_name(self.suite, self.variant, self.profile, self.job)


def unit_name(suite: str, variant: str, profile: str, job: Job) -> str:
    rep = "" if job.repeat is None else f"#{job.repeat}"
    return f"{suite}|{variant}|{profile}|{job.scenario}{rep}"


def _vmas(job: Job) -> int:
    """The VMA count a job's process works on: --total, else the layout's groups."""
    args = list(job.args)
    if "--total" in args:
        return int(args[args.index("--total") + 1])
    if job.vmas is not None:
        return job.vmas
    count = 0
    for a in args:
        m = re.match(r"^(\d+)x\d+:", a)
        if m:
            count += int(m.group(1))
    return max(count, 1) * (int(args[args.index("--repeat") + 1]) if "--repeat" in args else 1)


def estimate(ro: RunOptions, job: Job) -> float:
    """Seconds the job takes on a 2-core TCG host (rough; it only balances shards)."""
    n = _vmas(job) + 20  # the static binary's own VMAs
    if ro.suite == "maps":
        return 1.5 + n / 400
    if ro.suite == "counts":
        return 1.0 + (ro.repeats or 15) * (0.1 + n / 20000)
    if ro.suite == "faults":
        cost = 2.0 + n / 500 if "--count-only" in job.args else 2.0 + n * n / 9000
        return cost * (2.5 if ro.scans_leaks else 1.0)
    duration = float(job.args[job.args.index("--duration") + 1])
    return 3.0 + 1.5 * duration + n / 2000  # layout set-up and SSH round trips dominate short runs


def units_of(ro: RunOptions, variant: str, jobs: list[Job], parts: int = 1,
             part_s: float = 600.0) -> list[Unit]:
    """The jobs as units; with parts > 1, a fault sweep estimated above part_s seconds becomes
    up to `parts` k-ranges (orchestrator.run.sweep_parts), each a unit of its own."""
    from .sweep_parts import split

    kernel = (variant, ro.profile_used, ro.scans_leaks)
    out = []
    for j in jobs:
        cost = estimate(ro, j)
        pieces = split(j, _vmas(j) + 20, min(parts, math.ceil(cost / part_s))) if cost > part_s else [j]
        out += [Unit(ro.suite, variant, ro.profile_used, p, cost / len(pieces), kernel) for p in pieces]
    return out


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' with 1 <= i <= n."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ForkdiffError(f"--shard {text!r} is not i/n with 1 <= i <= n", "e.g. --shard 1/4 (SHARD=1/4)")
    return int(m.group(1)), int(m.group(2))


def parse_executor(text: str) -> str:
    """'' (threads in this process), 'dask' or 'dask:ADDRESS'."""
    text = text.strip()
    if text and text != "dask" and not text.startswith("dask:"):
        raise ForkdiffError(f"unknown executor {text!r}",
                            "use --executor dask (a local cluster) or dask:tcp://HOST:8786")
    return text


def assign(units: list[Unit], n: int) -> list[list[Unit]]:
    """n bins, largest unit first into the bin where it ends the earliest (a new kernel in a
    bin costs a boot); each bin keeps the units in run order."""
    order = sorted(range(len(units)), key=lambda i: (-units[i].cost, i))
    load = [0.0] * n
    kernels: list[set] = [set() for _ in range(n)]
    picked: list[list[int]] = [[] for _ in range(n)]
    for i in order:
        u = units[i]
        ends = [load[b] + u.cost + (0.0 if u.kernel in kernels[b] else BOOT_SECONDS) for b in range(n)]
        b = min(range(n), key=lambda x: (ends[x], x))
        load[b] = ends[b]
        kernels[b].add(u.kernel)
        picked[b].append(i)
    return [[units[i] for i in sorted(p)] for p in picked]


def plan_digest(units: list[Unit]) -> str:
    """Names and commands of every unit: shards of one run have the same digest."""
    h = hashlib.sha256()
    for u in units:
        h.update(f"{u.name} {u.job.command}\n".encode())
    return h.hexdigest()[:16]


def shard_cost(units: list[Unit]) -> float:
    return sum(u.cost for u in units) + BOOT_SECONDS * len({u.kernel for u in units})


SHARD_FILE = "shard.json"


def select(units: list[Unit], shard: tuple[int, int], out: Path, meta, say) -> set[str]:
    """The names of shard i's units; writes <out>/shard.json (what orchestrator.run.merge checks)."""
    i, n = shard
    mine = assign(units, n)[i - 1]
    info = {"shard": i, "of": n, "plan": plan_digest(units), "jobs": len(units),
            "estimated_s": round(shard_cost(mine), 1), "units": [u.name for u in mine]}
    (Path(out) / SHARD_FILE).write_text(json.dumps(info, indent=1))
    meta.shard = f"{i}/{n} ({len(mine)} of {len(units)} jobs, estimated {info['estimated_s']:.0f} s)"
    say("shard", meta.shard)
    return set(info["units"])
