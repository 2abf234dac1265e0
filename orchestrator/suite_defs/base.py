"""What a suite is (Suite), the job it plans (Job), and the scenarios it runs (load_scenarios).

A Suite holds everything that differs between suites: the guest program, the kernel profile it
boots, its default scenarios, the final record that says a job is done, the jobs it plans, a
job's rough cost for the shards, and the name of its comparison rule. The code that runs jobs on
guests (orchestrator/run/suites.py), the shards (orchestrator/run/shards.py) and the comparison
(orchestrator/analysis/compare.py, run_rows.py) ask the suite object; none of them lists suites.

This package imports neither orchestrator.run nor orchestrator.analysis, so both can import it
without an import cycle: the comparer is therefore named (a function of
orchestrator/analysis/rules.py), not referenced, as are the kernel-only checks, and plan() reads the run's options through the
PlanOptions protocol below (orchestrator.run.suites.RunOptions is the one implementation).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from simulator.scenario import LIST_PATH, Scenario, ScenarioError, load

from .. import resources
from ..errors import ForkdiffError

GUEST_BIN = "/usr/local/bin"  # where the rootfs puts the guest programs
SCENARIO_DIR = resources.data_dir("scenarios")


@dataclass(frozen=True)
class Job:
    """One run of a guest program; its records share scenario and (for spawn) repeat."""

    scenario: str
    scenario_dict: dict
    program: str
    args: tuple[str, ...]
    timeout: float
    repeat: int | None = None
    # files the job needs in the guest, pushed before it runs: (remote path, text); a list
    # scenario's VMAs (simulator/scenario.py guest_list()) go to scenario.LIST_PATH this way
    uploads: tuple[tuple[str, str], ...] = ()
    vmas: int | None = None  # the layout's VMA count (for cost estimates)
    # faults: a sweep run once more up to the step before this one, where the kernel died
    # (orchestrator/run/suites.py sweep_before_first_crash); its sweep_end record says so
    before_crash: int | None = None

    @property
    def command(self) -> str:
        return " ".join([f"{GUEST_BIN}/{self.program}", *map(shlex.quote, self.args)])


class PlanOptions(Protocol):
    """The run options a suite's plan and estimate read (orchestrator.run.suites.RunOptions)."""

    suite: str
    scenarios: list[Scenario] | None
    vmas: tuple[int, ...]
    duration: float
    repeats: int | None
    max_k: int
    count_only_above: int

    @property
    def icount_used(self) -> bool: ...
    @property
    def leak_wait_ms(self) -> int: ...
    @property
    def settle_ms(self) -> int: ...
    @property
    def page_tables(self) -> bool: ...
    @property
    def observer_args(self) -> tuple[str, ...]: ...
    @property
    def scans_leaks(self) -> bool: ...


def load_scenarios(names: Iterable[str]) -> list[Scenario]:
    """Built-in scenario names (scenarios/<name>.yaml) or paths to YAML/JSON files."""
    out = []
    for name in names:
        p = Path(name)
        if not p.suffix:
            p = SCENARIO_DIR / f"{name}.yaml"
        try:
            out.append(load(p))
        except ScenarioError as err:
            raise ForkdiffError(str(err), f"built-in scenarios: {', '.join(sorted(x.stem for x in SCENARIO_DIR.glob('*.yaml')))}") from None
    return out


# kconfig/debug.config (DEBUG_VM, DEBUG_VM_MAPLE_TREE) on top of the faults profile, for the exact
# suites with DEBUG_VM=1: its own kernels (docs/profiles.md says why it is not the default)
DEBUG_PROFILE = "debug"


class Suite:
    """One suite. A subclass per suite sets the class attributes and plans its jobs."""

    name: ClassVar[str]
    program: ClassVar[str]  # the guest program (guest/<program>.c)
    profile: ClassVar[str]  # the kernel profile it boots (kconfig/<profile>.config)
    final: ClassVar[str]  # the measurement that ends a job: in the file, the job is done (resume)
    scenarios: ClassVar[tuple[str, ...]] = ()  # default scenarios (SCENARIOS= replaces them)
    # the function of orchestrator/analysis/rules.py that turns a job's records and predictions
    # into verdict rows (None: compared elsewhere, as spawn's timings are)
    comparer: ClassVar[str | None] = None
    # what the simulator predicts for its jobs (simulator/predict.py records' measurements):
    # only what the comparer reads, since some cost time at large counts
    predicts: ClassVar[tuple[str, ...]] = ()
    # on a tree the simulator does not model: the function of orchestrator/analysis/
    # kernel_only.py that checks what the kernel alone must show (None: only the skipped row)
    kernel_only: ClassVar[str | None] = None
    # reads the slab counters (SLUB_STATS, 'objects'): its guests boot with the slub_debug=
    # flags that make the counts exact (run/suites.py boot_slub_debug) and record what they got
    reads_slab_counters: ClassVar[bool] = False
    # injects faults (fail-nth): fault injection is set up on its guests, failslab's boot flag
    # is needed where it is read-only at run time, and KMEMLEAK= scans after each of its jobs
    injects_faults: ClassVar[bool] = False
    # boots a guest of its own on each kernel instead of going on with the one the run's
    # previous suite used (spawn: a timing depends on what the guest ran before)
    fresh_guest: ClassVar[bool] = False

    def profile_for(self, observers: Sequence[str] = (), *, perf: bool = False,
                    debug_vm: bool = False) -> str:
        """The kernel profile the suite boots with PERF_KERNELS= (perf: spawn's timings on
        kernels without the debug machinery) and DEBUG_VM= (debug_vm: the exact suites on the
        faults kernel + DEBUG_VM checks). OBSERVERS= (observers) changes none: the faults
        profile has the swap and zram they use."""
        return DEBUG_PROFILE if debug_vm and self.profile == "faults" else self.profile

    def plan(self, opts: PlanOptions) -> list[Job]:
        """The suite's jobs, in order (the same for every variant): by default one per scenario
        (opts.scenarios, else the suite's own), its arguments and timeout from job_args()."""
        scenarios = opts.scenarios if opts.scenarios is not None else load_scenarios(self.scenarios)
        jobs = []
        for sc in scenarios:
            n = sc.layout_count
            args, timeout = self.job_args(opts, tuple(sc.guest_args()), n)
            uploads = ((LIST_PATH, sc.guest_list()),) if sc.is_list else ()
            jobs.append(Job(sc.name, sc.to_dict(), self.program, args, timeout, uploads=uploads, vmas=n))
        return jobs

    def job_args(self, opts: PlanOptions, layout_args: tuple[str, ...], n: int) -> tuple[tuple[str, ...], float]:
        """The guest program's arguments for a scenario of n VMAs (its layout given by
        layout_args) and the job's timeout in seconds."""
        raise NotImplementedError

    def estimate(self, opts: PlanOptions, job: Job, n: int) -> float:
        """Seconds the job takes on a 2-core TCG host for a process of n VMAs (rough; it only
        balances shards, orchestrator/run/shards.py)."""
        raise NotImplementedError
