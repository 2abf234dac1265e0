"""Which kernels a tree gives and what each is compared with (orchestrator/prepare/variants.py),
and everything downstream that must follow that decision instead of the variant's name: the
kernel build's patches, its cache key and its model check, the run's model map and run.json,
re-comparing a saved folder, the KCIDB test paths and the report.

FAKES, of our own code only: `baseline_error` callables stand in for `patch --dry-run` in the
decision table; synthetic trees (just the files treefacts reads) stand in for kernel trees;
the build stage's build_kernel / build_rootfs, the executor and build_kernel's _Build are replaced so that
nothing is built or booted. The real 7.2 tree and real builds are in tests/tree/test_trees.py and
tests/vm/test_planted_slowdown_72.py."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fake_tree import synthetic_tree

from orchestrator.errors import ForkdiffError
from orchestrator.prepare import kernel as kernel_mod
from orchestrator.prepare import variants
from orchestrator.prepare.kconfig import profile_fragments
from orchestrator.prepare.kernel import _Build, variant_patches
from orchestrator.prepare.patches import baseline_patches
from orchestrator.prepare.tree import KernelTree

APPLIES = lambda: None  # noqa: E731  patches/baseline/ applies (6.12)
FAILS = lambda: "mm/mmap.c: Hunk #1 FAILED at 645"  # noqa: E731  it does not (7.x)
PATCH = (Path("user.patch"),)


def _never() -> str | None:
    raise AssertionError("a pre-series tree must not be dry-run against patches/baseline/")


# ----------------------------------------------------------------- the decision table
def test_612_baseline_is_the_tree_plus_the_baseline_patch_with_or_without_patches():
    p = variants.plan("patched", APPLIES, ())
    assert p.variants == ("baseline", "patched")
    assert p.made_of == {"baseline": variants.TREE_BASELINE, "patched": variants.TREE}
    assert p.models == {"baseline": "baseline", "patched": "patched"}
    assert not p.reference and p.notes == () and p.reference_of == {}


def test_612_with_patches_adds_the_tree_as_it_is_as_the_reference_kernel():
    """Measured A/B on 6.12: baseline (the pre-series loop), reference (the tree as it is,
    compared with the patched model) and patched (the tree + PATCHES), measured against
    reference."""
    p = variants.plan("patched", APPLIES, PATCH)
    assert p.variants == ("baseline", "reference", "patched")
    assert p.made_of == {"baseline": variants.TREE_BASELINE, "reference": variants.TREE,
                         "patched": variants.TREE_PATCHES}
    assert p.models == {"baseline": "baseline", "reference": "patched", "patched": "patched"}
    assert p.reference_of == {"patched": "reference"}
    assert not p.reference  # the baseline is still the pre-series loop
    assert "reference = the tree as it is" in dict(p.notes)["variants"]


def test_every_tree_with_patches_measures_the_tree_as_it_is():
    """6.1 (a pre-series tree) and 7.x (baseline patch does not apply): the tree as it is is
    the baseline, and it is the patched kernel's A/B partner."""
    assert variants.plan("baseline", APPLIES, PATCH).reference_of == {"patched": "baseline"}
    assert variants.plan("patched", FAILS, PATCH).reference_of == {"patched": "baseline"}
    assert variants.plan("patched", FAILS, ()).reference_of == {}
    assert variants.made_of("reference", "patched", FAILS, PATCH) == variants.TREE


def test_72_with_patches_gets_the_tree_as_is_as_baseline_compared_with_the_patched_model():
    p = variants.plan("patched", FAILS, PATCH)
    assert p.variants == ("baseline", "patched")
    assert p.made_of == {"baseline": variants.TREE, "patched": variants.TREE_PATCHES}
    assert p.models == {"baseline": "patched", "patched": "patched"}
    assert p.reference
    said = dict(p.notes)
    assert "the tree as it is" in said["baseline"] and "Hunk #1 FAILED" in said["baseline"]
    assert said["variants"] == "baseline = the tree as it is, patched = the tree + PATCHES"


def test_72_without_patches_stays_patched_alone():
    p = variants.plan("patched", FAILS, ())
    assert p.variants == ("patched",) and p.models == {"patched": "patched"} and not p.reference
    (stage, line), = p.notes
    assert stage == "baseline" and line.startswith("skipped: mm/mmap.c: Hunk #1 FAILED")
    assert "give PATCHES=" in line


