"""A patch series as the mailing list gives it: an mbox (`git format-patch --stdout`, `b4 am`'s
.mbx) or a folder of `git format-patch` output, turned into plain patch files in the series'
order, plus the series' `base-commit:` trailer.

git itself does the mail parsing: `git mailsplit` cuts an mbox into one file per mail and
`git mailinfo` takes each mail's diff out of it (MIME, quoted-printable and encodings
included). Both run in a scratch folder in the cache (series/<hash of the input>/), never in a
user's tree. A mail without a diff (the cover letter) is left out; when every patch is numbered
("[PATCH v2 3/7]") the numbers give the order, else the order in the mbox (or the file names in
a folder: 0001-..., 0002-...)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..cache import atomic_write, cache_path, locked
from ..errors import ForkdiffError

BASE_COMMIT = re.compile(r"^base-commit:[ \t]*([0-9a-fA-F]{7,64})[ \t]*$", re.M)
MAIL_START = re.compile(r"^From \S+ +\w{3} \w{3} +\d+ [\d:]+ \d{4}", re.M)  # the mbox "From " line
NUMBER = re.compile(r"\[[^\]]*?\b(\d+)/(\d+)\s*\]")
MBOX_SUFFIXES = (".mbox", ".mbx")


@dataclass(frozen=True)
class Series:
    """Patches in series order (each a file `patch -p1` applies), their subjects, the series'
    base-commit (None when it has none) and what they came from."""

    patches: tuple[Path, ...]
    subjects: tuple[str, ...]
    base_commit: str | None
    source: str


def is_mbox(path: Path) -> bool:
    """An mbox to split: named .mbox/.mbx, or a file holding more than one mail. A single
    `git format-patch` file is a patch `patch -p1` reads as it is."""
    if path.suffix in MBOX_SUFFIXES:
        return True
    try:
        head = path.read_text(errors="replace")
    except OSError:
        return False
    return len(MAIL_START.findall(head)) > 1


def base_commit_of(text: str, source: str) -> str | None:
    found = {m.lower() for m in BASE_COMMIT.findall(text)}
    if len(found) > 1:
        raise ForkdiffError(f"{source} names {len(found)} different base-commits: "
                            f"{', '.join(sorted(found))}",
                            "give one series at a time (b4 am writes one per series)")
    return found.pop() if found else None


def _git(args: list[str], cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True,
                              timeout=300, check=False)
    except OSError as err:
        raise ForkdiffError(f"cannot run git to split a patch series: {err}",
                            "install git (make setup)") from None


def _slug(subject: str) -> str:
    s = re.sub(r"^\s*(\[[^\]]*\]\s*)+", "", subject)
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-")[:52] or "patch"


def _order(mails: list[tuple[str, bytes]], source: str) -> list[tuple[str, bytes]]:
    """Sort by the "n/m" of [PATCH n/m] when every patch has one; else keep the given order."""
    nums = [NUMBER.search(subj) for subj, _ in mails]
    if len(mails) < 2 or not all(nums):
        return mails
    seen: dict[int, str] = {}
    for (subj, _), m in zip(mails, nums, strict=True):
        n = int(m.group(1))
        if n in seen:
            raise ForkdiffError(f"{source} holds two patches numbered {n}: {seen[n]!r} and {subj!r}",
                                "give one version of the series (b4 am -v N picks one)")
        seen[n] = subj
    return [mail for _, mail in sorted(zip((int(m.group(1)) for m in nums), mails, strict=True),
                                       key=lambda t: t[0])]


def _split_mbox(mbox: Path, scratch: Path) -> list[tuple[str, bytes]]:
    """(subject, diff) of every mail of `mbox` with a diff, in mbox order."""
    mails = scratch / "mails"
    mails.mkdir(parents=True)
    res = _git(["mailsplit", f"-o{mails}", "--", str(mbox.resolve())], scratch)
    if res.returncode != 0:
        raise ForkdiffError(f"git mailsplit cannot read {mbox}: "
                            f"{res.stderr.decode(errors='replace').strip()[-300:]}",
                            "give an mbox (git format-patch --stdout, b4 am) or a folder of .patch files")
    out = []
    for mail in sorted(mails.iterdir()):
        out.append(_mailinfo(mail, scratch, mbox))
    return [m for m in out if m[1].strip()]


def _mailinfo(mail: Path, scratch: Path, source: Path) -> tuple[str, bytes]:
    """(subject as sent, diff) of one mail, through `git mailinfo -k` (keeps [PATCH n/m])."""
    msg, diff = scratch / "msg", scratch / "diff"
    res = _git(["mailinfo", "-k", str(msg), str(diff)], scratch, mail.read_bytes())
    if res.returncode != 0:
        raise ForkdiffError(f"git mailinfo cannot read a mail of {source} ({mail.name}): "
                            f"{res.stderr.decode(errors='replace').strip()[-300:]}",
                            "check that the file is an mbox of patches")
    subject = ""
    for line in res.stdout.decode(errors="replace").splitlines():
        if line.startswith("Subject: "):
            subject = line[len("Subject: "):].strip()
    return subject, diff.read_bytes() if diff.is_file() else b""


def _inputs(path: Path) -> tuple[list[Path], str]:
    """The files a series is read from: an mbox, or a folder's *.patch (else its one .mbx/.mbox)."""
    if path.is_file():
        return [path], "mbox"
    if not path.is_dir():
        raise ForkdiffError(f"patch series {path} does not exist",
                            "give PATCHES= a patch, an mbox or a folder of git format-patch output")
    patches = sorted(path.glob("*.patch"))
    if patches:
        return patches, "folder"
    boxes = sorted(p for s in MBOX_SUFFIXES for p in path.glob(f"*{s}"))
    if len(boxes) == 1:
        return boxes, "mbox"
    raise ForkdiffError(f"{path} holds no *.patch and {len(boxes)} mbox files ({', '.join(b.name for b in boxes)})"
                        if boxes else f"{path} holds no *.patch, .mbx or .mbox file",
                        "give a folder of git format-patch output, or the one mbox of the series")


