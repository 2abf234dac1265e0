"""Unit tests of orchestrator.run.faultsetup with the FAKE guest (tests/fake_guest.py: the host's
sh over a temporary folder standing in for debugfs, /sys/kernel/slab and /proc/kallsyms): the symbol range of dup_mmap and the values written. The real set-up is
exercised by tests/vm/test_suites.py."""

from __future__ import annotations

import pytest
from fake_guest import FakeGuest

from orchestrator.errors import ForkdiffError
from orchestrator.run.faultsetup import (
    FORK_CACHES,
    FORK_MIN_PARTIAL,
    FaultOptions,
    configure,
    parse_faults,
    symbol_range,
)

KALLSYMS = """ffffffff81060000 T copy_process
ffffffff81062a10 t dup_mmap
ffffffff81062a10 t __pfx_something_else_same_addr
ffffffff81063200 t dup_mm
ffffffff81063400 T dup_mmap_sem_other
ffffffff811a0000 T copy_page_range
ffffffff811a0c00 t zap_pte_range
"""


def test_symbol_range_is_start_to_next_higher_symbol() -> None:
    assert symbol_range(KALLSYMS, "dup_mmap") == (0xFFFFFFFF81062A10, 0xFFFFFFFF81063200, "dup_mm")


def test_symbol_range_accepts_compiler_suffix() -> None:
    text = "ffffffff81000000 t dup_mmap.isra.0\nffffffff81000400 t next_fn\n"
    assert symbol_range(text, "dup_mmap")[:2] == (0xFFFFFFFF81000000, 0xFFFFFFFF81000400)


def test_missing_symbol_is_a_user_error() -> None:
    with pytest.raises(ForkdiffError, match="not in the guest's /proc/kallsyms"):
        symbol_range("ffffffff81000000 t other\n", "dup_mmap")


def guest(tmp_path, attrs: list[str], slabs: tuple[str, ...] = (),
          flag_writable: bool = True) -> FakeGuest:
    """The FAKE guest (tests/fake_guest.py) with a faults kernel's debugfs, slab caches and
    /proc/kallsyms laid out in tmp_path."""
    return FakeGuest(root=tmp_path).sysfs(tuple(attrs), slabs, flag_writable, kallsyms=KALLSYMS)


def test_configure_writes_filter_and_gfp_settings(tmp_path) -> None:
    g = guest(tmp_path, ["failslab", "fail_page_alloc", "fail_futex"])
    s = configure(g, FaultOptions())
    d = "/sys/kernel/debug"
    assert g.read(f"{d}/failslab/ignore-gfp-wait") == "N"
    assert g.read(f"{d}/fail_page_alloc/ignore-gfp-wait") == "Y"
    assert g.read(f"{d}/fail_page_alloc/min-order") == "32"
    for a in ("failslab", "fail_page_alloc", "fail_futex"):
        assert g.read(f"{d}/{a}/probability") == "0"
        assert g.read(f"{d}/{a}/verbose") == "0"
        assert int(g.read(f"{d}/{a}/require-start")) == 0xFFFFFFFF81062A10
        assert int(g.read(f"{d}/{a}/require-end")) == 0xFFFFFFFF81063200
    assert s.next_symbol == "dup_mm" and s.require_start == hex(0xFFFFFFFF81062A10)
    assert set(s.attrs) == {"failslab", "fail_page_alloc", "fail_futex"}


def test_configure_without_filter_and_with_page_faults(tmp_path) -> None:
    g = guest(tmp_path, ["failslab", "fail_page_alloc"])
    s = configure(g, FaultOptions(stack_filter=False, page_alloc=True))
    d = "/sys/kernel/debug"
    assert int(g.read(f"{d}/failslab/require-end")) == 2**64 - 1
    assert g.read(f"{d}/fail_page_alloc/min-order") == "0"
    assert g.read(f"{d}/fail_page_alloc/ignore-gfp-wait") == "N"
    assert s.stack_filter is False and s.function == ""


def test_page_faults_count_page_tables_under_copy_page_range(tmp_path) -> None:
    """FAULTS=slab,page: failslab stays on dup_mmap; fail_page_alloc gets min-order 0,
    ignore-gfp-wait N and its own stack range, copy_page_range (not dup_mmap: new slab pages
    under dup_mmap would count)."""
    g = guest(tmp_path, ["failslab", "fail_page_alloc"])
    s = configure(g, FaultOptions(page_alloc=True))
    d = "/sys/kernel/debug"
    assert int(g.read(f"{d}/failslab/require-start")) == 0xFFFFFFFF81062A10
    assert int(g.read(f"{d}/fail_page_alloc/require-start")) == 0xFFFFFFFF811A0000
    assert int(g.read(f"{d}/fail_page_alloc/require-end")) == 0xFFFFFFFF811A0C00
    assert g.read(f"{d}/fail_page_alloc/min-order") == "0"
    assert g.read(f"{d}/fail_page_alloc/ignore-gfp-wait") == "N"
    assert s.faults == ["slab", "page"] and s.page_function == "copy_page_range"


