"""The three real trees forkdiff supports: Debian's 6.12 (the default), 6.1 (bookworm) and 7.2
(sid), the last two fetched through KERNEL_TREE=debian:SUITE:PACKAGE into the cache (once: about
a minute each on a cold cache, nothing afterwards). On each: the facts orchestrator/prepare/treefacts.py
reads, the kconfig profiles through the real tinyconfig + merge_config.sh + olddefconfig with
the version annotations, and which variants the tree gives. The expected facts were read by
hand from each tree's source (kernel/fork.c or mm/mmap.c, include/linux/mm_types.h,
lib/maple_tree.c, arch/x86/entry/vdso/vma.c)."""

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.prepare import variants
from orchestrator.prepare.kconfig import configure, parse_config, profile_fragments
from orchestrator.prepare.kernel import variant_patches
from orchestrator.prepare.patches import baseline_error, baseline_patches, check_applies
from orchestrator.prepare.tree import resolve_tree
from orchestrator.prepare.treefacts import detect, version_tuple
from simulator import runconfig

SPECS = {"6.1": "debian:bookworm:linux-source-6.1", "6.12": None, "7.2": "debian:sid:linux-source-7.2"}
EXPECTED = {
    "6.1": {"dup_mmap_file": "kernel/fork.c", "dup_mmap_model": "baseline", "fork_failure": "copies",
            "vma_lock": "none", "maple_alloc": "ondemand", "vdso_vclock": False,
            "maple_write": "big_node"},
    "6.12": {"dup_mmap_file": "kernel/fork.c", "dup_mmap_model": "patched", "fork_failure": "marker",
             "vma_lock": "cache", "maple_alloc": "prealloc", "vdso_vclock": False,
             "maple_write": "big_node"},
    "7.2": {"dup_mmap_file": "mm/mmap.c", "dup_mmap_model": "patched", "fork_failure": "teardown",
            "vma_lock": "embedded", "maple_alloc": "sheaves", "vdso_vclock": True,
            "maple_write": "maple_copy"},
}


@pytest.fixture(scope="module")
def trees():
    return {name: resolve_tree(spec) for name, spec in SPECS.items()}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_facts_of_the_real_trees(trees, name):
    tree = trees[name]
    facts = detect(tree.path)
    assert facts["version"].startswith(name + ".") and facts["version"] == tree.version
    assert facts["version_tuple"][:2] == [int(x) for x in name.split(".")]
    assert {k: facts[k] for k in EXPECTED[name]} == EXPECTED[name]
    # the simulator models all three trees whole (7.2's maple_copy write path included)
    assert runconfig.tree_problems(facts) == []
    assert runconfig.partial_model(facts) == []


def test_fetched_trees_are_read_only_and_named_by_package_version(trees):
    for name in ("6.1", "7.2"):
        tree = trees[name]
        assert tree.identity.startswith(f"debian:linux-source-{name}:")
        assert tree.path.name == f"linux-source-{name}_{tree.identity.rsplit(':', 1)[1]}"
        assert not (tree.path.stat().st_mode & 0o222)
        assert not ((tree.path / "mm/mmap.c").stat().st_mode & 0o222)
    # a second resolve is the cache (the pin file), not a fetch: same folder, no network needed
    again = subprocess.run([sys.executable, "-c", "from orchestrator.prepare.tree import resolve_tree;"
                            f"print(resolve_tree({SPECS['7.2']!r}).path)"],
                           capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == str(trees["7.2"].path) and "fetching" not in again.stderr


def _runner(cmd, phase):
    res = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    assert res.returncode == 0, f"{phase}: {res.stderr[-500:]}"


@pytest.mark.parametrize("name,profile", [("6.1", "faults"), ("6.1", "perf"), ("7.2", "faults"),
                                          ("7.2", "perf")])
def test_profiles_build_configs_on_other_trees(trees, tmp_path, name, profile):
    """Real tinyconfig + merge + olddefconfig with the tree's version: nothing requested is
    dropped (configure() raises otherwise), and what the suites need is there."""
    tree = trees[name]
    config = configure(tree.path, tmp_path / "o", profile_fragments(profile), _runner,
                       version_tuple(tree.version))
    final = parse_config(config.read_text())
    assert final["CONFIG_SLUB"] == "y" and final.get("CONFIG_SLOB", "n") == "n"
    if profile == "faults":
        assert final["CONFIG_FAILSLAB"] == "y" and final["CONFIG_SLUB_STATS"] == "y"
        want = "n" if name == "6.1" else "y"  # x86-64 gets the stack filter with 6.3
        assert final.get("CONFIG_FAULT_INJECTION_STACKTRACE_FILTER", "n") == want
    assert final.get("CONFIG_PER_VMA_LOCK", "n") == ("n" if name == "6.1" else "y")


def test_variants_each_tree_gives(trees):
    # 7.2: the baseline patch (written for 6.12) does not apply, so the run is patched only,
    # or with PATCHES= baseline = the tree as it is (the reference kernel, model "patched")
    with pytest.raises(ForkdiffError, match="does not apply"):
        check_applies(trees["7.2"].path, baseline_patches())
    cause = baseline_error(trees["7.2"].path)
    assert cause and "kernel/fork.c: Hunk #1 FAILED" in cause
    assert variants.plan("patched", lambda: cause, ()).variants == ("patched",)
    ref = variants.plan("patched", lambda: cause, (Path("user.patch"),))
    assert ref.made_of["baseline"] == variants.TREE and ref.models["baseline"] == "patched"
    assert variant_patches("baseline", "patched", [], "7.2", baseline_applies=False) == []
    assert baseline_error(trees["6.12"].path) is None
    # 6.1: baseline is the tree itself; patched needs patches
    assert variant_patches("baseline", "baseline", [], "6.1") == []
    with pytest.raises(ForkdiffError, match="needs patches"):
        variant_patches("patched", "baseline", [], "6.1")
    # 6.12 unchanged: baseline = tree + patches/baseline, patched = tree (+ PATCHES)
    check_applies(trees["6.12"].path, baseline_patches())
    assert variant_patches("baseline", "patched", [], "6.12") == baseline_patches()
    assert variant_patches("patched", "patched", [], "6.12") == []