def load_series(path: Path) -> Series:
    """Split an mbox or a folder of format-patch files into plain patches in the cache (once per
    content) and read its base-commit."""
    path = Path(path).expanduser()
    files, kind = _inputs(path)
    texts = [f.read_bytes() for f in files]
    extra = [c.read_bytes() for c in sorted(path.glob("*.cover"))] if path.is_dir() else []
    base = base_commit_of(b"\n".join(texts + extra).decode(errors="replace"), str(path))
    key = hashlib.sha256(json.dumps([kind, [hashlib.sha256(t).hexdigest() for t in texts]])
                         .encode()).hexdigest()[:16]
    scratch = cache_path("series", key)
    done = scratch / "series.json"
    with locked(f"series-{key}"):
        if not done.is_file():
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            try:
                mails = _split_mbox(files[0], scratch) if kind == "mbox" else \
                    [m for f in files if (m := _mailinfo(f, scratch, f))[1].strip()]
                if not mails:
                    raise ForkdiffError(f"no patch in {path}: no mail in it has a diff",
                                        "give the series' patches, not only its cover letter")
                if kind == "mbox":
                    mails = _order(mails, str(path))
                out = []
                for i, (subject, diff) in enumerate(mails, 1):
                    p = scratch / f"{i:04d}-{_slug(subject)}.patch"
                    p.write_bytes(f"Subject: {subject}\n\n".encode() + diff)
                    out.append({"file": p.name, "subject": subject})
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
            atomic_write(done, json.dumps({"source": str(path.resolve()), "base_commit": base,
                                           "patches": out}, indent=1))
    recorded = json.loads(done.read_text())["patches"]
    return Series(tuple(scratch / r["file"] for r in recorded),
                  tuple(r["subject"] for r in recorded), base, str(path))


def expand(items: Sequence[Path]) -> Series:
    """PATCHES=: each item a patch file, an mbox or a folder of format-patch output; the
    patches in order, with the base-commit of the series among them (at most one)."""
    patches: list[Path] = []
    subjects: list[str] = []
    bases: set[str] = set()
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir() or (p.is_file() and is_mbox(p)):
            s = load_series(p)
            patches += s.patches
            subjects += s.subjects
            bases |= {s.base_commit} if s.base_commit else set()
        else:
            patches.append(p)
            subjects.append(p.name)
    if len(bases) > 1:
        raise ForkdiffError(f"PATCHES= holds series on different base-commits: {', '.join(sorted(bases))}",
                            "test one series at a time")
    return Series(tuple(patches), tuple(subjects), bases.pop() if bases else None,
                  " ".join(str(i) for i in items))