def test_page_faults_alone_give_failslab_an_empty_stack_range(tmp_path) -> None:
    g = guest(tmp_path, ["failslab", "fail_page_alloc"])
    s = configure(g, FaultOptions(page_alloc=True, slab=False))
    d = "/sys/kernel/debug"
    assert g.read(f"{d}/failslab/require-start") == "0" and g.read(f"{d}/failslab/require-end") == "0"
    assert s.faults == ["page"]


def test_parse_faults() -> None:
    assert parse_faults(None) == (True, False)
    assert parse_faults("slab,page") == (True, True)
    assert parse_faults("page") == (False, True)
    with pytest.raises(ForkdiffError):
        parse_faults("pages")


def test_kernel_without_failslab_is_a_user_error(tmp_path) -> None:
    with pytest.raises(ForkdiffError, match="no failslab"):
        configure(guest(tmp_path, ["fail_page_alloc"]))


def test_cache_filter_flags_the_fork_caches_the_kernel_has(tmp_path) -> None:
    g = guest(tmp_path, ["failslab", "fail_page_alloc"],
                  slabs=("maple_node", "vm_area_struct", "anon_vma", "anon_vma_chain", "kmalloc-64"))
    s = configure(g, FaultOptions(cache_filter=FORK_CACHES))
    assert g.read("/sys/kernel/debug/failslab/cache-filter") == "Y"
    assert s.attrs["failslab"]["cache-filter"] == "Y"
    # vma_lock is missing from this fake kernel: not flagged, not claimed
    assert s.cache_filter == ["maple_node", "vm_area_struct", "anon_vma", "anon_vma_chain"]
    assert all(g.read(f"/sys/kernel/slab/{c}/failslab") == "1" for c in s.cache_filter)
    assert g.read("/sys/kernel/slab/kmalloc-64/failslab") == "0"


def test_without_cache_filter_every_cache_counts(tmp_path) -> None:
    g = guest(tmp_path, ["failslab"], slabs=FORK_CACHES)
    s = configure(g, FaultOptions())
    assert g.read("/sys/kernel/debug/failslab/cache-filter") == "N"
    assert s.cache_filter == [] and all(g.read(f"/sys/kernel/slab/{c}/failslab") == "0" for c in FORK_CACHES)


def test_cache_filter_with_no_fork_cache_is_an_error(tmp_path) -> None:
    with pytest.raises(ForkdiffError, match="took the failslab flag"):
        configure(guest(tmp_path, ["failslab"], slabs=("kmalloc-64",)), FaultOptions(cache_filter=FORK_CACHES))


def test_kernel_without_stack_filter_counts_fork_caches_only(tmp_path) -> None:
    """x86-64 before 6.3 has no FAULT_INJECTION_STACKTRACE_FILTER: the default set-up falls back
    to failslab's cache filter on fork's caches, and the settings say so (FAKE guest)."""
    g = guest(tmp_path, ["failslab"], slabs=("maple_node", "vm_area_struct", "anon_vma", "anon_vma_chain"))
    for a in ("failslab",):
        g.remove(f"/sys/kernel/debug/{a}/require-start")
    s = configure(g, FaultOptions())
    assert s.stack_filter is False and s.function == ""
    assert "require-start" not in s.attrs["failslab"]
    assert s.attrs["failslab"]["cache-filter"] == "Y"
    assert s.cache_filter == ["maple_node", "vm_area_struct", "anon_vma", "anon_vma_chain"]


