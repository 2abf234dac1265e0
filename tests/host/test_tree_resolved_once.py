"""A `forkdiff vm-test` resolves its kernel tree once: one identity, one read of its facts, at
most one dry run of patches/baseline/, however many kernels it builds and suites it runs.

The run is the real conductor and the real build_kernel on a FAKE tree (tests/fake_tree.py,
a 7.x-shaped dup_mmap() that copies with __mt_dup, where patches/baseline/ does not apply: the
dry run says so, with the host's `patch`) with PATCHES= given, so it has two kernels (baseline
= the tree as it is, patched = the tree + PATCHES) and two suites (maps and counts) on each.
What would need a compiler or a guest is FAKE: the kernel build itself (kernel._Build), the
rootfs, the KVM probe, the guests and the guest programs' run (a job counts as done). The run
is shard 1/1, so it ends without comparing (nothing was measured)."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from orchestrator import conductor
from orchestrator.conduct.options import VmTestOptions
from orchestrator.prepare import kernel as kernel_mod
from orchestrator.prepare import source, tree, treefacts
from orchestrator.run import suites
from orchestrator.vm import guest_pool
from tests.fake_tree import synthetic_tree

pytestmark = pytest.mark.host

DUP_72 = ("__latent_entropy int dup_mmap(struct mm_struct *mm, struct mm_struct *oldmm)\n{\n"
          "\tretval = __mt_dup(&oldmm->mm_mt, &mm->mm_mt, GFP_KERNEL);\n"
          "\tif (retval) {\n\t\ttear_down_vmas(mm);\n\t}\n}\n")


_DETECT = treefacts.detect  # the real one, uncounted
BUILDS: list[tuple[str, str]] = []  # every kernel build_kernel was asked for


class _FakeBuild:
    """FAKE kernel._Build: a cached kernel whose manifest says the tree's own facts."""

    def __init__(self, variant, profile, kt, plist, fragments, progress, made_of=""):
        self.variant, self.profile, self.tree = variant, profile, kt
        self.key = f"fake-{variant}-{profile}-{len(plist)}"
        BUILDS.append((variant, profile))

    def cached(self) -> dict:
        return {"release": f"7.2.13-forkdiff-{self.variant}-{self.profile}", "dup_mmap_model": "patched",
                "kernel_facts": _DETECT(self.tree.path)}

    def result(self, manifest: dict):
        return SimpleNamespace(variant=self.variant, profile=self.profile, release=manifest["release"],
                               bzimage="/nonexistent", manifest=manifest, tree=self.tree)


def test_a_run_resolves_its_tree_once(tmp_path, monkeypatch):
    linux = synthetic_tree(tmp_path / "linux", "int copy_process(void);\n", DUP_72)
    patch = tmp_path / "user.patch"
    patch.write_text("--- a/Makefile\n+++ b/Makefile\n@@ -1 +1 @@\n-VERSION = 7\n+VERSION = 7\n")
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    calls: Counter = Counter()
    BUILDS.clear()

    def counted(name, fn):
        def wrapper(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return wrapper

    monkeypatch.setattr(tree, "_user_tree_identity", counted("identity", tree._user_tree_identity))
    monkeypatch.setattr(treefacts, "detect", counted("facts", treefacts.detect))
    monkeypatch.setattr(source, "baseline_error", counted("baseline dry run", source.baseline_error))
    monkeypatch.setattr(kernel_mod, "_Build", _FakeBuild)
    monkeypatch.setattr(kernel_mod, "check_build_tools", lambda: None)
    monkeypatch.setattr("orchestrator.prepare.rootfs.build_rootfs", lambda: None)
    monkeypatch.setattr("orchestrator.prepare.kernel_records.record_kernel", lambda out, k: None)
    monkeypatch.setattr("orchestrator.vm.kvm.probe", lambda *a, **kw: SimpleNamespace(usable=False))
    monkeypatch.setattr("orchestrator.results.provenance.record", lambda out, meta: None)
    monkeypatch.setattr(guest_pool.GuestPool, "get",
                        lambda self, kernel, rootfs, **kw: (SimpleNamespace(qemu_mode="tcg"), False))
    ran = []
    monkeypatch.setattr(suites, "run_on_guest",
                        lambda opts, variant, g, todo, log, result: ran.append((opts.suite, variant)) or True)
    rc = conductor.run(VmTestOptions(out=tmp_path / "out", tree=str(linux), patches=(patch,),
                                     suites=("maps", "counts"), shard=(1, 1)))
    assert rc == 0
    assert sorted(set(ran)) == [("counts", "baseline"), ("counts", "patched"),
                                ("maps", "baseline"), ("maps", "patched")]
    # 2 kernels built by the build stage, and each of the 4 (suite, kernel) pairs asks for its
    # kernel again: 6 build_kernel calls on one resolution of the tree
    assert sorted(BUILDS) == [("baseline", "faults")] * 3 + [("patched", "faults")] * 3
    assert calls["identity"] == 1 and calls["facts"] == 1 and calls["baseline dry run"] == 1