def test_61_baseline_is_the_tree_and_patched_needs_patches():
    p = variants.plan("baseline", _never, ())
    assert p.variants == ("baseline",) and p.models == {"baseline": "baseline"}
    p = variants.plan("baseline", _never, PATCH)
    assert p.variants == ("baseline", "patched") and not p.reference
    assert p.made_of == {"baseline": variants.TREE, "patched": variants.TREE_PATCHES}
    assert "patched" not in p.models  # its model comes from its built source (the conductor's build stage)


def test_a_dup_mmap_of_neither_shape_runs_the_tree_as_it_is():
    """treefacts "unknown": the tree's own kernel (never the baseline patch, whatever it would
    do to that dup_mmap), and with PATCHES= the tree + PATCHES against it, kernel against kernel."""
    p = variants.plan("unknown", _never, ())
    assert (p.variants, p.made_of) == (("patched",), {"patched": variants.TREE})
    assert "neither the baseline nor the __mt_dup one" in dict(p.notes)["baseline"]
    p = variants.plan("unknown", _never, PATCH)
    assert p.made_of == {"baseline": variants.TREE, "patched": variants.TREE_PATCHES}
    assert p.reference_of == {"patched": "baseline"}
    assert variant_patches("baseline", "unknown", PATCH, "t") == []


def test_an_unknown_tree_model_is_refused():
    with pytest.raises(ValueError, match="unknown dup_mmap model 'mt_dup'"):
        variants.plan("mt_dup", APPLIES, ())


# ----------------------------------------------------------------- the build's patches and key
def test_variant_patches_follow_the_decision():
    assert variant_patches("baseline", "patched", [], "6.12") == baseline_patches()
    assert variant_patches("baseline", "patched", list(PATCH), "7.2", baseline_applies=False) == []
    assert variant_patches("patched", "patched", list(PATCH), "7.2", baseline_applies=False) == list(PATCH)
    assert variant_patches("baseline", "baseline", list(PATCH), "6.1") == []
    with pytest.raises(ForkdiffError, match="needs patches"):
        variant_patches("patched", "baseline", [], "6.1")


def test_a_tree_as_is_baseline_never_shares_a_cache_key_with_tree_plus_baseline_patch(tmp_path, monkeypatch):
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    tree = KernelTree(tmp_path / "linux", "debian:linux-source-7.2:7.2.13-1", "7.2.13", False)
    frags = profile_fragments("perf")
    as_is = _Build("baseline", "perf", tree, [], frags, False, variants.TREE)
    restored = _Build("baseline", "perf", tree, baseline_patches(), frags, False, variants.TREE_BASELINE)
    patched = _Build("patched", "perf", tree, [], frags, False, variants.TREE)
    assert as_is.key != restored.key and as_is.src_key != restored.src_key
    assert as_is.key != patched.key  # another variant, another kernel (uname -r differs)
    assert as_is.src_key == patched.src_key  # the same source: one copy of it in the cache


class _Stop(Exception):
    pass


def _tree(root: Path, fork_c: str, mmap_c: str) -> Path:
    return synthetic_tree(root, fork_c, mmap_c)


MMAP_72 = ("__latent_entropy int dup_mmap(struct mm_struct *mm, struct mm_struct *oldmm)\n{\n"
           "\tretval = __mt_dup(&oldmm->mm_mt, &mm->mm_mt, GFP_KERNEL);\n"
           "\t\tcharge = tear_down_vmas(mm, &vmi, tmp, end);\n}\n")


@pytest.fixture
def tree72(tmp_path) -> Path:
    return _tree(tmp_path / "linux", "int copy_process(void);\n", MMAP_72)


def test_build_kernel_makes_the_72_baseline_from_the_tree_and_skips_the_model_check(tree72, monkeypatch):
    """build_kernel on the FAKE 7.2-shaped tree (patches/baseline/ cannot apply: no dup_mmap in
    its kernel/fork.c), _Build replaced: the baseline gets no patches and says what it is."""
    made = []

    def fake_build(variant, profile, kt, plist, fragments, progress, made_of=""):
        made.append((variant, [p.name for p in plist], made_of))
        raise _Stop

    monkeypatch.setattr(kernel_mod, "_Build", fake_build)
    monkeypatch.setattr(kernel_mod, "check_build_tools", lambda: None)
    for variant, patches in (("baseline", []), ("baseline", list(PATCH)), ("patched", list(PATCH))):
        with pytest.raises(_Stop):
            kernel_mod.build_kernel(variant, "perf", tree=str(tree72), patches=patches)
    assert made == [("baseline", [], variants.TREE), ("baseline", [], variants.TREE),
                    ("patched", ["user.patch"], variants.TREE_PATCHES)]


