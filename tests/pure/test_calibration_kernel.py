"""Which kernel runs spawn's calibration layouts: the baseline when the run has one (the patched
kernel's timings are predicted, never fitted), else the run's only kernel (7.x). vm-test runs
each kernel in a worker of its own, with RunOptions naming only that kernel, so the choice is
made once for the run (the conductor sets spawn_fit_on) and passed down. With the kernels'
instruction profiles on (INSN_PROFILE=1) a run without PATCHES= plans none: the
profiles, measured once per kernel, judge the timings."""

from __future__ import annotations

from pathlib import Path

from orchestrator.conduct import jobs
from orchestrator.conduct.options import Progress, VmTestOptions
from orchestrator.run.suites import RunOptions, variant_jobs


def _calib(ro: RunOptions, variant: str) -> int:
    return sum(1 for j in variant_jobs(ro, variant) if j.scenario_dict.get("calibration"))


def test_two_kernels_calibrate_on_the_baseline_only(tmp_path: Path) -> None:
    opts = VmTestOptions(out=tmp_path, suites=("spawn",), spawn_fit_on="baseline")
    say = Progress()
    base = jobs.suite_options(opts, "spawn", "baseline", None, say, lambda: False)
    patched = jobs.suite_options(opts, "spawn", "patched", None, say, lambda: False)
    assert _calib(base, "baseline") > 0
    assert _calib(patched, "patched") == 0


def test_a_run_of_one_kernel_calibrates_on_it(tmp_path: Path) -> None:
    opts = VmTestOptions(out=tmp_path, suites=("spawn",), spawn_fit_on="patched")
    ro = jobs.suite_options(opts, "spawn", "patched", None, Progress(), lambda: False)
    assert _calib(ro, "patched") > 0


def test_insn_profiles_replace_the_calibration_layouts(tmp_path: Path) -> None:
    opts = VmTestOptions(out=tmp_path, suites=("spawn",), spawn_fit_on="baseline", insn_profile=True)
    base = jobs.suite_options(opts, "spawn", "baseline", None, Progress(), lambda: False)
    assert _calib(base, "baseline") == 0
    # with PATCHES= the work model fitted on the baseline's calibration layouts still judges
    # the patched kernel where the run has no reference kernel
    opts = VmTestOptions(out=tmp_path, suites=("spawn",), spawn_fit_on="baseline",
                         patches=(Path("x.patch"),), insn_profile=True)
    base = jobs.suite_options(opts, "spawn", "baseline", None, Progress(), lambda: False)
    assert _calib(base, "baseline") > 0
