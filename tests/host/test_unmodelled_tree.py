"""A run on a tree the simulator does not model (simulator/runconfig.py tree_problems,
orchestrator/analysis/kernel_only.py). The observation set is FAKE: the records of tests/data/small-run
(recorded on 6.12) with a hand-written `kernel_facts` of a tree whose fork_failure and vma_lock
the tree-fact reader could not classify ("unknown") added, and for the leak check
hand-written `net` values (small-run was recorded before faultsweep measured leaks). It tests
our bookkeeping: skipped model rows, kernel-only rows, one failing leak; not a kernel."""

import copy
import json
from pathlib import Path

import pytest
from fake_tree import synthetic_tree

from orchestrator.analysis import report
from orchestrator.analysis.compare import compare_records
from orchestrator.analysis.job_predictions import Predictor, load_elves
from orchestrator.results.verdicts import failing
from simulator import runconfig

DATA = Path(__file__).parents[1] / "data" / "small-run"
FACTS_612 = {"version": "6.12.117", "version_tuple": [6, 12, 117], "dup_mmap_file": "kernel/fork.c",
             "dup_mmap_model": "patched", "fork_failure": "marker", "vma_lock": "cache",
             "maple_alloc": "prealloc", "vdso_vclock": False}
FACTS_72 = FACTS_612 | {"version": "7.2.13", "version_tuple": [7, 2, 13], "dup_mmap_file": "mm/mmap.c",
                        "fork_failure": "teardown", "vma_lock": "embedded", "maple_alloc": "sheaves",
                        "vdso_vclock": True}
# a tree whose dup_mmap() failure path and VMA lock match none of the known shapes
FACTS_UNKNOWN = FACTS_72 | {"version": "7.9.1", "version_tuple": [7, 9, 1], "fork_failure": "unknown",
                            "vma_lock": "unknown"}
FACTS_61 = {"version": "6.1.192", "version_tuple": [6, 1, 192], "dup_mmap_file": "kernel/fork.c",
            "dup_mmap_model": "baseline", "fork_failure": "copies", "vma_lock": "none",
            "maple_alloc": "ondemand", "vdso_vclock": False}


def _records(facts=None, nets=None):
    recs = [json.loads(line) for line in (DATA / "observations.jsonl").read_text().splitlines()]
    for r in recs:
        if facts is not None:
            r["kernel_facts"] = copy.deepcopy(facts)
        if nets is not None and r["suite"] == "faults" and r["measurement"] in ("fault", "check_count",
                                                                                 "sweep_end"):
            k = r["values"].get("k")
            r["values"]["net"] = dict(nets.get((r["variant"], r["scenario"]["name"], k),
                                           {"vm_area_struct": 0, "anon_vma": 0}))
    return recs


@pytest.fixture(scope="module")
def predictor():
    return Predictor(load_elves(DATA / "guest-elf.json"))


def test_6_12_facts_are_modelled_and_others_are_named():
    assert runconfig.tree_problems(FACTS_612) == []
    assert runconfig.tree_problems(None) == []  # records without kernel_facts: 6.12
    assert runconfig.tree_problems(FACTS_72) == []  # 7.2 is modelled too
    bad = {nm.what: nm.value for nm in runconfig.tree_problems(FACTS_UNKNOWN)}
    assert bad == {"kernel_facts.fork_failure": "unknown", "kernel_facts.vma_lock": "unknown"}
    assert all("7.9.1" in nm.message() for nm in runconfig.tree_problems(FACTS_UNKNOWN))
    assert runconfig.tree_problems(FACTS_61) == []  # 6.1 is modelled too
    notice = runconfig.tree_notice(FACTS_UNKNOWN)
    assert notice.startswith("simulator models 6.12, 7.2; this tree 7.9.1 differs in: ")
    assert "fork_failure=unknown" in notice and "kernel-only checks" in notice
    assert runconfig.tree_notice(FACTS_612) is None
    assert runconfig.tree_notice(FACTS_72) is None


def test_widening_a_fact_is_one_entry(monkeypatch):
    monkeypatch.setitem(runconfig.MODELLED_FACTS, "vma_lock", ("cache", "embedded", "none", "unknown"))
    assert [nm.what for nm in runconfig.tree_problems(FACTS_UNKNOWN)] == ["kernel_facts.fork_failure"]


def test_unmodelled_tree_skips_model_rows_and_runs_kernel_only_checks(predictor):
    df, _, _ = compare_records(_records(FACTS_UNKNOWN, nets={}), {"patched": "patched"}, predictor)
    assert failing(df).empty, failing(df).head().to_string()
    skipped = df[df["verdict"] == "skipped"]
    # one per job (scenario x suite x variant; "" is the run-wide info row of unrecorded config)
    jobs = {(s, v, sc) for s, v, sc in zip(df["suite"], df["variant"], df["scenario"], strict=True) if sc}
    assert len(skipped) == len(jobs) == 16
    assert all("not modelled: fork_failure=unknown, vma_lock=unknown" in d for d in skipped["detail"])
    # nothing was predicted: no model measurement
    assert not {"child_maps", "fault_outcome", "checks_per_fork", "child_map_count",
                "maple_node_allocated_per_fork"} & set(df["measurement"])
    # the kernel-only checks ran and match
    ran = df[df["verdict"] == "match"]
    assert {"parent_maps_unchanged", "dontfork_absent", "wipeonfork_zero", "leak_after_fork",
            "parent_maps_after_failure", "sweep_leak"} <= set(ran["measurement"])
    assert (ran["measurement"] == "leak_after_fork").sum() > 300