# ----------------------------------------------------------------- the run
def _run_until_suites(tmp_path, monkeypatch, tree: Path, patches: tuple[Path, ...]):
    """The conductor's run with FAKE kernels (manifests say the 7.2 tree's own model), stopped where
    the suites would start; returns (kernels built, run.json as recorded, stderr)."""
    from orchestrator import conductor
    from orchestrator.conduct import build as build_stage

    built, meta = [], {}

    def fake_build(variant, profile, **kw):
        built.append((variant, profile))
        return SimpleNamespace(release=f"7.2.13-forkdiff-{variant}-{profile}", bzimage="/nonexistent",
                               manifest={"dup_mmap_model": "patched"})

    class Stop:  # FAKE executor: the run ends where the suites would start
        def execute(self, ex, keep=None):
            raise _Stop

    monkeypatch.setattr(build_stage, "build_kernel", fake_build)
    monkeypatch.setattr(build_stage, "build_rootfs", lambda: None)
    monkeypatch.setattr(build_stage.provenance, "record", lambda out, m: meta.update(m=m))
    monkeypatch.setattr(conductor, "executor_for", lambda opts: Stop())
    monkeypatch.delenv("PATCHES", raising=False)
    with pytest.raises(_Stop):
        conductor.run(conductor.VmTestOptions(out=tmp_path / "out", tree=str(tree), suites=("spawn",),
                                              patches=patches))
    return built, meta["m"].to_dict()  # run.json as the run holds it when the suites start


def test_a_72_run_with_patches_builds_the_reference_and_records_what_it_is(tmp_path, tree72, monkeypatch, capsys):
    patch = tmp_path / "user.patch"
    patch.write_text("--- a/mm/mmap.c\n+++ b/mm/mmap.c\n")
    built, meta = _run_until_suites(tmp_path, monkeypatch, tree72, (patch,))
    err = capsys.readouterr().err
    assert built == [("baseline", "faults"), ("patched", "faults")]
    assert ("baseline: the tree as it is, the reference kernel for PATCHES=, compared with the "
            "tree's own model (patched), since patch ") in err and " does not apply to " in err
    assert "variants: baseline = the tree as it is, patched = the tree + PATCHES" in err
    assert meta["model map"] == {"baseline": "patched", "patched": "patched"}
    assert meta["models"] == "baseline kernel vs patched model, patched kernel vs patched model"
    assert meta["made of"] == "baseline: the tree as it is; patched: the tree + PATCHES"
    assert meta["reference kernel"].startswith("baseline = the tree as it is")


def test_a_72_run_without_patches_is_unchanged(tmp_path, tree72, monkeypatch, capsys):
    built, meta = _run_until_suites(tmp_path, monkeypatch, tree72, ())
    assert built == [("patched", "faults")]
    assert "baseline: skipped: patch " in capsys.readouterr().err
    assert meta["model map"] == {"patched": "patched"} and "reference kernel" not in meta


# ----------------------------------------------------------------- after the run
def test_compare_of_a_saved_folder_uses_the_runs_model_map(tmp_path):
    from orchestrator.analysis.against import saved_models

    (tmp_path / "run.json").write_text(json.dumps({"model map": {"baseline": "patched",
                                                                 "patched": "patched"}}))
    assert saved_models(tmp_path) == {"baseline": "patched", "patched": "patched"}
    assert saved_models(tmp_path / "missing") == {}
    (tmp_path / "run.json").write_text("not json")
    assert saved_models(tmp_path) == {}


def test_kcidb_paths_name_a_model_only_when_it_is_not_the_kernels_own():
    from orchestrator.analysis.kcidb import test_path

    # 7.2's baseline = the tree as it is: its own source is the patched model
    assert test_path("spawn", "total-21", "forks_per_s", "patched", "patched") \
        == "forkdiff.spawn.total-21.forks_per_s"
    assert test_path("maps", "mixed-small", "child_maps", "patched", "baseline") \
        == "forkdiff.maps.mixed-small.child_maps.model-baseline"
    assert test_path("maps", "mixed-small", "child_maps", "baseline", "baseline") \
        == "forkdiff.maps.mixed-small.child_maps"


def test_the_report_says_when_its_baseline_is_the_reference_kernel():
    from orchestrator.analysis.report import is_reference_run

    assert is_reference_run({"reference kernel": "baseline = the tree as it is (...)"})
    assert not is_reference_run({"model map": {"baseline": "patched"}})  # MODEL= alone is not
    assert not is_reference_run({})
