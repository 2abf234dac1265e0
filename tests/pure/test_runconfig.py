"""The option -> behaviour rules (simulator/runconfig.py). The kernel_config and fault_settings
dicts here are FAKES written by hand in the format the suites record (no kernel, no guest);
tests/vm/test_suites.py checks what real runs record, tests/tree/test_kernel_built.py what the real
build's .config holds. Predictions are made by the real simulator; expected values come from
the kernel's rules (one vma_lock per copied VMA, ...), not from the simulator's output."""

from __future__ import annotations

import hashlib

import pytest

from orchestrator.prepare.kconfig import merged_requests, profile_fragments, run_record
from simulator import predict, runconfig
from simulator.fork import GFP_NOWAIT
from simulator.scenario import from_dict

RULED = {r.option for r in runconfig.RULES}
MIXED = from_dict({"name": "m", "groups": [
    {"count": 3, "touch": "all"}, {"count": 2, "advice": "dontfork", "touch": "all"},
    {"count": 2, "advice": "wipeonfork", "touch": "all"}, {"count": 1, "kind": "file", "prot": "r"}]})


def kconfig(**over: str) -> dict:
    """A recorded kernel_config: the profiles' values, with CONFIG_<key> overridden."""
    opts = {r.option: r.assumed for r in runconfig.RULES}
    opts.update({f"CONFIG_{k}": v for k, v in over.items()})
    return {"sha256": "0" * 64, "options": opts}


def faults(stack_filter: bool = True, function: str = "dup_mmap", slab_wait: str = "N",
           page_wait: str = "Y", min_order: str = "32", page: bool = True, **slab: str) -> dict:
    """A recorded fault_settings (orchestrator/run/faultsetup.py FaultSettings.to_dict())."""
    attrs = {"failslab": {"probability": "0", "ignore-gfp-wait": slab_wait, **slab}}
    if page:
        attrs["fail_page_alloc"] = {"probability": "0", "ignore-gfp-wait": page_wait,
                                    "min-order": min_order}
    return {"stack_filter": stack_filter, "function": function if stack_filter else "",
            "require_start": "0x1", "require_end": "0x2", "next_symbol": "x",
            "stacktrace_depth": 32, "attrs": attrs}


def predictions(rm: runconfig.RunModel) -> dict[str, dict]:
    recs = predict.records(MIXED, "patched", settings=rm.settings, config=rm.config,
                           measurements=("counts", "map_count", "alloc_trace"))
    return {r["measurement"]: r for r in recs}


def test_what_the_suites_record_today_is_modelled_as_recorded():
    rm = runconfig.resolve("faults", kconfig(), faults())
    assert rm.modelled and rm.assumed == ()
    assert rm.config.per_vma_lock is True
    s = rm.settings
    assert (s.failslab_ignore_gfp_wait, s.page_ignore_gfp_wait, s.page_min_order, s.stack_filter) \
        == (False, True, 32, "dup_mmap")


def test_per_vma_lock_follows_the_recorded_config():
    """vm_area_dup() -> vma_lock_alloc() exists only with CONFIG_PER_VMA_LOCK: one vma_lock
    (GFP_KERNEL, a counted check) per copied VMA, none without it."""
    on = predictions(runconfig.resolve("faults", kconfig(PER_VMA_LOCK="y"), faults()))
    off_rm = runconfig.resolve("faults", kconfig(PER_VMA_LOCK="n"), faults())
    assert off_rm.modelled and off_rm.config.per_vma_lock is False
    off = predictions(off_rm)
    copied = on["map_count"]["child"]
    assert copied == off["map_count"]["child"] > 0
    assert on["counts"]["objects"]["vma_lock"] == copied
    assert "vma_lock" not in off["counts"]["objects"]
    assert on["counts"]["checks"] - off["counts"]["checks"] == copied
    assert on["counts"]["kernel_config"]["per_vma_lock"] is True
    assert off["counts"]["kernel_config"]["per_vma_lock"] is False


