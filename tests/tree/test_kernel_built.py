"""Built kernels of both variants (faults profile): `make test` builds them first, so here
build_kernel() is a cache hit that verifies the recorded bzImage hash. Each bzImage's embedded
version string names its variant, each build's source copy has the right dup_mmap(), and the
compiled dup_mmap() calls what that variant's source does."""

import json
import re
import subprocess

import pytest

from orchestrator.cache import sha256_file
from orchestrator.prepare.kconfig import parse_config, run_record
from orchestrator.prepare.kernel import (
    VARIANTS,
    build_kernel,
    detect_dup_mmap_model,
    release_string,
)
from orchestrator.prepare.tree import resolve_tree
from simulator import runconfig


@pytest.fixture(scope="module")
def kernels():
    return {v: build_kernel(v, "faults", tree=None, patches=(), progress=False) for v in VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
def test_bzimage_version_names_variant(kernels, variant):
    k = kernels[variant]
    want = release_string(resolve_tree(None).version, variant, "faults")
    assert k.release == want
    out = subprocess.run(["file", "-b", str(k.bzimage)], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"version (\S+) ", out)
    assert m, out
    assert m.group(1) == want


@pytest.mark.parametrize("variant", VARIANTS)
def test_manifest_and_config(kernels, variant):
    k = kernels[variant]
    manifest = json.loads((k.bzimage.parent / "manifest.json").read_text())
    assert manifest == k.manifest
    assert manifest["bzimage"]["sha256"] == sha256_file(k.bzimage)
    assert manifest["bzimage"]["size"] == k.bzimage.stat().st_size
    assert manifest["variant"] == variant and manifest["profile"] == "faults"
    cfg = parse_config(k.config.read_text())
    assert cfg["CONFIG_LOCALVERSION"] == '"-forkdiff"'
    assert cfg.get("CONFIG_LOCALVERSION_AUTO", "n") == "n"
    assert cfg["CONFIG_FAULT_INJECTION"] == "y"


@pytest.mark.parametrize("variant", VARIANTS)
def test_source_copy_has_the_variants_dup_mmap(kernels, variant):
    k = kernels[variant]
    assert detect_dup_mmap_model(k.build_dir.parent) == variant


def dup_mmap_calls(k) -> set[str]:
    """The functions the compiled dup_mmap() of a build calls (objdump of its vmlinux; the
    faults profile keeps dup_mmap out of line, see kconfig/faults)."""
    vmlinux = k.build_dir / "vmlinux"
    assert vmlinux.is_file(), f"{vmlinux} is missing (source copy pruned?): rebuild the kernel"
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "--disassemble=dup_mmap",
                          str(vmlinux)], capture_output=True, text=True, check=True).stdout
    assert "<dup_mmap>:" in out, f"no dup_mmap symbol in {vmlinux}"
    return set(re.findall(r"\bcall\s+[0-9a-f]+ <([^>+]+)>", out))


def test_variants_differ(kernels):
    """The two kernels differ in the code the baseline patch changes, not only in their names
    (LOCALVERSION alone makes the bzImage hashes differ): the patched kernel's compiled
    dup_mmap() copies the tree with __mt_dup(), the baseline's preallocates with
    mas_expected_entries() and never calls __mt_dup()."""
    calls = {v: dup_mmap_calls(kernels[v]) for v in VARIANTS}
    assert "__mt_dup" in calls["patched"], sorted(calls["patched"])
    assert "mas_expected_entries" not in calls["patched"], sorted(calls["patched"])
    assert "mas_expected_entries" in calls["baseline"], sorted(calls["baseline"])
    assert "__mt_dup" not in calls["baseline"], sorted(calls["baseline"])
    # Both call what the patch leaves alone: the disassembly is of the right function.
    assert {"vm_area_dup", "anon_vma_fork", "copy_page_range"} <= calls["patched"] & calls["baseline"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_records_without_a_kernel_config_assume_what_the_profile_builds(kernels, variant):
    """compare assumes Rule.assumed for records made before the kernel config was recorded
    (simulator/runconfig.py): that must be what the faults profile really builds."""
    options = run_record(kernels[variant].config)["options"]
    assert options == {r.option: r.assumed for r in runconfig.RULES}