def test_page_faults_count_the_whole_fork_without_a_stack_filter(tmp_path) -> None:
    """6.1 (no stack filter): fail_page_alloc cannot be kept to copy_page_range, so every page
    allocation of the fork syscall counts (page_scope "fork"): min-order 0, ignore-gfp-wait N,
    and every cache's min_partial raised so that no empty slab is freed (FAKE guest)."""
    slabs = ("maple_node", "vm_area_struct", "anon_vma", "anon_vma_chain")
    g = guest(tmp_path / "a", ["failslab", "fail_page_alloc"], slabs=slabs)
    for a in ("failslab", "fail_page_alloc"):
        g.remove(f"/sys/kernel/debug/{a}/require-start")
    s = configure(g, FaultOptions(page_alloc=True))
    assert s.faults == ["slab", "page"] and s.page_function == "" and s.page_skipped == ""
    assert s.page_scope == "fork" and s.min_partial == FORK_MIN_PARTIAL
    assert g.read("/sys/kernel/debug/fail_page_alloc/min-order") == "0"
    assert g.read("/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait") == "N"
    # the parent's own page faults (GFP_HIGHUSER_MOVABLE) stay out
    assert g.read("/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem") == "Y"
    assert all(g.read(f"/sys/kernel/slab/{c}/min_partial") == str(FORK_MIN_PARTIAL) for c in slabs)
    assert s.cache_filter == list(slabs)  # failslab: fork's caches, as with FAULTS=slab
    # FAULTS=page: failslab's cache filter on with no cache flagged, so no slab check counts
    g = guest(tmp_path / "b", ["failslab", "fail_page_alloc"], slabs=slabs)
    for a in ("failslab", "fail_page_alloc"):
        g.remove(f"/sys/kernel/debug/{a}/require-start")
    s = configure(g, FaultOptions(page_alloc=True, slab=False))
    assert s.faults == ["page"] and s.page_scope == "fork" and s.cache_filter == []
    assert g.read("/sys/kernel/debug/failslab/cache-filter") == "Y"
    assert not any(g.read(f"/sys/kernel/slab/{c}/failslab") == "1" for c in slabs)
    # a kernel whose fork caches got the failslab flag at boot cannot leave slab out
    g.write("/sys/kernel/slab/maple_node/failslab", "1")
    with pytest.raises(ForkdiffError, match="failslab flag"):
        configure(g, FaultOptions(page_alloc=True, slab=False))


def test_boot_flags_set_a_read_only_failslab_flag_at_boot(tmp_path) -> None:
    """6.1: no stack filter, and /sys/kernel/slab/<cache>/failslab is read-only
    (SLAB_ATTR_RO(failslab) in mm/slub.c): the faults guest boots with slub_debug=A,<fork's
    caches>. With the stack filter, or a writable flag, nothing is added (FAKE kernel: a
    .config and a source folder written here)."""
    from types import SimpleNamespace

    from orchestrator.run.faultsetup import boot_flags

    src = tmp_path / "src"
    (src / "mm").mkdir(parents=True)
    (src / "o-build").mkdir()
    config = tmp_path / "config"
    kernel = SimpleNamespace(config=config, build_dir=src / "o-build")
    config.write_text("CONFIG_FAILSLAB=y\n# CONFIG_FAULT_INJECTION_STACKTRACE_FILTER is not set\n")
    (src / "mm/slub.c").write_text("SLAB_ATTR_RO(failslab);\n")
    assert boot_flags(kernel) == dict.fromkeys(FORK_CACHES, "A")
    (src / "mm/slub.c").write_text("SLAB_ATTR(failslab);\n")
    assert boot_flags(kernel) == {}
    (src / "mm/slub.c").write_text("SLAB_ATTR_RO(failslab);\n")
    config.write_text("CONFIG_FAULT_INJECTION_STACKTRACE_FILTER=y\n")
    assert boot_flags(kernel) == {}


def test_kernel_without_stack_filter_or_writable_cache_flag_counts_the_whole_fork(tmp_path) -> None:
    """6.1: no stack filter on x86-64 and /sys/kernel/slab/<cache>/failslab is read-only: every
    slab allocation of the fork syscall counts, and the settings say so (FAKE guest)."""
    g = guest(tmp_path, ["failslab"], slabs=FORK_CACHES, flag_writable=False)
    g.remove("/sys/kernel/debug/failslab/require-start")
    s = configure(g, FaultOptions())
    assert s.stack_filter is False and s.cache_filter == []
    assert s.attrs["failslab"]["cache-filter"] == "N"
    assert all(g.read(f"/sys/kernel/slab/{c}/failslab") == "0" for c in FORK_CACHES)


def test_a_read_only_flag_set_at_boot_keeps_the_cache_filter(tmp_path) -> None:
    """6.1 booted with slub_debug=A,<fork's caches> (boot_flags()): the flag is read-only but
    already 1, so the sweep keeps failslab's cache filter on fork's caches (FAKE guest)."""
    g = guest(tmp_path, ["failslab"], slabs=("maple_node", "vm_area_struct", "anon_vma", "anon_vma_chain"),
                  flag_writable=False)
    g.remove("/sys/kernel/debug/failslab/require-start")
    for c in ("maple_node", "vm_area_struct", "anon_vma", "anon_vma_chain"):
        g.write(f"/sys/kernel/slab/{c}/failslab", "1", 0o444)
    s = configure(g, FaultOptions())
    assert s.stack_filter is False and s.attrs["failslab"]["cache-filter"] == "Y"
    assert s.cache_filter == ["maple_node", "vm_area_struct", "anon_vma", "anon_vma_chain"]
