"""Cache keys and cache-hit verification of _Build (orchestrator/prepare/kernel.py). Unit test with FAKE
bzImage bytes in a temporary cache: it checks our bookkeeping (a truncated image is not a hit and
is removed so that make relinks it), not a kernel build."""

import json

import pytest

from orchestrator.cache import sha256_file
from orchestrator.prepare.kconfig import profile_fragments
from orchestrator.prepare.kernel import _Build
from orchestrator.prepare.patches import baseline_patches
from orchestrator.prepare.tree import resolve_tree


@pytest.fixture
def builds(tmp_path, monkeypatch):
    tree = resolve_tree(None)  # resolved before the cache moves: the tree stays where it is
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))

    def make(variant, profile):
        patches = baseline_patches() if variant == "baseline" else []
        return _Build(variant, profile, tree, patches, profile_fragments(profile), progress=False)
    return make


def test_keys_separate_variants_and_profiles(builds):
    pf, bf, pp = builds("patched", "faults"), builds("baseline", "faults"), builds("patched", "perf")
    assert len({pf.key, bf.key, pp.key}) == 3
    assert pf.src_key == pp.src_key != bf.src_key  # one source copy per tree + patch set
    assert builds("patched", "faults").key == pf.key  # stable
    # the build folder is a direct child of the source copy: Kbuild then uses srctree=".."
    assert pf.obj.parent == pf.src and bf.obj.parent == bf.src


def test_truncated_bzimage_is_not_a_cache_hit(builds):
    b = builds("patched", "faults")
    b.kdir.mkdir(parents=True)  # a build makes it (start_log); a lookup does not
    b.bzimage.write_bytes(b"fake bzImage " * 1000)
    built = b.obj / "arch/x86/boot/bzImage"
    built.parent.mkdir(parents=True)
    built.write_bytes(b"fake bzImage " * 1000)
    from orchestrator.prepare.kernel import BUILT_FACTS
    from orchestrator.prepare.treefacts import FACT_KEYS

    manifest = {"release": "x", "bzimage": {"sha256": sha256_file(b.bzimage)},
                "kernel_facts": dict.fromkeys((*FACT_KEYS, *BUILT_FACTS), 1)}
    b.manifest_path.write_text(json.dumps(manifest))
    assert b.cached() == manifest
    with open(b.bzimage, "r+b") as fh:
        fh.truncate(100)
    assert b.cached() is None
    assert not b.bzimage.exists() and not built.exists() and not b.manifest_path.exists()


def test_a_stale_manifest_whose_build_folder_is_gone_is_built_again(builds):
    """Runs read the booted kernel's facts, vDSO pages and slub.c's failslab attribute from
    its manifest; a manifest of an older forkdiff lacks some, and they are read from the build
    folder and source copy instead. When those were pruned the image is not a hit (else the
    reads would silently come back empty and change the predictions); a complete manifest is
    (an imported kernel has no build folder). Completing a stale manifest from a real source
    copy is checked with the real cached kernels (tests/tree/test_kernel_bundle.py: an export of
    them is a hit once imported)."""
    from orchestrator.prepare.kernel import BUILT_FACTS
    from orchestrator.prepare.treefacts import FACT_KEYS

    b = builds("patched", "faults")
    b.bzimage.parent.mkdir(parents=True, exist_ok=True)
    b.bzimage.write_bytes(b"fake bzImage " * 1000)
    complete = {"release": "x", "bzimage": {"sha256": sha256_file(b.bzimage)},
                "kernel_facts": dict.fromkeys((*FACT_KEYS, *BUILT_FACTS), 1)}
    b.manifest_path.write_text(json.dumps(complete))
    assert not b.obj.exists() and b.cached() == complete
    stale = complete | {"kernel_facts": dict.fromkeys(FACT_KEYS[:-1], 1)}
    b.manifest_path.write_text(json.dumps(stale))
    assert b.cached() is None and not b.manifest_path.exists()  # nothing to complete it from
