"""Patches that define variants, and the copy of a tree they are applied to. A user's tree is only
read: it is copied (plain copy, no hard links, no .git) into the cache, and patches go onto the
copy, each checked with `patch -p1 --dry-run` first. A tree forkdiff unpacked into its own cache
(a `debian:` tree, the default tree) is nobody's working copy, so its copies are hard links
(`cp -al`: a second or so and no extra space instead of 1.7 GB and 20-60 s per patch set);
`patch` writes each file it changes as a new file, which breaks that file's link, so the
unpacked tree never changes."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import resources
from ..cache import sha256_file
from ..errors import ForkdiffError, KernelDoesNotBuild

PATCHES_DIR = resources.data_dir("patches")


def baseline_patches(patches_dir: Path | None = None) -> list[Path]:
    """The patches that turn a tree into the baseline variant (patches/baseline/*.patch)."""
    folder = (patches_dir or PATCHES_DIR) / "baseline"
    found = sorted(folder.glob("*.patch"))
    if not found:
        raise ForkdiffError(f"no baseline patch in {folder}",
                            "run forkdiff from a complete checkout (patches/baseline/)")
    return found


def baseline_error(tree_path: Path) -> str | None:
    """None when patches/baseline/ applies to the tree, else why not (the failing hunk)."""
    patches = baseline_patches()  # none in the checkout: an error of its own, not "does not apply"
    try:
        check_applies(tree_path, patches)
    except ForkdiffError as err:
        return err.cause
    return None


def patch_identity(patches: Sequence[Path]) -> list[dict[str, str]]:
    """Name and content hash of each patch, in order; a missing patch is a ForkdiffError."""
    out = []
    for p in patches:
        if not p.is_file():
            raise ForkdiffError(f"patch {p} does not exist", "check PATCHES= / the patch path")
        out.append({"name": p.name, "path": str(p.resolve()), "sha256": sha256_file(p)})
    return out


def copy_tree(src: Path, dest: Path, link: bool = False) -> None:
    """Copy of a kernel tree (without .git) to dest, which must not exist. Only reads src. With
    `link`, files are hard links to src's (a tree only forkdiff writes, see the module's
    docstring); where links cannot be made (another file system) it is a plain copy."""
    if dest.exists():
        raise FileExistsError(dest)
    if link:
        dest.parent.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(["cp", "-al", str(src), str(dest)], capture_output=True)
        if res.returncode == 0:
            shutil.rmtree(dest / ".git", ignore_errors=True)
            return
        shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    tar_out = subprocess.Popen(["tar", "-C", str(src), "--exclude=./.git", "-cf", "-", "."],
                               stdout=subprocess.PIPE)
    try:
        res = subprocess.run(["tar", "-C", str(dest), "-xf", "-"], stdin=tar_out.stdout,
                             capture_output=True)
    finally:
        if tar_out.stdout:
            tar_out.stdout.close()
        rc = tar_out.wait()
    if rc != 0 or res.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise ForkdiffError(f"could not copy kernel tree {src} to {dest}: "
                            f"{res.stderr.decode(errors='replace').strip()[-300:]}",
                            "check free space in the cache (forkdiff copies the tree once per patch set)")


_HUNK_FAIL = re.compile(r"^Hunk #\d+ FAILED at \d+.*$", re.M)
_FILE = re.compile(r"^(?:checking|patching) file (.+)$", re.M)


def _failing_hunk(output: str) -> str:
    """'file: Hunk #2 FAILED at 641' from patch's output, or its last lines."""
    lines = output.splitlines()
    current = None
    for line in lines:
        if m := _FILE.match(line):
            current = m.group(1).strip()
        elif _HUNK_FAIL.match(line) or "can't find file" in line or "malformed" in line.lower():
            return f"{current}: {line.strip()}" if current else line.strip()
    return " / ".join(lines[-3:]) if lines else "no output"


def apply_patch(src: Path, patch: Path, log: Path | None = None) -> None:
    """Dry-run then apply one patch (-p1) inside src; a patch that does not apply raises
    ForkdiffError naming the patch file and the failing hunk."""
    base = ["patch", "-p1", "--batch", "--forward", "-d", str(src), "-i", str(patch.resolve())]
    dry = subprocess.run(base + ["--dry-run"], capture_output=True, text=True)
    out = dry.stdout + dry.stderr
    if log is not None:
        with open(log, "a") as fh:
            fh.write(f"$ patch -p1 --dry-run -i {patch}\n{out}\n")
    if dry.returncode != 0:
        raise KernelDoesNotBuild(f"patch {patch} does not apply to the tree: {_failing_hunk(out)}",
                            "rebase the patch on this tree, or pick the tree it was written for",
                            log)
    real = subprocess.run(base, capture_output=True, text=True)
    if log is not None:
        with open(log, "a") as fh:
            fh.write(f"$ patch -p1 -i {patch}\n{real.stdout}{real.stderr}\n")
    if real.returncode != 0:
        raise ForkdiffError(f"patch {patch} failed after a clean dry run: "
                            f"{_failing_hunk(real.stdout + real.stderr)}", "", log)


def check_applies(tree: Path, patches: Sequence[Path]) -> None:
    """Dry-run patches in order against a tree without touching it (only the first one can be
    checked exactly when later ones depend on earlier ones, so this checks each independently)."""
    for patch in patches:
        res = subprocess.run(["patch", "-p1", "--batch", "--forward", "--dry-run", "-d",
                              str(tree), "-i", str(patch.resolve())],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise ForkdiffError(f"patch {patch} does not apply to {tree}: "
                                f"{_failing_hunk(res.stdout + res.stderr)}",
                                "rebase the patch on this tree")


def _owned_by_cache(tree: Path) -> bool:
    """True for a tree forkdiff unpacked into the cache's trees/ (never a user's checkout)."""
    from ..cache import cache_path

    try:
        return Path(tree).resolve().is_relative_to(cache_path("trees").resolve())
    except OSError:
        return False


def prepare_copy(tree: Path, patches: Sequence[Path], dest: Path, log: Path | None = None,
                 say: Callable[[str], None] = lambda _msg: None) -> None:
    """Copy `tree` to `dest` (via dest.partial, renamed when complete) and apply `patches` to the
    copy in order. `tree` is only read."""
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    link = _owned_by_cache(tree)
    say(f"{'linking' if link else 'copying'} {tree}")
    copy_tree(tree, partial, link=link)
    try:
        for p in patches:
            say(f"applying {p.name}")
            apply_patch(partial, p, log)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.rename(dest)


def patch_subject(path: Path) -> str:
    """A patch's subject: its mail "Subject:" header (git format-patch, an mbox; folded lines
    joined, "[PATCH n/m]" kept), else the first paragraph of its description above the diff
    (cut to 120 characters); ""
    when neither (a bare diff) or the file cannot be read."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for i, line in enumerate(lines):
        if line.lower().startswith("subject:"):
            subject = line.split(":", 1)[1].strip()
            for cont in lines[i + 1:]:
                if not cont[:1].isspace() or not cont.strip():
                    break
                subject += " " + cont.strip()
            return subject
        if line.startswith(("diff --git", "--- ", "Index: ")):
            break
    para: list[str] = []  # a plain diff with a description: its first paragraph, one line
    for line in lines:
        if line.startswith(("diff --git", "--- ", "Index: ", "From ")) or (para and not line.strip()):
            break
        if line.strip():
            para.append(line.strip())
    text = " ".join(para)
    return text if len(text) <= 120 else text[:117].rsplit(" ", 1)[0] + " ..."
