"""What `forkdiff vm-test` is asked to do (VmTestOptions: its knobs, read by
orchestrator/commands/vmtest.py) and how it says where it is (Progress, on stderr)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..run.suites import SPAWN_VMAS
from ..suite_defs import NAMES as SUITES


@dataclass
class VmTestOptions:
    out: Path
    suites: tuple[str, ...] = SUITES
    vmas: tuple[int, ...] = SPAWN_VMAS
    duration: float = 2.0  # guest (virtual) seconds per spawn measurement
    repeats: int = 0  # spawn runs per VMA count; 0: 1 under -icount (a run repeats exactly), 5 in real time
    tree: object = None  # a path, debian: spec, KernelTree; after the plan stage its TreeSource
    patches: tuple[Path, ...] = ()  # PATCHES=, expanded by the command
    models: dict[str, str] = field(default_factory=dict)
    resume: bool = False
    spawn_timing: str = "icount"  # spawn: "icount" (virtual time) or "realtime" (KVM only)
    jobs: int = 0  # guests at a time (one per variant, at most one per CPU); 0: automatic
    scenarios: tuple[str, ...] = ()  # maps/faults/counts: scenario names or files (default: each suite's own)
    variants: tuple[str, ...] = ()  # kernels to run (default: every variant the tree gives)
    kmemleak: bool = False  # faults suite: kmemleak=on, fork's caches only, a leak scan per sweep
    faults: tuple[str, ...] = ("slab",)  # faults suite: what fail-nth counts (FAULTS=slab,page)
    observers: tuple[str, ...] = ()  # faults suite: tasks beside each sweep (OBSERVERS=; run/observers.py)
    perf_kernels: bool = False  # spawn on perf kernels of their own (PERF_KERNELS=1; docs/profiles.md)
    debug_vm: bool = False  # maps/faults/counts on the faults kernels + DEBUG_VM (DEBUG_VM=1)
    observer_seed: int = 1  # ... their seed (OBSERVER_SEED=)
    shard: tuple[int, int] | None = None  # (i, n): run only the i-th of n shards (orchestrator.run.shards)
    executor: str = ""  # "": threads here; "dask" or "dask:ADDRESS" (orchestrator.conduct.dask_executor)
    sweep_part_s: float = 600.0  # with shards/Dask: split fault sweeps estimated longer into k-ranges
    split_n: int = 0  # k-ranges per long sweep at most (0: the shard count; Dask: its QEMU slots)
    spawn_fit_on: str = "baseline"  # the kernel spawn's calibration layouts run on (set by the plan)
    against: Path | None = None  # an earlier results folder to compare spawn forks/s with
    history_db: str = ""  # results database to record the run in ("": the automatic one)
    insn_profile: bool = False  # spawn: judge timings with the kernels' instruction profiles (INSN_PROFILE=1)

    @property
    def parts(self) -> int:
        return self.split_n or (self.shard[1] if self.shard else 1)


class Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, stage: str, item: str = "") -> None:
        el = int(time.monotonic() - self.t0)
        print(f"[vm-test {el // 60:02d}:{el % 60:02d}] {stage}{': ' + item if item else ''}",
              file=sys.stderr, flush=True)