def test_maple_alloc_follows_the_recorded_facts():
    """kernel_facts.maple_alloc selects the maple tree's allocation rules: none recorded (the
    default tree) and "prealloc" are 6.12's, "ondemand" is 6.1's, "sheaves" 7.x's; anything
    else (a value no rule knows) is not predicted, naming the fact."""
    assert runconfig.resolve("faults", kconfig(), faults()).config.maple_alloc == "prealloc"
    rm = runconfig.resolve("faults", kconfig(), faults(), {"maple_alloc": "ondemand"})
    assert rm.modelled and rm.config.maple_alloc == "ondemand"
    bad = runconfig.resolve("faults", kconfig(), faults(), {"maple_alloc": "no-such-rule"})
    assert not bad.modelled
    assert [n.what for n in bad.tree_not_modelled] == ["kernel_facts.maple_alloc"]
    assert "no-such-rule" in bad.tree_not_modelled[0].message()


def test_failslab_ignore_gfp_wait_y_counts_only_allocations_that_cannot_sleep():
    """mm/failslab.c: with ignore-gfp-wait Y, allocations with __GFP_DIRECT_RECLAIM are skipped;
    under dup_mmap that leaves the GFP_NOWAIT ones (anon_vma_clone's chains, NULL stores)."""
    rm = runconfig.resolve("faults", kconfig(), faults(slab_wait="Y"))
    assert rm.modelled and rm.settings.failslab_ignore_gfp_wait is True
    events = predictions(rm)["alloc_trace"]["events"]
    counted = [e for e in events if e["counted"]]
    assert counted and all(e["gfp"] == GFP_NOWAIT for e in counted)
    assert any(e["gfp"] != GFP_NOWAIT for e in events)


@pytest.mark.parametrize("option,value", [("TRANSPARENT_HUGEPAGE", "y"), ("MEMCG", "y"),
                                          ("MEM_ALLOC_PROFILING", "y"), ("MMU", "n")])
def test_an_option_without_a_model_is_named_with_what_to_do(option, value):
    rm = runconfig.resolve("faults", kconfig(**{option: value}), faults())
    assert not rm.modelled
    [nm] = rm.not_modelled
    rule = next(r for r in runconfig.RULES if r.option == f"CONFIG_{option}")
    assert (nm.what, nm.value) == (f"CONFIG_{option}", value)
    assert f"CONFIG_{option}={value} is not modelled" in nm.message()
    assert rule.todo and rule.todo in nm.message()


def test_rules_apply_to_the_suites_whose_predictions_they_change():
    # MEMCG adds failslab checks (faults) but no object of the counted caches (counts) or VMA
    assert not runconfig.resolve("faults", kconfig(MEMCG="y"), faults()).modelled
    assert runconfig.resolve("maps", kconfig(MEMCG="y"), None).modelled
    assert runconfig.resolve("counts", kconfig(MEMCG="y"), None).modelled
    # SLUB_STATS is what the counts suite reads; the fault sweep does not need it
    [nm] = runconfig.resolve("counts", kconfig(SLUB_STATS="n"), None).not_modelled
    assert nm.what == "CONFIG_SLUB_STATS"
    assert runconfig.resolve("faults", kconfig(SLUB_STATS="n"), faults()).modelled
    # THP changes layouts as well: every suite
    for suite in ("maps", "faults", "counts", "spawn"):
        assert not runconfig.resolve(suite, kconfig(TRANSPARENT_HUGEPAGE="y"), None).modelled


@pytest.mark.parametrize("option", ["NUMA", "USERFAULTFD", "KSM", "ANON_VMA_NAME", "SLUB_TINY"])
def test_options_that_allocate_only_for_what_the_guest_never_asks_for(option):
    """mpol_dup(NULL), dup_userfaultfd() without a context, ksm_fork() without
    MMF_VM_MERGEABLE, dup_anon_vma_name() without a name: no allocation; SLUB_TINY: still one
    failslab check per kmem_cache_alloc(_bulk) call. Same predictions either way."""
    for suite in ("maps", "faults"):
        rm = runconfig.resolve(suite, kconfig(**{option: "y"}), faults())
        assert rm.modelled and rm.options[f"CONFIG_{option}"] == "y"
        assert rm.config == runconfig.resolve(suite, kconfig(), faults()).config


