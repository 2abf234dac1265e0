"""orchestrator/run/slubdebug.py and the boot word a suite's guest gets (suites.boot_slub_debug):
which kernels get slub_debug F on the bulk caches (from the tree facts slub_bulk_stats and
slub_debug_single and the kernel's .config, never from the version), how the flags of fault
injection and of exact counts are composed into one slub_debug= word, and the read-back that
goes into the records. FAKES: kernels are a .config, a manifest dict and a source folder
written here; the guest of read_back() is the one FAKE guest (tests/fake_guest.py), the host's
shell with the sysfs and /proc/cmdline paths pointed at files written here; parse_like_61() re-implements 6.1's kmem_cache_flags()
block matching in Python to check the composed word (the real parser is exercised by the 6.1
VM run, whose records carry what the guest read back)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from fake_guest import FakeGuest

from orchestrator.prepare.treefacts import FACT_KEYS
from orchestrator.run import slubdebug
from orchestrator.run.faultsetup import FORK_CACHES
from orchestrator.run.suites import boot_slub_debug
from orchestrator.suite_defs import REGISTRY
from orchestrator.suite_defs.base import SCENARIO_DIR
from simulator import predict
from simulator.fork import KernelConfig
from simulator.scenario import load

FACTS_61 = {"version": "6.1.176", "slub_bulk_stats": False, "slub_debug_single": True}
FACTS_612 = {"version": "6.12.117", "slub_bulk_stats": True, "slub_debug_single": True}
FACTS_72 = {"version": "7.2.13", "slub_bulk_stats": True, "slub_debug_single": False}
FAULTS_CONFIG = {"CONFIG_SLUB_DEBUG": "y", "CONFIG_SLUB_STATS": "y"}


def test_only_a_kernel_whose_counters_miss_bulk_objects_gets_the_flag() -> None:
    assert slubdebug.stats_flags(FACTS_61, FAULTS_CONFIG) == {"maple_node": "F"}
    assert slubdebug.stats_flags(FACTS_612, FAULTS_CONFIG) == {}
    assert slubdebug.stats_flags(FACTS_72, FAULTS_CONFIG) == {}
    # the same version with other facts decides otherwise: the facts choose, not the version
    assert slubdebug.stats_flags(FACTS_61 | {"slub_bulk_stats": True}, FAULTS_CONFIG) == {}
    # a debug cache whose slow path fills a CPU free list would not count every object
    assert slubdebug.stats_flags(FACTS_61 | {"slub_debug_single": False}, FAULTS_CONFIG) == {}
    assert slubdebug.stats_flags({k: v for k, v in FACTS_61.items() if k != "slub_debug_single"},
                                 FAULTS_CONFIG) == {}
    assert slubdebug.stats_flags(None, FAULTS_CONFIG) == {}  # records of the default tree
    # perf kernels (no SLUB_STATS, no SLUB_DEBUG: spawn timing) get nothing
    assert slubdebug.stats_flags(FACTS_61, {}) == {}
    assert slubdebug.stats_flags(FACTS_61, {"CONFIG_SLUB_STATS": "y"}) == {}
    assert slubdebug.stats_flags(FACTS_61, {"CONFIG_SLUB_DEBUG": "y"}) == {}


def parse_like_61(word: str, cache: str) -> set[str]:
    """The flags 6.1's kmem_cache_flags() gives `cache` from a slub_debug= word: blocks
    separated by ';', each `flags,cache,...`; the first block that names the cache wins."""
    for block in word.removeprefix("slub_debug=").split(";"):
        flags, _, caches = block.partition(",")
        if cache in caches.split(","):
            return set(flags.upper())
    return set()


def test_param_gives_each_cache_the_union_of_its_flags_in_one_block() -> None:
    failslab = dict.fromkeys(FORK_CACHES, "A")
    word = slubdebug.param(failslab, {"maple_node": "F"})
    assert word.startswith("slub_debug=") and word.count("slub_debug=") == 1
    assert parse_like_61(word, "maple_node") == {"A", "F"}
    for c in FORK_CACHES[1:]:
        assert parse_like_61(word, c) == {"A"}
    # every cache named once: a second block naming maple_node would be ignored by the kernel
    named = [c for block in word.removeprefix("slub_debug=").split(";") for c in block.split(",")[1:]]
    assert sorted(named) == sorted(FORK_CACHES)
    assert parse_like_61(slubdebug.param({}, {"maple_node": "F"}), "maple_node") == {"F"}
    assert parse_like_61(slubdebug.param({}, {"maple_node": "F"}), "vm_area_struct") == set()
    assert slubdebug.param(failslab, {}) == "slub_debug=A," + ",".join(FORK_CACHES)
    assert slubdebug.param({}, {}) == ""
    assert slubdebug.param({"maple_node": "F"}, {"maple_node": "F"}) == "slub_debug=F,maple_node"


def test_bulk_caches_are_every_cache_the_simulator_allocates_in_bulk() -> None:
    """BULK_CACHES must hold each cache a fork allocates from with kmem_cache_alloc_bulk(),
    or a count with bulk objects stays short on 6.1: the simulator's bulk events, over the
    default scenarios, on the 6.1 and 6.12 models."""
    names = sorted({n for suite in REGISTRY.values() for n in suite.scenarios})
    seen = set()
    for name in names:
        sc = load(SCENARIO_DIR / f"{name}.yaml")
        for config in (KernelConfig(per_vma_lock=False, maple_alloc="ondemand"), KernelConfig()):
            for p in predict.records(sc, "baseline", program="forkcount", config=config,
                                     measurements=("counts",)):
                seen |= {c for c, n in (p.get("allocated_in_bulk") or {}).items() if n}
    assert seen and seen <= set(slubdebug.BULK_CACHES)


def slab_guest(root: Path, cmdline: str, flags: dict[str, dict[str, str]]) -> FakeGuest:
    """The FAKE guest (tests/fake_guest.py): the host's sh, with /proc/cmdline and each cache's
    /sys/kernel/slab/<cache>/<file> written into root."""
    g = FakeGuest(root=root).sysfs(cmdline=cmdline)
    for cache, files in flags.items():
        for f, v in files.items():
            g.write(f"{slubdebug.SLAB_SYSFS}/{cache}/{f}", v)
    return g


def test_read_back_names_the_word_and_the_debug_caches(tmp_path) -> None:
    word = "slub_debug=A,vm_area_struct,anon_vma,anon_vma_chain;AF,maple_node"
    off = dict.fromkeys(slubdebug.DEBUG_FILES, "0")
    g = slab_guest(tmp_path, f"console=ttyS0 {word} nokaslr",
                   {"maple_node": off | {"sanity_checks": "1"}, "vm_area_struct": off,
                    "anon_vma": off | {"poison": "1"}, "anon_vma_chain": off})
    got = slubdebug.read_back(g, FORK_CACHES)  # vma_lock: no such cache (6.1)
    assert got == {"boot_param": word, "debug_caches": ["maple_node", "anon_vma"]}
    json.dumps(got)  # goes into every record


def test_read_back_without_slub_debug(tmp_path) -> None:
    off = dict.fromkeys(slubdebug.DEBUG_FILES, "0")
    g = slab_guest(tmp_path, "console=ttyS0 nokaslr", {c: off for c in FORK_CACHES})
    assert slubdebug.read_back(g, FORK_CACHES) == {"boot_param": "", "debug_caches": []}


def _kernel(tmp_path: Path, facts: dict, config: str, failslab_ro: bool) -> SimpleNamespace:
    src = tmp_path / "src"
    (src / "mm").mkdir(parents=True, exist_ok=True)
    (src / "o-build").mkdir(exist_ok=True)
    (src / "mm/slub.c").write_text("SLAB_ATTR_RO(failslab);\n" if failslab_ro else "SLAB_ATTR(failslab);\n")
    (tmp_path / "config").write_text(config)
    return SimpleNamespace(config=tmp_path / "config", build_dir=src / "o-build",
                           manifest={"kernel_facts": facts})


CONFIG_61 = ("CONFIG_SLUB_DEBUG=y\nCONFIG_SLUB_STATS=y\nCONFIG_FAILSLAB=y\n"
             "# CONFIG_FAULT_INJECTION_STACKTRACE_FILTER is not set\n")
CONFIG_612 = "CONFIG_SLUB_DEBUG=y\nCONFIG_SLUB_STATS=y\nCONFIG_FAULT_INJECTION_STACKTRACE_FILTER=y\n"


def full_facts(facts: dict) -> dict:
    """Facts with every key detect() makes, so suites.facts_of_kernel() takes the manifest's
    and does not read the fake source folder."""
    return dict.fromkeys(FACT_KEYS, "x") | facts


def test_boot_word_per_suite_and_kernel(tmp_path) -> None:
    k61 = _kernel(tmp_path / "61", full_facts(FACTS_61), CONFIG_61, failslab_ro=True)
    faults = boot_slub_debug("faults", k61)
    assert parse_like_61(faults, "maple_node") == {"A", "F"}
    assert all(parse_like_61(faults, c) == {"A"} for c in FORK_CACHES[1:])
    assert boot_slub_debug("counts", k61) == "slub_debug=F,maple_node"
    assert boot_slub_debug("maps", k61) == ""  # reads no slab counters
    assert boot_slub_debug("spawn", k61) == ""
    k612 = _kernel(tmp_path / "612", full_facts(FACTS_612), CONFIG_612, failslab_ro=False)
    assert [boot_slub_debug(s, k612) for s in ("maps", "faults", "counts", "spawn")] == [""] * 4
    perf61 = _kernel(tmp_path / "perf61", full_facts(FACTS_61), "CONFIG_SLUB=y\n", failslab_ro=True)
    assert boot_slub_debug("counts", perf61) == ""
