"""kmemleak as a second opinion on fork's failure path, on real faults kernels booted with
kmemleak=on (orchestrator/run/kmemleak.py):

- with kmemleak on, failslab restricted to fork's own caches counts the same checks per fork
  as a kernel without kmemleak, and as the simulator predicts; without the cache filter
  kmemleak's metadata allocations are counted too;
- the faults suite, end to end (run_suite: build, boot with kmemleak=on, sweep, scan,
  compare), on the patched kernel with a planted bug (tests/planted: anon_vma_fork() leaks its
  new anon_vma when the anon_vma_chain allocation after it fails) gives a `kmemleak` verdict
  row, `crashed`, with the report, and one unreferenced anon_vma per step k the simulator puts
  at that allocation; the same kernel without the planted patch gives "no kmemleak report".
  The scan's own console line does not cost a guest: no error record, no restart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.analysis.compare import compare_dir, guest_elf
from orchestrator.prepare.kernel import build_kernel
from orchestrator.results.observations import ObservationLog, read_records
from orchestrator.run import faultsetup, kmemleak
from orchestrator.run.suites import (
    RunOptions,
    SuiteResult,
    load_scenarios,
    plan,
    run_on_guest,
    run_suite,
)
from orchestrator.vm.guest import Guest
from simulator import predict as sim_predict
from simulator.scenario import load

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "anon-touched-21"
PLANTED = ROOT / "tests" / "planted" / "leak-anon-vma-on-chain-failure.patch"


def predicted(variant: str) -> list[dict]:
    sc = load(ROOT / "scenarios" / f"{SCENARIO}.yaml")
    return sim_predict.records(sc, variant, program="faultsweep", elf=guest_elf("faultsweep"),
                               measurements=("counts", "fault_outcome"))


def count_checks(g: Guest, opts: faultsetup.FaultOptions) -> int:
    faultsetup.configure(g, opts)
    sc = load_scenarios([SCENARIO])[0]
    r = g.run(" ".join(["/usr/local/bin/faultsweep", "--count-only", *sc.guest_args()]), timeout=300)
    assert r.status == 0, r.stderr
    return next(json.loads(x)["checks"] for x in r.stdout.splitlines() if '"check_count"' in x)


def test_cache_filter_keeps_the_check_count_with_kmemleak_on(guest: Guest, rootfs, tmp_path: Path) -> None:
    """`guest` has no kmemleak; a second guest of the same kernel is booted with it."""
    variant = guest.kernel.variant
    plain = count_checks(guest, faultsetup.FaultOptions())
    want = next(p["checks"] for p in predicted(variant) if p["measurement"] == "counts")
    with Guest(guest.kernel, rootfs, extra_append=kmemleak.BOOT_PARAM) as g:
        assert kmemleak.BOOT_PARAM in g.run("cat /proc/cmdline").stdout
        unfiltered = count_checks(g, faultsetup.FaultOptions())
        # the pipeline's way: RunOptions(kmemleak=True) sets the cache filter and scans
        opts = RunOptions(suite="faults", out=tmp_path, variants=(variant,), profile="faults",
                          scenarios=load_scenarios([SCENARIO]), count_only_above=0, kmemleak=True,
                          icount=False, log=print)
        res = SuiteResult()
        assert run_on_guest(opts, variant, g, plan(opts), ObservationLog(tmp_path), res)
    recs = read_records(tmp_path / "observations.jsonl")
    filtered = next(r for r in recs if r["measurement"] == "check_count")
    leak = next(r for r in recs if r["measurement"] == "kmemleak")
    print(f"{variant} {SCENARIO}: checks without kmemleak {plain}, with kmemleak {unfiltered}, "
          f"with kmemleak + cache filter {filtered['value']} (simulator {want}); "
          f"scan {leak['values']['scan_seconds']} s")
    assert filtered["fault_settings"]["attrs"]["failslab"]["cache-filter"] == "Y"
    assert set(filtered["fault_settings"]["cache_filter"]) >= {"maple_node", "vm_area_struct", "anon_vma",
                                                               "anon_vma_chain"}
    assert filtered["value"] == plain == want
    assert unfiltered > plain  # kmemleak's own allocations under dup_mmap are checks without the filter
    assert res.errors == [] and leak["value"] == 0 and leak["values"]["report"] == ""
    assert leak["kmemleak"] is True and filtered["kmemleak"] is True


def faults_run(out: Path, monkeypatch: pytest.MonkeyPatch, patches: str) -> tuple[SuiteResult, list[dict], list[dict]]:
    opts = RunOptions(suite="faults", out=out, variants=("patched",), scenarios=load_scenarios([SCENARIO]),
                      kmemleak=True, log=print, patches=tuple(Path(p) for p in patches.split()))
    res = run_suite(opts)
    df = compare_dir(out)
    return res, read_records(out / "observations.jsonl"), df.to_dict(orient="records")


def test_planted_leak_gives_a_kmemleak_verdict_and_a_clean_kernel_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_kernel("patched", "faults", patches=[PLANTED], progress=False)  # 1-3 min when not cached
    res, recs, rows = faults_run(tmp_path / "planted", monkeypatch, str(PLANTED))
    # one unreferenced anon_vma per step whose injected failure is anon_vma_fork's
    # anon_vma_chain allocation (the planted bug skips put_anon_vma() there)
    sites = [p for p in predicted("patched") if p["measurement"] == "fault_outcome" and p.get("injected")
             and p.get("site") == "anon_vma_fork" and p.get("cache") == "anon_vma_chain"]
    leak = next(r for r in recs if r["measurement"] == "kmemleak")
    objs = leak["values"]["leaks"]
    print(f"planted: {len(objs)} unreferenced objects, {len(sites)} predicted steps at anon_vma_fork/"
          f"anon_vma_chain; scan {leak['values']['scan_seconds']} s\n{kmemleak.summary(objs)}")
    assert sites and leak["value"] == len(objs) == len(sites)
    assert all("anon_vma_fork" in " ".join(o["backtrace"]) and o["comm"] == "faultsweep" for o in objs)
    [row] = [r for r in rows if r["measurement"] == "kmemleak"]
    assert row["verdict"] == "crashed" and row["observed"] == f"{len(sites)} unreferenced objects"
    assert "unreferenced object 0x" in row["detail"] and "anon_vma_fork" in row["detail"]
    # the fault outcomes themselves match the model: only kmemleak sees this bug
    outcomes = [r for r in rows if r["measurement"] == "fault_outcome"]
    checks = next(p["checks"] for p in predicted("patched") if p["measurement"] == "counts")
    assert len(outcomes) == checks + 1 and all(r["verdict"] == "match" for r in outcomes)
    # the scan's "new suspected memory leaks" console line was seen and let pass: no crash
    # record, no second guest
    assert leak["values"]["console_lines"] >= 1
    assert res.errors == [] and res.restarts == 0
    assert not [r for r in recs if r["measurement"] == "error"]

    res, recs, rows = faults_run(tmp_path / "clean", monkeypatch, "")
    [row] = [r for r in rows if r["measurement"] == "kmemleak"]
    assert row["verdict"] == "match" and row["observed"] == "no kmemleak report"
    leak = next(r for r in recs if r["measurement"] == "kmemleak")
    assert leak["value"] == 0 and leak["values"]["console_lines"] == 0
    assert res.errors == [] and res.restarts == 0