@pytest.mark.parametrize("settings,what", [
    (faults(stack_filter=False), "fault_settings.stack_filter"),
    (faults(function="copy_process"), "fault_settings.function"),
    (faults(page_wait="N", min_order="0"), "fault_settings.fail_page_alloc"),  # --page-faults
    (faults(min_order="1"), "fault_settings.fail_page_alloc"),  # slab pages of order >= 1
    (faults(**{"cache-filter": "Y"}), "fault_settings.failslab.cache-filter"),
])
def test_fault_settings_without_a_model_are_errors_in_the_faults_suite_only(settings, what):
    rm = runconfig.resolve("faults", kconfig(), settings)
    assert [nm.what for nm in rm.not_modelled] == [what]
    assert rm.not_modelled[0].todo
    assert runconfig.resolve("maps", kconfig(), settings).modelled


def test_a_kernel_without_fail_page_alloc_never_counts_pages():
    rm = runconfig.resolve("faults", kconfig(), faults(page=False))
    assert rm.modelled and rm.settings.page_min_order > runconfig.MAX_PAGE_ORDER
    assert all(e["cache"] != "page" for e in predictions(rm)["alloc_trace"]["events"]
               if e["counted"])


def test_records_made_before_the_config_was_recorded_assume_todays_defaults_and_say_so():
    rm = runconfig.resolve("faults", None, None)
    assert rm.modelled and rm.config.per_vma_lock is True
    assert rm.settings == runconfig.DEFAULT_SETTINGS
    assert len(rm.assumed) == 2
    assert "kernel config not recorded" in rm.assumed[0] and "CONFIG_PER_VMA_LOCK=y" in rm.assumed[0]
    assert "fault settings not recorded" in rm.assumed[1]
    # a kernel_config from an older forkdiff that read fewer options: only those are assumed
    partial = kconfig()
    del partial["options"]["CONFIG_KFENCE"]
    [note] = runconfig.resolve("counts", partial, None).assumed
    assert "CONFIG_KFENCE=n" in note and "CONFIG_PER_VMA_LOCK" not in note
    assert runconfig.resolve("maps", partial, None).assumed == ()  # KFENCE: counts only


def test_rules_assume_what_the_kconfig_fragments_ask_for():
    """Rule.assumed is what records without a kernel_config are compared with: it must be what
    kconfig/base.config + faults.config request wherever they name the option (the rest come
    from tinyconfig and are checked on the real build in tests/tree/test_kernel_built.py)."""
    requests = merged_requests([(p.name, p.read_text()) for p in profile_fragments("faults")])
    named = RULED & set(requests)
    assert {"CONFIG_PER_VMA_LOCK", "CONFIG_TRANSPARENT_HUGEPAGE", "CONFIG_SLUB_STATS",
            "CONFIG_SLAB_MERGE_DEFAULT", "CONFIG_KSM", "CONFIG_USERFAULTFD"} <= named
    for r in runconfig.RULES:
        if r.option in requests:
            want = requests[r.option].value
            assert r.assumed == ("n" if want in ("", "n") else want), r.option
    assert len(RULED) == len(runconfig.RULES) == len(runconfig.OPTIONS)


