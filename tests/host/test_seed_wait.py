"""A kernel whose seed (the same tree with fewer patches) is being built by another process
waits for that build and starts from its objects, instead of configuring and compiling from
nothing beside it (make test's workers: a 7.2 planted kernel began a 73 s build from ccache while
the 7.2 tree's own kernel was still compiling).

FAKES: no tree and no make. The "other build" is a thread holding the real cache lock of the
seed's key and writing the three files seed() looks for (manifest, configure stamp, vmlinux)
before it lets go; the _Builds, their keys and the lock files are the real ones (host: _Build
asks gcc for its version)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from orchestrator.cache import held, locked
from orchestrator.prepare import kernel
from orchestrator.prepare.tree import KernelTree


@pytest.fixture()
def builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[kernel._Build, kernel._Build]:
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    frag = tmp_path / "faults.config"
    frag.write_text("CONFIG_A=y\n")
    patch = tmp_path / "planted.patch"
    patch.write_text("--- a/kernel/fork.c\n+++ b/kernel/fork.c\n@@ -1 +1 @@\n-a\n+b\n")
    tree = KernelTree(path=tmp_path / "tree", identity="fake:tree", version="7.2.0", is_default=False)
    seed = kernel._Build("patched", "faults", tree, [], [frag], progress=False)
    planted = kernel._Build("patched", "faults", tree, [patch], [frag], progress=False, gcc=seed.gcc)
    return seed, planted


def _finish(b: kernel._Build) -> None:
    b.kdir.mkdir(parents=True, exist_ok=True)
    b.obj.mkdir(parents=True, exist_ok=True)
    (b.obj / ".forkdiff-configured").write_text(b.configured_from)
    (b.obj / "vmlinux").write_text("fake vmlinux")
    b.manifest_path.write_text("{}\n")


def test_a_seed_being_built_is_waited_for(builds):
    seed, planted = builds
    assert planted.seed() is None  # nothing built, nothing building: from nothing
    started = threading.Event()

    def other_process_builds_the_seed() -> None:
        with locked(f"kernel-{seed.key}"):
            started.set()
            time.sleep(1.5)
            _finish(seed)

    t = threading.Thread(target=other_process_builds_the_seed)
    t.start()
    started.wait(10)
    assert held(f"kernel-{seed.key}")
    t0 = time.monotonic()
    found = planted.seed()
    waited = time.monotonic() - t0
    t.join()
    assert found is not None and found[0].key == seed.key and found[1] == planted.patches
    assert waited >= 1.0
    assert not held(f"kernel-{seed.key}")


def test_a_build_of_as_many_patches_is_not_waited_for(builds):
    """Two variants of the same patches could each wait for the other: neither does."""
    seed, _ = builds
    other_variant = kernel._Build("baseline", "faults", seed.tree, [], seed.fragments, progress=False,
                                  gcc=seed.gcc)
    with locked(f"kernel-{other_variant.key}"):
        t0 = time.monotonic()
        assert seed.seed() is None
        assert time.monotonic() - t0 < 1.0
