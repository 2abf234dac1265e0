"""forkdiff kernel export / import (orchestrator/prepare/kernel_bundle.py) with the real cached faults
kernels of both variants (built first if missing): exported, imported into a fresh empty
cache, where the kernel build of the same tree finds them (a cache hit, bzImage hash checked,
no build), a second import says present; a damaged bundle and one with a foreign member are
refused. No VM boots here."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from orchestrator.cache import sha256_file
from orchestrator.errors import ForkdiffError
from orchestrator.prepare.kconfig import profile_fragments
from orchestrator.prepare.kernel import _Build, build_kernel
from orchestrator.prepare.kernel_bundle import export, import_bundle
from orchestrator.prepare.patches import baseline_patches
from orchestrator.prepare.tree import resolve_tree


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    kernels = [build_kernel(v, "faults", progress=False) for v in ("baseline", "patched")]
    path = tmp_path_factory.mktemp("bundle") / "kernels.tar.gz"
    keys = export(kernels, path)
    assert keys == [k.bzimage.parent.name for k in kernels]
    return path, kernels


def test_imported_kernels_are_cache_hits_in_a_fresh_cache(bundle, tmp_path: Path, monkeypatch) -> None:
    path, kernels = bundle
    tree = resolve_tree(None)  # the same tree, resolved before the cache moves
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "fresh"))
    assert import_bundle(path) == [(k.bzimage.parent.name, "imported") for k in kernels]
    for k in kernels:
        patches = baseline_patches() if k.variant == "baseline" else []
        b = _Build(k.variant, "faults", tree, patches, profile_fragments("faults"), progress=False)
        assert b.kdir == tmp_path / "fresh" / "kernels" / k.bzimage.parent.name
        manifest = b.cached()
        assert manifest is not None and manifest["release"] == k.release
        assert sha256_file(b.bzimage) == sha256_file(k.bzimage)
    assert {what for _key, what in import_bundle(path)} == {"present"}


def _rewrite(src: Path, dst: Path, change) -> None:
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            name, data = change(m.name, data)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))


def test_damaged_or_foreign_bundles_are_refused(bundle, tmp_path: Path, monkeypatch) -> None:
    path, _kernels = bundle
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "fresh"))
    flipped = tmp_path / "flipped.tar.gz"
    _rewrite(path, flipped, lambda n, d: (n, d[:-1] + bytes([d[-1] ^ 1]) if n.endswith("bzImage") else d))
    with pytest.raises(ForkdiffError, match="does not match its manifest"):
        import_bundle(flipped)
    foreign = tmp_path / "foreign.tar.gz"
    _rewrite(path, foreign, lambda n, d: (n.replace("kernels/", "../"), d))
    with pytest.raises(ForkdiffError, match="unexpected member"):
        import_bundle(foreign)
    assert not list((tmp_path / "fresh").glob("kernels/*/bzImage"))
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(ForkdiffError, match="not a kernel bundle"):
        import_bundle(tmp_path / "junk.tar.gz")
