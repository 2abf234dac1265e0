"""Small instances of the four suites on the real kernels (faults profile) of both variants,
through the same code `forkdiff run` uses (orchestrator.run.suites.run_on_guest), asserting what
the records say: the kernel's fork semantics, fault outcomes, counts and timings' shape."""

from __future__ import annotations

import hashlib
from pathlib import Path

from orchestrator.analysis.compare import compare_dir
from orchestrator.results.observations import ObservationLog, read_records
from orchestrator.run.suites import (
    RunOptions,
    SuiteResult,
    load_scenarios,
    pending,
    plan,
    run_on_guest,
)
from orchestrator.vm.guest import Guest
from simulator import runconfig


def run(guest: Guest, out: Path, suite: str, **kw) -> tuple[RunOptions, list[dict]]:
    opts = RunOptions(suite=suite, out=out, variants=(guest.kernel.variant,),
                      profile=guest.kernel.profile, icount=guest.icount, log=print, **kw)
    log = ObservationLog(out)
    res = SuiteResult()
    assert run_on_guest(opts, guest.kernel.variant, guest, plan(opts), log, res)
    assert res.errors == []
    recs = read_records(out / "observations.jsonl")
    assert len(recs) == res.records
    for r in recs:
        assert r["variant"] == guest.kernel.variant and r["suite"] == suite
        assert r["kernel_release"] == guest.kernel.release
        assert r["qemu_mode"] == guest.qemu_mode and r["profile"] == guest.kernel.profile
    assert len({r["key"] for r in recs}) == len(recs)
    return opts, recs


def by(recs: list[dict], scenario: str, measurement: str) -> list[dict]:
    return [r for r in recs if r["scenario"]["name"] == scenario and r["measurement"] == measurement]


def test_maps_suite(guest: Guest, tmp_path: Path) -> None:
    names = ["dontfork-only", "wipeonfork-only", "mixed-small"]
    opts, recs = run(guest, tmp_path, "maps", scenarios=load_scenarios(names))
    for sc in load_scenarios(names):
        before = by(recs, sc.name, "parent_before")[0]["values"]
        child = by(recs, sc.name, "child")[0]["values"]
        after = by(recs, sc.name, "parent_after")[0]["values"]
        child_ranges = {(int(m["start"], 16), int(m["end"], 16)) for m in child["maps"]}
        parent_ranges = {(int(m["start"], 16), int(m["end"], 16)) for m in before["maps"]}
        for v in sc.layout():
            assert (v.start, v.end) in parent_ranges
            assert ((v.start, v.end) in child_ranges) == (v.advice != "dontfork"), v
        dontfork = sum(v.advice == "dontfork" for v in sc.layout())
        assert child["map_count"] == before["map_count"] - dontfork
        assert after["unchanged"] is True and after["maps"] == before["maps"]
        for x in by(recs, sc.name, "child_layout")[0]["values"]["vmas"]:
            if x["advice"] == "dontfork":
                assert not x["present"] and not x["overlapped"]
            else:
                assert x["present"] and x["zero"] is True
    # a finished run leaves nothing to do on --resume
    opts.resume = True
    assert pending(opts, guest.kernel.variant, plan(opts), ObservationLog(tmp_path)) == []


def test_faults_suite(guest: Guest, tmp_path: Path) -> None:
    names = ["anon-touched-21", "mixed-small"]
    _, recs = run(guest, tmp_path, "faults", scenarios=load_scenarios(names), max_k=5000)
    fs = recs[0]["fault_settings"]
    assert fs["stack_filter"] is True and fs["function"] == "dup_mmap"
    assert 0 < int(fs["require_start"], 16) < int(fs["require_end"], 16)
    assert fs["attrs"]["failslab"]["ignore-gfp-wait"] == "N"
    assert fs["attrs"]["failslab"]["probability"] == "0"
    check_recorded_kernel_config(guest, recs)
    # compared under the recorded config and settings, nothing assumed: every row matches
    df = compare_dir(tmp_path)
    assert "run_config" not in set(df["measurement"]) and (df["verdict"] == "match").all()
    assert (df["measurement"] == "fault_outcome").sum() > 100
    for name in names:
        checks = by(recs, name, "check_count")[0]["value"]
        end = by(recs, name, "sweep_end")[0]["values"]
        faults = sorted(by(recs, name, "fault"), key=lambda r: r["repeat"])
        print(f"{guest.kernel.variant} {name}: {checks} counted allocations under dup_mmap, "
              f"{end['failed_forks']} failed forks, {end['absorbed_faults']} absorbed")
        assert end["complete"] is True
        assert [r["repeat"] for r in faults] == list(range(1, checks + 1))  # the sweep ends
        assert by(recs, name, "not_reached")[0]["value"] == checks + 1
        failed = [r["values"] for r in faults if r["value"] == -1]
        assert failed and all(f["errno"] == 12 for f in failed)  # ENOMEM
        assert all(f["maps_unchanged"] is True for f in failed)  # parent intact every time
        assert end["maps_changed"] == 0 and end["maps_unchanged_at_end"] is True
        for r in faults:  # slab objects per k: allocated by the fork, left after it settled
            assert set(r["values"]["alloc"]) >= {"maple_node", "vm_area_struct", "anon_vma"}
            assert set(r["values"]["net"]) == set(r["values"]["alloc"])
        # the first allocation under dup_mmap has no fallback: failing it fails fork
        assert faults[0]["value"] == -1
    # touched anon VMAs: anon_vma_chain is tried with GFP_NOWAIT first, then GFP_KERNEL, so
    # some injected faults are absorbed and fork succeeds
    assert by(recs, "anon-touched-21", "sweep_end")[0]["values"]["absorbed_faults"] > 0
    # the clean kernel's failure path: every failed fork allocates exactly what the simulator's
    # trace says up to the failing check, and every fork (failed or absorbed) and every sweep
    # gives back everything (0 leaks), compared through the same code make vm-test uses (df)
    leak = df[df["measurement"].isin(["leak_after_fork", "sweep_leak", "failed_fork_allocs"])]
    n_failed = sum(1 for r in recs if r["measurement"] == "fault" and r["value"] == -1)
    assert (leak["measurement"] == "failed_fork_allocs").sum() == n_failed > 0
    assert (leak["measurement"] == "sweep_leak").sum() == len(names)
    bad = leak[leak["verdict"] != "match"]
    assert bad.empty, bad[["scenario", "measurement", "key", "observed", "predicted", "detail"]].to_string()


