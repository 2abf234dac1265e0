"""A build folder is configured again when the kconfig fragments it was configured from change.

The bisection builds every step in one persistent folder (orchestrator/prepare/mirror.py). Its
stamp once said only "configured": after a fragment changed (the observers' swap moved into the
faults profile), the next steps were built with the old .config and cached under the new key.

FAKE configure: `orchestrator.prepare.kernel.configure` is replaced by a function that writes a
.config naming the fragments' text (no tree, no make); the _Build, its key, stamp and folder are
the real ones (host: _Build asks gcc for its version)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.prepare import kernel
from orchestrator.prepare.tree import KernelTree


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    made: list[str] = []

    def fake_configure(src, obj, fragments, run, version):
        text = "".join(Path(f).read_text() for f in fragments)
        (Path(obj) / ".config").write_text(text)
        made.append(text)

    monkeypatch.setattr(kernel, "configure", fake_configure)
    return made


def _build(tmp_path: Path, fragment_text: str) -> kernel._Build:
    frag = tmp_path / "faults.config"
    frag.write_text(fragment_text)
    tree = KernelTree(path=tmp_path / "tree", identity="fake:tree", version="6.12.0", is_default=False)
    b = kernel._Build("patched", "faults", tree, [], [frag], progress=False)
    b.kdir.mkdir(parents=True, exist_ok=True)
    b.obj = tmp_path / "persistent" / "o-faults"  # as Mirror.build() sets it
    return b


def test_same_fragments_keep_the_folder_and_changed_ones_configure_again(calls, tmp_path):
    b = _build(tmp_path, "CONFIG_A=y\n")
    b.configure()
    (b.obj / "kernel.o").write_text("object")
    _build(tmp_path, "CONFIG_A=y\n").configure()
    assert len(calls) == 1 and (b.obj / "kernel.o").is_file()  # nothing to do: same fragments

    changed = _build(tmp_path, "CONFIG_A=y\nCONFIG_SWAP=y\n")
    assert changed.key != b.key
    changed.configure()
    assert len(calls) == 2 and "CONFIG_SWAP=y" in (b.obj / ".config").read_text()
    assert not (b.obj / "kernel.o").exists()  # objects of the old .config are not kept


def test_a_stamp_from_before_says_nothing_of_its_fragments(calls, tmp_path):
    b = _build(tmp_path, "CONFIG_A=y\n")
    b.obj.mkdir(parents=True)
    (b.obj / ".config").write_text("CONFIG_OLD=y\n")
    (b.obj / ".forkdiff-configured").write_text("ok\n")  # what every stamp said until now
    b.configure()
    assert len(calls) == 1 and (b.obj / ".config").read_text().startswith("CONFIG_A=y")