def test_run_record_reads_the_rules_options_from_a_config_file(tmp_path):
    text = ("CONFIG_MMU=y\nCONFIG_PER_VMA_LOCK=y\n# CONFIG_NUMA is not set\n"
            "CONFIG_TRANSPARENT_HUGEPAGE=y\nCONFIG_UNRELATED=y\n")
    cfg = tmp_path / "config"
    cfg.write_text(text)
    rec = run_record(cfg)
    assert rec["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert set(rec["options"]) == RULED
    assert rec["options"]["CONFIG_PER_VMA_LOCK"] == "y"
    assert rec["options"]["CONFIG_TRANSPARENT_HUGEPAGE"] == "y"
    assert rec["options"]["CONFIG_NUMA"] == "n"  # "is not set"
    assert rec["options"]["CONFIG_KSM"] == "n"  # absent


def test_a_cache_filter_on_every_cache_fork_uses_is_modelled_and_one_missing_is_not():
    """kmemleak runs restrict failslab to fork's caches (cache-filter Y + each cache's failslab
    flag): the same checks as without the filter when every traced cache is flagged."""
    every = {**faults(**{"cache-filter": "Y"}),
             "cache_filter": ["maple_node", "vm_area_struct", "vma_lock", "anon_vma", "anon_vma_chain"]}
    assert runconfig.resolve("faults", kconfig(), every).modelled
    no_lock = {**every, "cache_filter": [c for c in every["cache_filter"] if c != "vma_lock"]}
    bad = runconfig.resolve("faults", kconfig(), no_lock).not_modelled
    assert [nm.what for nm in bad] == ["fault_settings.failslab.cache-filter"]
    assert "vma_lock" in bad[0].value
    # without PER_VMA_LOCK there is no vma_lock cache to flag
    assert runconfig.resolve("faults", kconfig(PER_VMA_LOCK="n"), no_lock).modelled


def test_a_kernel_without_the_stack_filter_is_swept_with_fork_caches_only():
    """x86-64 before 6.3 (6.1) has no FAULT_INJECTION_STACKTRACE_FILTER: faultsetup flags
    fork's caches instead (failslab cache-filter Y; 6.1 has no vma_lock cache). copy_process()
    allocates from those caches only inside dup_mmap(), so fail-nth counts exactly dup_mmap's
    checks, as under the stack filter: the same outcomes. A cache filter that lets any other
    cache count (kmalloc-64 here) is not modelled."""
    fork_caches = ["anon_vma", "anon_vma_chain", "maple_node", "vm_area_struct"]
    off = faults(stack_filter=False, **{"cache-filter": "Y"}) | {"cache_filter": fork_caches}
    kc = kconfig(PER_VMA_LOCK="n")
    rm = runconfig.resolve("faults", kc, off)
    assert rm.modelled and rm.settings.stack_filter is None and rm.settings.modelled_prefix
    with_filter = runconfig.resolve("faults", kc, faults())
    sc = from_dict({"name": "a", "groups": [{"count": 3, "touch": "all"}]})
    outs = [[{k: v for k, v in r.items() if k != "settings"}
             for r in predict.records(sc, "baseline", settings=m.settings, config=m.config,
                                      measurements=("fault_outcome",))]
            for m in (rm, with_filter)]
    assert outs[0] == outs[1] and all(o.get("modelled", True) for o in outs[0])
    wide = faults(stack_filter=False, **{"cache-filter": "Y"}) | {"cache_filter": [*fork_caches, "kmalloc-64"]}
    bad = runconfig.resolve("faults", kc, wide)
    assert [n.what for n in bad.not_modelled] == ["fault_settings.stack_filter"]
    nothing = runconfig.resolve("faults", kc, faults(stack_filter=False))
    assert [n.what for n in nothing.not_modelled] == ["fault_settings.stack_filter"]


def test_bulk_objects_are_counted_in_recorded_debug_caches_of_a_single_object_tree():
    """RunModel.counts_bulk(): 6.12's and 7.2's counters count bulk objects in every cache;
    6.1's (slub_bulk_stats false) only in the caches the guest read back as debug caches
    (slab_debug, orchestrator/run/slubdebug.py), and only where the tree's debug slow path
    gives single objects (slub_debug_single). Hand-written facts and slab_debug (FAKES)."""
    f61 = {"slub_bulk_stats": False, "slub_debug_single": True}
    debug = {"boot_param": "slub_debug=F,maple_node", "debug_caches": ["maple_node"]}
    rm = runconfig.resolve("counts", kconfig(), None, f61, debug)
    assert rm.counts_bulk("maple_node") and not rm.counts_bulk("vm_area_struct")
    assert rm.single_object_caches == ("maple_node",)
    assert not runconfig.resolve("counts", kconfig(), None, f61, None).counts_bulk("maple_node")
    assert not runconfig.resolve("counts", kconfig(), None, f61 | {"slub_debug_single": False},
                                 debug).counts_bulk("maple_node")
    for facts in (None, {"slub_bulk_stats": True}):  # 6.12's records, with or without the fact
        rm = runconfig.resolve("counts", kconfig(), None, facts, None)
        assert rm.counts_bulk("maple_node") and rm.counts_bulk("vm_area_struct")


def test_records_with_different_slab_debug_are_not_predictable():
    """A job whose records were made under different slub_debug boots (a resumed run?) is not
    modelled (ObservedJob.run_model); the same slab_debug on every record is."""
    from orchestrator.analysis.compare_jobs import ObservedJob

    base = {"measurement": "summary", "kernel_config": kconfig(), "fault_settings": None,
            "kernel_facts": {"slub_bulk_stats": False, "slub_debug_single": True}}
    one = {"boot_param": "slub_debug=F,maple_node", "debug_caches": ["maple_node"]}
    same = ObservedJob("counts", "baseline", "faults", {"name": "x"}, "forkcount", "",
                       [base | {"slab_debug": one}, base | {"slab_debug": one}])
    assert same.run_model.modelled and same.run_model.counts_bulk("maple_node")
    mixed = ObservedJob("counts", "baseline", "faults", {"name": "x"}, "forkcount", "",
                        [base | {"slab_debug": one}, base | {"slab_debug": None}])
    assert not mixed.run_model.modelled


def test_maple_write_comes_from_the_fact_or_the_records_version():
    """maple_write (treefacts: struct maple_copy / maple_big_node in lib/maple_tree.c) selects
    MapleTree(write=). A record made before the fact was read gets its tree's version's value:
    6.12 and older wrote through maple_big_node, 7.2 through maple_copy; a version between them
    is not guessed. The port knows only the pairs it has read: ondemand/prealloc with big_node
    (6.1, 6.12), sheaves with maple_copy (7.2)."""
    def facts(version, **over):
        vt = [int(x) for x in version.split(".")]
        return {"version": version, "version_tuple": vt, **over}

    f612 = facts("6.12.117", maple_alloc="prealloc")
    f61 = facts("6.1.176", maple_alloc="ondemand")
    f72 = facts("7.2.13", maple_alloc="sheaves", slab_sheaves=True)
    assert runconfig.facts_model(f612)[0]["maple_write"] == "big_node"
    assert runconfig.facts_model(f61)[0]["maple_write"] == "big_node"
    assert runconfig.facts_model(f72)[0]["maple_write"] == "maple_copy"
    assert runconfig.facts_model(f72 | {"maple_write": "maple_copy"})[0]["maple_write"] == "maple_copy"
    assert runconfig.maple_model(f72) == ("sheaves", "maple_copy", [])
    assert runconfig.maple_model(f612) == ("prealloc", "big_node", [])
    assert runconfig.maple_model(f61) == ("ondemand", "big_node", [])
    assert runconfig.maple_model(None) == ("prealloc", "big_node", [])
    # a version between 6.12 and 7.2 without the fact, a shape not known, a pair never read
    mid = facts("6.19.2", maple_alloc="sheaves", slab_sheaves=True)
    assert "kernel_facts.maple_write" in {nm.what for nm in runconfig.facts_model(mid)[1]}
    odd = runconfig.maple_model(f72 | {"maple_write": "unknown"})[2]
    assert [nm.what for nm in odd] == ["kernel_facts.maple_write"]
    mixed = runconfig.maple_model(f612 | {"maple_write": "maple_copy"})[2]
    assert [(nm.what, nm.value) for nm in mixed] == [("kernel_facts.maple_write", "maple_copy")]
    # and it reaches the prediction's KernelConfig
    assert runconfig.resolve("faults", None, None, f72).config.maple_write == "maple_copy"
    assert runconfig.resolve("faults", None, None, f612).config.maple_write == "big_node"
