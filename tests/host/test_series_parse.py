"""Series parsing (orchestrator/prepare/series.py) and base-commit trees (gitbase.py), on real git
output: a small git repository made here, its `git format-patch` folder and `--stdout` mbox,
split by real `git mailsplit`/`git mailinfo`. No fakes. The cache is a temp folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.prepare.gitbase import tree_at_base
from orchestrator.prepare.series import expand, is_mbox, load_series
from orchestrator.prepare.tree import KernelTree

REPO = Path(__file__).resolve().parents[2]
MBOX = REPO / "tests" / "planted" / "series-leak-in-patch-2.mbox"
ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
       "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z", "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PATCHES", raising=False)
    monkeypatch.delenv("KERNEL_TREE", raising=False)


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | ENV | {"HOME": str(repo)}
    return subprocess.run(["git", "-C", str(repo), "-c", "init.defaultBranch=main", *args],
                          env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    """base + three commits, each changing its own file; the files' final texts are known."""
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q")
    for name in ("a.c", "b.c", "c.c"):
        (r / name).write_text(f"/* {name} */\nint {name[0]}(void) {{ return 0; }}\n")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "base")
    for i, name in enumerate(("a.c", "b.c", "c.c"), 1):
        (r / name).write_text((r / name).read_text().replace("return 0", f"return {i}"))
        git(r, "commit", "-q", "-a", "-m", f"change {name} (patch {i})")
    return r


def apply_all(patches, base_files: dict[str, str], dest: Path) -> dict[str, str]:
    dest.mkdir()
    for name, text in base_files.items():
        (dest / name).write_text(text)
    for p in patches:
        subprocess.run(["patch", "-p1", "--batch", "-d", str(dest), "-i", str(p)], check=True,
                       capture_output=True)
    return {n: (dest / n).read_text() for n in base_files}


def base_files(repo: Path) -> dict[str, str]:
    return {n: git(repo, "show", f"HEAD~3:{n}") + "\n" for n in ("a.c", "b.c", "c.c")}


def test_format_patch_folder_gives_the_patches_in_order_without_the_cover_letter(repo, tmp_path):
    out = tmp_path / "fp"
    git(repo, "format-patch", "-q", "--cover-letter", "--base=HEAD~3", "-o", str(out), "HEAD~3")
    assert (out / "0000-cover-letter.patch").is_file()
    s = load_series(out)
    assert len(s.patches) == 3
    assert [sub.split("] ", 1)[1] for sub in s.subjects] == [
        "change a.c (patch 1)", "change b.c (patch 2)", "change c.c (patch 3)"]
    assert s.base_commit == git(repo, "rev-parse", "HEAD~3")
    got = apply_all(s.patches, base_files(repo), tmp_path / "applied")
    assert got == {n: (repo / n).read_text() for n in ("a.c", "b.c", "c.c")}


def test_mbox_is_split_by_git_and_sorted_by_patch_number(repo, tmp_path):
    mails = git(repo, "format-patch", "--stdout", "--base=HEAD~3", "HEAD~3")
    parts = ["From " + m for m in mails.split("\nFrom ")]
    parts[0] = parts[0][len("From "):]
    shuffled = tmp_path / "shuffled.mbox"  # a mailbox gives mails in arrival order
    shuffled.write_text("\n".join([parts[2], parts[0], parts[1]]) + "\n")
    assert is_mbox(shuffled)
    s = load_series(shuffled)
    assert [sub.split(" ", 1)[1].split("]")[0] for sub in s.subjects] == ["1/3", "2/3", "3/3"]
    assert s.base_commit == git(repo, "rev-parse", "HEAD~3")
    got = apply_all(s.patches, base_files(repo), tmp_path / "applied")
    assert got["c.c"].count("return 3") == 1 and got["a.c"].count("return 1") == 1


def test_planted_series_names_patch_2_as_the_fork_c_change():
    s = expand([MBOX])
    assert len(s.patches) == 3
    touched = [next(ln for ln in p.read_text().splitlines() if ln.startswith("+++ ")) for p in s.patches]
    assert touched == ["+++ b/mm/mmap.c", "+++ b/kernel/fork.c", "+++ b/kernel/exit.c"]
    assert "goto fail_nomem;" in s.patches[1].read_text()
    assert s.base_commit and len(s.base_commit) == 40


def test_a_single_patch_file_passes_through_and_plain_patches_keep_their_order(tmp_path):
    one = REPO / "tests" / "planted" / "comment-only.patch"
    assert not is_mbox(one)
    s = expand([one, MBOX])
    assert s.patches[0] == one and len(s.patches) == 4


def test_mbox_of_two_versions_is_refused(tmp_path):
    text = MBOX.read_text()
    twice = tmp_path / "two.mbox"
    twice.write_text(text + "\n" + text.replace("[PATCH ", "[PATCH v2 "))
    with pytest.raises(ForkdiffError, match="two patches numbered 1"):
        load_series(twice)


def test_cover_letter_alone_and_a_folder_without_patches_are_errors(tmp_path):
    cover = tmp_path / "cover.mbox"
    cover.write_text(MBOX.read_text().split("\nFrom c9480053")[0])
    with pytest.raises(ForkdiffError, match="no patch in"):
        load_series(cover)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ForkdiffError, match="holds no"):
        load_series(tmp_path / "empty")
    with pytest.raises(ForkdiffError, match="does not exist"):
        load_series(tmp_path / "missing")


def test_base_commit_on_a_git_checkout_exports_that_commit(repo):
    base = git(repo, "rev-parse", "HEAD~3")
    before = git(repo, "status", "--porcelain")
    t = tree_at_base(str(repo), base, "the series")
    assert isinstance(t, KernelTree) and t.identity.startswith(f"git:{base}:")
    assert (t.path / "c.c").read_text() == git(repo, "show", f"{base}:c.c") + "\n"
    assert git(repo, "status", "--porcelain") == before  # the checkout is untouched
    assert git(repo, "rev-parse", "HEAD") != base


def test_base_commit_missing_from_the_checkout_is_a_clear_error(repo):
    with pytest.raises(ForkdiffError, match="base-commit 0123456789ab.* is not in the git checkout") as err:
        tree_at_base(str(repo), "0123456789abcdef0123456789abcdef01234567", "the series")
    assert "git fetch" in err.value.next_step


def test_base_commit_on_a_tree_that_is_not_git_is_said_and_not_used(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    said = []
    assert tree_at_base(str(plain), "abcdef1", "s", said.append) == str(plain)
    assert said and "not a git checkout" in said[0]
    assert tree_at_base(None, "abcdef1", "s", said.append) is None
    shutil.rmtree(plain)
