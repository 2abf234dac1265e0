"""spawn: forks/s per total VMA count in deterministic virtual time (QEMU -icount), on the faults
kernels (the same kernels as maps/faults/counts, a fresh guest; PERF_KERNELS=1: on perf kernels
of their own, docs/profiles.md); its timings are compared by orchestrator/analysis/spawn_rows.py and timing.py, not by a
per-job rule. The calibration layouts it runs on one kernel are planned by
orchestrator/run/suites.py variant_jobs (they come from orchestrator/run/calibration.py)."""

from __future__ import annotations

from collections.abc import Sequence

from simulator.scenario import LIST_PATH, from_dict

from .base import Job, PlanOptions, Suite

SPAWN_VMAS = (21, 121, 221, 421, 821, 1621, 3221, 6421, 12821, 25621, 51221)
REALTIME_REPEATS = 5  # spawn runs per count in real time (KVM): noisy, so Welch's test needs them

# spawn's own layout before the fill: one written private anonymous page (a process with data
# of its own, as byte-unixbench's spawn has), so every fork also runs anon_vma_fork once.
SPAWN_LAYOUT = {"base": "0x100000000", "gap_pages": 1,
                "groups": [{"count": 1, "pages": 1, "prot": "rw", "kind": "anon",
                            "advice": "none", "touch": "all"}]}


def spawn_scenario(total: int) -> dict:
    """The scenario of a spawn job: SPAWN_LAYOUT, then 1-page rw private anonymous untouched
    VMAs with 1-page gaps after it up to `total` VMAs in the process (the simulator replays the
    same from this dict)."""
    return {"name": f"total-{total}", "total_vmas": total, **SPAWN_LAYOUT}


class Spawn(Suite):
    name = "spawn"
    program = "spawn"
    profile = "faults"
    fresh_guest = True  # a timing is the guest's own history: never after another suite's jobs
    final = "spawn"
    predicts = ("op_counts",)  # the work model's operation counts (analysis/spawn_rows.py)

    def profile_for(self, observers: Sequence[str] = (), *, perf: bool = False,
                    debug_vm: bool = False) -> str:
        """The faults kernels (DEBUG_VM=1 does not apply: its checks cost O(VMAs) per mmap), or
        with PERF_KERNELS=1 the perf kernels."""
        return "perf" if perf else self.profile

    def plan(self, opts: PlanOptions) -> list[Job]:
        """Each VMA count (VMAS=) as SPAWN_LAYOUT filled up to it, repeated (1 under -icount,
        REALTIME_REPEATS in real time); then each replayed layout of SCENARIOS= as it is."""
        reps = opts.repeats or (1 if opts.icount_used else REALTIME_REPEATS)
        layout = from_dict({"name": "spawn", **SPAWN_LAYOUT})
        jobs = [Job(f"total-{n}", spawn_scenario(n), self.program,
                    (*layout.guest_args(), "--total", str(n), "--duration", f"{opts.duration:g}"),
                    timeout=120 + 40 * opts.duration + n / 50, repeat=r)
                for n in opts.vmas for r in range(reps)]
        # SCENARIOS= naming replayed layouts (list scenarios, `forkdiff scenario from-maps`):
        # spawn also forks each as it is (no fill), a layout of its own like the calibration
        # layouts (run/calibration.py) but never fitted on (replayed): the band does not
        # depend on SCENARIOS=; group scenarios stay the other suites' only
        for sc in [x for x in opts.scenarios or () if x.is_list]:
            n = sc.layout_count
            uploads = ((LIST_PATH, sc.guest_list()),)
            jobs += [Job(sc.name, {**sc.to_dict(), "calibration": True, "replayed": True}, self.program,
                         (*sc.guest_args(), "--duration", f"{opts.duration:g}"),
                         timeout=120 + 40 * opts.duration + n / 50, repeat=r, uploads=uploads, vmas=n)
                     for r in range(reps)]
        return jobs

    def estimate(self, opts: PlanOptions, job: Job, n: int) -> float:
        duration = float(job.args[job.args.index("--duration") + 1])
        return 3.0 + 1.5 * duration + n / 2000  # layout set-up and SSH round trips dominate short runs


SUITE = Spawn()