# Files the running kernel has exactly when the option is on: what the kernel shows of itself.
WITNESS = {"CONFIG_PER_VMA_LOCK": "/sys/kernel/slab/vma_lock",
           "CONFIG_TRANSPARENT_HUGEPAGE": "/sys/kernel/mm/transparent_hugepage",
           "CONFIG_KSM": "/sys/kernel/mm/ksm",
           "CONFIG_NUMA": "/sys/devices/system/node",
           "CONFIG_USERFAULTFD": "/proc/sys/vm/unprivileged_userfaultfd",
           "CONFIG_SLUB_STATS": "/sys/kernel/slab/maple_node/alloc_fastpath",
           "CONFIG_KFENCE": "/sys/kernel/debug/kfence"}


def check_recorded_kernel_config(guest: Guest, recs: list[dict]) -> None:
    """Every record carries the booted kernel's config: the hash of the build's .config and,
    for every option the simulator's rules read, the value that .config gives it (read here
    line by line); where the running kernel shows an option in sysfs/procfs, it agrees."""
    text = Path(guest.kernel.config).read_bytes()
    lines = set(text.decode().splitlines())
    kc = recs[0]["kernel_config"]
    assert all(r["kernel_config"] == kc for r in recs)
    assert kc["sha256"] == hashlib.sha256(text).hexdigest()
    assert set(kc["options"]) == set(runconfig.OPTIONS)
    for opt, value in kc["options"].items():
        set_to = [ln.split("=", 1)[1] for ln in lines if ln.startswith(f"{opt}=")]
        assert set_to in ([], ["y"]), (opt, set_to)  # bool options: "y", "is not set" or absent
        assert value == ("y" if set_to == ["y"] else "n"), opt
    present = guest.run("for p in " + " ".join(WITNESS.values())
                        + "; do test -e $p && echo $p; done; true", timeout=30).stdout.split()
    for opt, path in WITNESS.items():
        assert (path in present) == (kc["options"][opt] == "y"), (opt, path, present)
    print(f"{guest.kernel.variant}: kernel_config {kc['sha256'][:12]} "
          + " ".join(f"{o[7:]}={v}" for o, v in kc["options"].items()))


def test_counts_suite(guest: Guest, tmp_path: Path) -> None:
    names = ["anon-touched-21", "anon-touched-421"]
    _, recs = run(guest, tmp_path, "counts", scenarios=load_scenarios(names), repeats=5)
    med = {}
    for name in names:
        reps = by(recs, name, "repeat")
        assert sorted(r["repeat"] for r in reps) == list(range(5))
        summary = by(recs, name, "summary")[0]
        med[name] = summary["value"]
        vals = sorted(r["value"] for r in reps)
        assert summary["value"] == vals[2]  # the median of the five repeats
        vmas = summary["values"]["median"]["vm_area_struct"]["alloc"]
        map_count = summary["values"]["map_count"]
        assert vmas >= map_count  # one vm_area_struct per copied VMA at least
        print(f"{guest.kernel.variant} {name}: maple_node allocs/fork {summary['value']}, "
              f"vm_area_struct {vmas}, map_count {map_count}")
    assert 0 < med["anon-touched-21"] < med["anon-touched-421"]


def test_spawn_suite(guest: Guest, tmp_path: Path) -> None:
    _, recs = run(guest, tmp_path, "spawn", vmas=(21, 421), duration=0.3, repeats=1)
    for n in (21, 421):
        layout = by(recs, f"total-{n}", "layout")[0]["values"]
        spawn = by(recs, f"total-{n}", "spawn")[0]["values"]
        assert layout["map_count"] == n and spawn["map_count"] == n
        assert spawn["forks"] > 0 and spawn["fork_failures"] == 0 and spawn["seconds"] >= 0.3
        print(f"{guest.kernel.variant} total {n}: {spawn['forks_per_s']:.0f} forks/s")
