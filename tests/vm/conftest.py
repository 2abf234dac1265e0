"""Fixtures for VM tests: real kernels (built through orchestrator.prepare.kernel, cached), the real
initramfs, one booted guest per variant shared by a module, and a check that no QEMU process
started by this test process survives any test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from vmtest_run import proc_children

from orchestrator.prepare.kernel import VARIANTS, BuiltKernel, build_kernel
from orchestrator.prepare.rootfs import Rootfs, build_rootfs
from orchestrator.vm.guest import Guest

PROFILE = "faults"
_shared_pids: set[int] = set()


def qemu_children() -> dict[int, str]:
    """QEMU processes whose parent is this process. Zombies count: a QEMU that was never reaped
    is a leak too."""
    return {pid: f"{p['name']} ({p['state']})" for pid, p in proc_children(os.getpid()).items()
            if p["name"].startswith("qemu-system")}


@pytest.fixture(autouse=True)
def no_qemu_left_after_test() -> Iterator[None]:
    yield
    leaked = {pid: d for pid, d in qemu_children().items() if pid not in _shared_pids}
    assert not leaked, f"QEMU processes left after the test: {leaked}"


def _debian_tree(env: str, spec: str, label: str) -> str:
    """The tree to test on: the path in $env, else the Debian spec, fetched and unpacked once
    here (a tree that cannot be is a skip, saying so). The spec is handed on, not the unpacked
    folder's path: every test's runs then name the tree the same way
    (debian:<package>:<version>), so their kernels start from each other's objects (a path is
    another tree identity, `walk:<digest of every file>`, 2.6 s to compute per run, and a
    source copy of its own)."""
    spec = os.environ.get(env) or spec
    from orchestrator.errors import ForkdiffError
    from orchestrator.prepare.tree import resolve_tree

    try:
        resolve_tree(spec)
    except (ForkdiffError, OSError) as err:
        pytest.skip(f"no {label} tree ({spec}): {err}")
    return spec


@pytest.fixture(scope="session")
def tree72() -> str:
    """The 7.2 tree: FORKDIFF_TEST_TREE_7_2 (a path), else `debian:sid:linux-source-7.2`."""
    return _debian_tree("FORKDIFF_TEST_TREE_7_2", "debian:sid:linux-source-7.2", "7.2")


@pytest.fixture(scope="session")
def tree61() -> str:
    """The 6.1 tree: FORKDIFF_TEST_TREE_6_1 (a path), else `debian:bookworm:linux-source-6.1`."""
    return _debian_tree("FORKDIFF_TEST_TREE_6_1", "debian:bookworm:linux-source-6.1", "6.1")


@pytest.fixture(scope="session")
def rootfs() -> Rootfs:
    return build_rootfs()


class Kernels(dict[str, BuiltKernel]):
    """variant -> BuiltKernel of the faults profile, built (or fetched from the cache) on
    first use."""

    def __missing__(self, variant: str) -> BuiltKernel:
        self[variant] = build_kernel(variant, PROFILE, progress=False)
        return self[variant]


@pytest.fixture(scope="session")
def kernels() -> Kernels:
    return Kernels()


@pytest.fixture(scope="module", params=VARIANTS)
def guest(request: pytest.FixtureRequest, kernels: Kernels,
          rootfs: Rootfs) -> Iterator[Guest]:
    """One booted guest per variant, shared by the tests of a module."""
    kernel = kernels[request.param]
    with Guest(kernel, rootfs) as g:
        print(f"\nbooted {kernel.release} in {g.boot_seconds:.1f} s ({g.qemu_mode}), "
              f"console {g.console_log}")
        assert g.proc is not None
        pid = g.proc.pid
        _shared_pids.add(pid)
        try:
            yield g
        finally:
            _shared_pids.discard(pid)
    leaked = qemu_children()
    assert not leaked, f"QEMU processes left after closing the {kernel.variant} guest: {leaked}"