def test_a_leak_on_an_unmodelled_tree_fails(predictor):
    recs = _records(FACTS_UNKNOWN)
    k = next(r["values"]["k"] for r in recs if r["suite"] == "faults" and r["variant"] == "patched"
             and r["measurement"] == "fault" and r["values"]["fork_result"] < 0)
    name = next(r["scenario"]["name"] for r in recs if r["suite"] == "faults")
    df, _, _ = compare_records(_records(FACTS_UNKNOWN, nets={("patched", name, k): {"vm_area_struct": 2}}),
                               {"patched": "patched"}, predictor)
    bad = failing(df)
    assert list(bad["measurement"]) == ["leak_after_fork"], bad.to_string()
    row = bad.iloc[0]
    assert (row["variant"], row["scenario"], row["key"]) == ("patched", name, f"k={k}")
    assert row["observed"] == "vm_area_struct +2" and row["predicted"] == "0"
    assert f"LEAK at k={k}: 2 vm_area_struct left after the failed fork" in row["detail"]


def test_records_without_facts_are_compared_as_6_12(predictor):
    df, _, _ = compare_records(_records(None), None, predictor)
    assert "skipped" not in set(df["verdict"])
    assert {"child_maps", "fault_outcome"} <= set(df["measurement"])
    assert failing(df).empty


def test_report_and_junit_show_skipped_rows(tmp_path, predictor):
    import xml.etree.ElementTree as ET

    df, _, _ = compare_records(_records(FACTS_UNKNOWN, nets={}), {"patched": "patched"}, predictor)
    xml = report.junit_xml(df)
    n = int((df["verdict"] == "skipped").sum())
    assert n == 16 and xml.count("<skipped message=") == n
    suites = ET.fromstring(xml).findall("testsuite")
    assert sum(int(t.get("skipped")) for t in suites) == n
    assert all(t.get("failures") == "0" and t.get("errors") == "0" for t in suites)


class _StopBeforeBuild(Exception):
    pass




def test_vm_test_says_first_that_the_tree_is_not_modelled(tmp_path, monkeypatch, capsys):
    """The conductor's run on a FAKE tree shaped like no kernel the simulator knows (a 7.9 whose
    dup_mmap() failure path is neither 6.12's marker nor 7.2's teardown), stopped at the first
    kernel build: the notice and the variant decision come before it."""
    from orchestrator import conductor
    from orchestrator.conduct import build as build_stage

    dup = ("__latent_entropy int dup_mmap(struct mm_struct *mm, struct mm_struct *oldmm)\n{\n"
           "\tretval = __mt_dup(&oldmm->mm_mt, &mm->mm_mt, GFP_KERNEL);\n"
           "\t\tcleanup_somehow(mm);\n}\n")
    tree = synthetic_tree(tmp_path / "linux", "int copy_process(void);\n", dup, patchlevel=9)
    built = []

    def fake_build(variant, profile, **kw):
        built.append(variant)
        raise _StopBeforeBuild

    monkeypatch.setattr(build_stage, "build_kernel", fake_build)
    monkeypatch.delenv("PATCHES", raising=False)
    with pytest.raises(_StopBeforeBuild):
        conductor.run(conductor.VmTestOptions(out=tmp_path / "out", tree=str(tree),
                                            suites=("maps", "faults")))
    err = capsys.readouterr().err
    notice = err.index("model: simulator models 6.12, 7.2; this tree 7.9.13 differs in: fork_failure=unknown")
    skipped = err.index("baseline: skipped")
    kernel = err.index("kernel: patched/faults")
    assert notice < skipped < kernel and built == ["patched"]


def test_a_baseline_tree_without_patches_runs_baseline_only(tmp_path, monkeypatch, capsys):
    from orchestrator import conductor
    from orchestrator.conduct import build as build_stage

    tree = synthetic_tree(tmp_path / "linux", BASELINE_61)
    built = []
    monkeypatch.setattr(build_stage, "build_kernel",
                        lambda v, p, **kw: (built.append(v), (_ for _ in ()).throw(_StopBeforeBuild()))[1])
    monkeypatch.delenv("PATCHES", raising=False)
    with pytest.raises(_StopBeforeBuild):
        conductor.run(conductor.VmTestOptions(out=tmp_path / "out", tree=str(tree), suites=("maps",)))
    err = capsys.readouterr().err
    assert "baseline = the tree; no PATCHES, so no patched kernel" in err and built == ["baseline"]


BASELINE_61 = ("static __latent_entropy int dup_mmap(struct mm_struct *mm, struct mm_struct *oldmm)\n{\n"
               "\tretval = mas_expected_entries(&mas, oldmm->map_count);\n\tmas_store(&mas, tmp);\n}\n")


def test_a_partly_modelled_tree_says_which_part():
    """6.1, 6.12 and 7.2 are modelled whole (7.2's maple_copy write path is ported and checked
    against its lib/maple_tree.c by `forkdiff oracle check`), so no run says it is partly
    modelled. Sheaves with the big-node write path (a tree between 6.12 and 7.2, never read)
    is: the run says so in one line naming maple_write. An unmodelled tree has no such line
    (its notice covers it)."""
    for facts in (FACTS_72, FACTS_612, FACTS_61):
        assert runconfig.partial_model(facts) == []
    part = runconfig.partial_model(FACTS_72 | {"maple_write": "big_node"})
    assert len(part) == 1 and part[0].startswith("maple_write=big_node: ")
    assert runconfig.partial_model(FACTS_UNKNOWN) == []
