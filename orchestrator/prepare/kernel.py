"""Kernel variants and their cached builds.

A variant is (tree, patches, kconfig profile): `patched` is the tree as it is (6.12 copies the
maple tree with __mt_dup() in dup_mmap()), plus $PATCHES / `patches` if given; `baseline` is the
tree plus patches/baseline/*.patch, which restore the dup_mmap() from before that series, or the
tree as it is where that patch does not apply (7.x) or the tree's dup_mmap() is already the
baseline one (6.1): orchestrator/prepare/variants.py decides, and BuiltKernel.made_of says which.
The key hashes the patches applied, so the two kinds of baseline never share a cached kernel.

Layout in the cache (keys are content hashes):
    src/<srckey>/                 plain copy of the tree with the variant's patches applied
    src/<srckey>/o-<key>/         the out-of-tree build (O=), a direct child of the source copy, so
                                  Kbuild uses srctree=".." and every compiler command line is the
                                  same for both variants: ccache hits across variants
    kernels/<key>/{bzImage,config,build.log,manifest.json,build -> ../../src/<srckey>/o-<key>}
    ccache/                       CCACHE_DIR
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simulator.fork import VARIANTS

from ..cache import atomic_write, cache_path, held, locked, mark_used, sha256_file, sha256_text
from ..errors import ForkdiffError, KernelDoesNotBuild
from . import kconfig_needs, variants
from .kconfig import ARCH, PROFILES, configure, effective_text, profile_fragments
from .patches import baseline_patches, patch_identity, prepare_copy
from .seed import seed_objects, touches_kconfig
from .source import TreeSource, resolve_source
from .tree import KernelTree
from .treefacts import FACT_KEYS, detect, detect_dup_mmap_model, vdso_pages_of_build, version_tuple

__all__ = ["VARIANTS", "PROFILES", "BuiltKernel", "build_kernel", "detect_dup_mmap_model",
           "check_build_tools", "release_string"]

# Bump when the build recipe changes in a way that changes the bzImage.
RECIPE = "3"
BUILD_TOOLS = ("gcc", "make", "flex", "bison", "bc", "ccache", "patch", "tar", "perl")
PROGRESS_EVERY = 10.0


@dataclass
class BuiltKernel:
    variant: str
    profile: str
    bzimage: Path
    config: Path
    release: str
    tree: KernelTree
    build_dir: Path
    log: Path
    manifest: dict = field(default_factory=dict)
    made_of: str = ""  # what it was built from (orchestrator.prepare.variants: TREE, ...)


# uname -r = <tree version><CONFIG_LOCALVERSION><make LOCALVERSION=...>. CONFIG_LOCALVERSION is
# the same for every variant: it is a string in include/generated/autoconf.h, which every file
# includes, so a per-variant value would change every compiler input and ccache could only hit
# after preprocessing each file again (measured: ~9 min on 2 cores, as long as a cold build).
# The variant/profile part goes through Kbuild's LOCALVERSION variable, which only reaches
# include/config/kernel.release and utsrelease.h: the second variant then hits in direct mode.
CONFIG_LOCALVERSION = "-forkdiff"


def release_string(version: str, variant: str, profile: str) -> str:
    """`uname -r` of a variant's kernel: tree version + "-forkdiff-<variant>-<profile>"."""
    return f"{version}{CONFIG_LOCALVERSION}{make_localversion(variant, profile)}"


def make_localversion(variant: str, profile: str) -> str:
    return f"-{variant}-{profile}"


def check_build_tools(path: str | None = None) -> None:
    """Raise ForkdiffError naming each build tool missing from PATH."""
    search = path if path is not None else os.environ.get("PATH", "")
    missing = [t for t in BUILD_TOOLS if shutil.which(t, path=search) is None]
    if missing:
        raise ForkdiffError(f"kernel build tools missing from PATH: {', '.join(missing)}",
                            "run 'make setup' (installs build-essential, flex, bison, bc, ccache)")


def gcc_version() -> str:
    out = subprocess.run(["gcc", "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0].strip() if out.returncode == 0 and out.stdout else "unknown"


class _Build:
    """One build of one key: paths, the log, the progress line."""

    def __init__(self, variant: str, profile: str, tree: KernelTree, patches: list[Path],
                 fragments: list[Path], progress: bool, made_of: str = "", gcc: str = ""):
        self.variant, self.profile, self.tree, self.made_of = variant, profile, tree, made_of
        self.patches, self.fragments, self.progress = patches, fragments, progress
        self.gcc = gcc or gcc_version()
        self.patch_ids = patch_identity(patches)
        ident = [tree.identity, json.dumps([p["sha256"] for p in self.patch_ids])]
        self.src_key = sha256_text("src", RECIPE, *ident)[:16]
        # the fragments as merged on this tree's version (kconfig version annotations resolved)
        self.version = version_tuple(tree.version)
        effective = [effective_text(f.read_text(), self.version, f.name) for f in fragments]
        self.key = sha256_text("kernel", RECIPE, *ident, variant, profile, self.gcc, *effective)[:16]
        # what the object folder's .config was made from: its stamp holds it. A folder named by
        # the key always matches; a persistent one (the bisection's, orchestrator/prepare/mirror.py)
        # is configured again when the fragments (or their effective text on a new version) change
        self.configured_from = sha256_text("configured", *effective) + "\n"
        # made by the build that writes it (start_log), not here: a _Build is also made only
        # to look a seed candidate up, which left an empty kernels/<key> per probe
        self.kdir = cache_path("kernels") / self.key
        self.src = cache_path("src") / self.src_key
        self.obj = self.src / f"o-{self.key}"
        self.log = self.kdir / "build.log"
        self.manifest_path = self.kdir / "manifest.json"
        self.bzimage = self.kdir / "bzImage"
        self.config = self.kdir / "config"
        self.t0 = time.monotonic()
        self.label = f"{variant}/{profile}"

    # -- helpers -------------------------------------------------------------------------
    def start_log(self, text: str) -> None:
        """The kernel's cache folder, made now, and its build.log begun with text."""
        self.kdir.mkdir(parents=True, exist_ok=True)
        self.log.write_text(text)

    def say(self, msg: str) -> None:
        if self.progress:
            print(f"forkdiff kernel {self.label}: {msg} [{self.elapsed()}]", file=sys.stderr,
                  flush=True)

    def notice(self, msg: str) -> None:
        """A line the user must see whatever the progress setting (and the log keeps)."""
        print(f"forkdiff kernel {self.label}: NOTICE: {msg}", file=sys.stderr, flush=True)
        with open(self.log, "a") as fh:
            fh.write(f"forkdiff: NOTICE: {msg}\n")

    def elapsed(self) -> str:
        s = int(time.monotonic() - self.t0)
        return f"{s // 60}m{s % 60:02d}s"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # CCACHE_DEPEND: ccache takes a file's includes from the compiler's own -MMD output
        # (Kbuild passes -Wp,-MMD) instead of running the preprocessor first on every miss.
        # That preprocessor run only pays when it finds a hit direct mode missed (same
        # preprocessed text, different inputs), which forkdiff's builds do not produce: the
        # second variant hits in direct mode, and the two profiles compile with different flags
        # (faults: -fno-inline-functions-called-once). Measured on 62 of the faults kernel's
        # objects in an empty cache: 20.2 s of CPU instead of 28.9 s, the same objects.
        env.update(CCACHE_DIR=str(cache_path("ccache")), CCACHE_NOHASHDIR="1",
                   CCACHE_BASEDIR=str(self.src), CCACHE_DEPEND="1", KBUILD_BUILD_USER="forkdiff",
                   KBUILD_BUILD_HOST="forkdiff", ARCH=ARCH, LC_ALL="C")
        env.pop("KCONFIG_CONFIG", None)
        return env

    def run(self, cmd: list[str], phase: str, cwd: Path | None = None) -> None:
        """Run cmd with output appended to the log, a progress line every 10 s, and a
        ForkdiffError quoting the last error lines on failure."""
        with open(self.log, "a") as fh:
            fh.write(f"\n$ {' '.join(cmd)}\n")
            fh.flush()
            proc = subprocess.Popen(cmd, cwd=cwd or self.src, stdout=fh, stderr=subprocess.STDOUT,
                                    env=self.env(), start_new_session=True)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=PROGRESS_EVERY)
                    break
                except subprocess.TimeoutExpired:
                    self.say(f"{phase}: {self.last_step()}")
        except BaseException:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
        if rc != 0:
            kind = KernelDoesNotBuild if phase == "compile" else ForkdiffError
            raise kind(f"kernel {self.label} {phase} failed (exit {rc}): "
                                f"{self.error_lines()}",
                                "read the log; a missing tool or header means 'make setup'",
                                self.log)

    def tail(self, n: int = 4000) -> list[str]:
        with open(self.log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 200_000))
            return fh.read().decode(errors="replace").splitlines()[-n:]

    def last_step(self) -> str:
        for line in reversed(self.tail(50)):
            if re.match(r"^\s+[A-Z]{2,}[A-Z0-9_]*\s+\S", line):
                return line.strip()
        return "running"

    def error_lines(self) -> str:
        lines = self.tail()
        errs = [ln.strip() for ln in lines if re.search(r"\berror\b|Error \d|\*\*\*", ln)]
        return " / ".join((errs or lines)[-4:])[-600:]

    # -- stages --------------------------------------------------------------------------
    def prepare_source(self) -> None:
        """Copy the tree into src/<srckey> and apply the patches (once per tree + patches)."""
        ready = self.src / ".forkdiff-src-ready"
        with locked(f"src-{self.src_key}"):
            if ready.exists():
                mark_used(self.src)  # a build starts here: prune must not take the copy now
                return
            prepare_copy(self.tree.path, self.patches, self.src, self.log, self.say)
            atomic_write(ready, json.dumps({"tree": self.tree.identity, "patches": self.patch_ids}))

    def seed(self) -> tuple[_Build, list[Path]] | None:
        """The complete build of the same tree, profile and compiler whose patches are the
        longest prefix of this build's, and the patches beyond it; None when there is none or a
        patch beyond it touches a Kconfig file (orchestrator/prepare/seed.py). Of this variant
        a proper prefix; of another variant the same patches too: the variants of a profile have
        the same .config and differ only in the release string (make's LOCALVERSION), which
        Kbuild follows (include/generated/utsrelease.h, and what includes it, is made again)."""
        others = [v for v in variants.KERNELS if v != self.variant]
        for n in range(len(self.patches), -1, -1):
            extra = self.patches[n:]
            if touches_kconfig(extra):
                return None
            for variant in ([] if n == len(self.patches) else [self.variant]) + others:
                other = _Build(variant, self.profile, self.tree, self.patches[:n], self.fragments,
                               False, gcc=self.gcc)  # one `gcc --version` per build, not per candidate
                if not other.complete() and n < len(self.patches) and held(f"kernel-{other.key}"):
                    # being built by another process (make test's workers, two runs at once):
                    # its objects are minutes away, a build from nothing as long again. Only
                    # fewer patches are waited for, so two builds never wait for each other.
                    self.say(f"configure: waiting for {other.label} ({other.key}, being built "
                             "elsewhere) to start from its objects")
                    with locked(f"kernel-{other.key}"):
                        pass
                if other.complete():
                    return other, extra
        return None

    def complete(self) -> bool:
        """A finished build whose object folder is still there (what seed() copies)."""
        return self.manifest_path.is_file() and (self.obj / ".forkdiff-configured").is_file() \
            and (self.obj / "vmlinux").is_file()

    def configure(self) -> None:
        stamp = self.obj / ".forkdiff-configured"
        if (self.obj / ".config").is_file() and stamp.is_file() \
                and stamp.read_text() == self.configured_from:
            return
        if stamp.is_file():
            self.say("configure: the kconfig fragments changed since this folder was configured")
        shutil.rmtree(self.obj, ignore_errors=True)
        seed = self.seed()
        if seed is not None:
            other, extra = seed
            with locked(f"kernel-{other.key}"):  # not rebuilt while it is copied
                touched = seed_objects(other.obj, self.obj, self.src, extra)
            self.say(f"configure: from the objects of {other.key} ({len(other.patches)} patch(es)), "
                     f"{touched} file(s) of {', '.join(p.name for p in extra)} to recompile")
            for entry in kconfig_needs.saved(self.obj):
                self.notice(f"kconfig: {kconfig_needs.notice(entry)}")
            return
        self.obj.mkdir(parents=True)
        lv = self.kdir / "localversion.config"
        lv.write_text(f'CONFIG_LOCALVERSION="{CONFIG_LOCALVERSION}"\n'
                      "# CONFIG_LOCALVERSION_AUTO is not set\n")
        fragments = [*self.fragments, lv]
        self.say("configure: tinyconfig + " + " + ".join(f.name for f in fragments))
        try:
            configure(self.src, self.obj, fragments, self.run, self.version)
        except ForkdiffError as err:
            err.log = err.log or self.log
            raise
        for entry in kconfig_needs.saved(self.obj):
            self.notice(f"kconfig: {kconfig_needs.notice(entry)}")
        stamp.write_text(self.configured_from)

    def compile(self) -> None:
        jobs = str(os.cpu_count() or 1)
        self.say(f"compiling bzImage (make -j{jobs}, ccache)")
        # host tools (objtool, fixdep, modpost...) through ccache too: the same in every build
        self.run(["make", f"ARCH={ARCH}", f"O={self.obj}", f"-j{jobs}", "CC=ccache gcc",
                  "HOSTCC=ccache gcc",
                  f"LOCALVERSION={make_localversion(self.variant, self.profile)}", "bzImage"],
                 "compile")

    def record(self, seconds: float) -> dict:
        built = self.obj / "arch/x86/boot/bzImage"
        if not built.is_file():
            raise ForkdiffError(f"kernel {self.label}: make succeeded but {built} is missing",
                                "read the log", self.log)
        tmp = self.bzimage.with_name(".bzImage.tmp")
        shutil.copyfile(built, tmp)
        os.replace(tmp, self.bzimage)
        shutil.copyfile(self.obj / ".config", self.config)
        release = (self.obj / "include/config/kernel.release").read_text().strip()
        link = self.kdir / "build"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(self.obj)
        manifest = {
            "key": self.key, "variant": self.variant, "profile": self.profile,
            "tree": {"identity": self.tree.identity, "path": str(self.tree.path),
                     "version": self.tree.version},
            "patches": self.patch_ids, "made_of": self.made_of,
            "fragments": [{"name": f.name, "sha256": sha256_file(f)} for f in self.fragments],
            "gcc": self.gcc, "release": release,
            # requested options this tree's Kconfig no longer defines, and how their need is met
            "kconfig_substitutes": kconfig_needs.saved(self.obj),
            "bzimage": {"path": str(self.bzimage), "sha256": sha256_file(self.bzimage),
                        "size": self.bzimage.stat().st_size},
            "build_seconds": round(seconds, 1), "build_dir": str(self.obj),
            **self.facts(),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write(self.manifest_path, json.dumps(manifest, indent=2) + "\n")
        return manifest

    def facts(self) -> dict:
        """The manifest's entries read from the source copy and the build: dup_mmap_model and
        kernel_facts (tree facts plus built_facts), each read once."""
        facts = detect(self.src) | built_facts(self.src, self.obj)
        return {"dup_mmap_model": facts["dup_mmap_model"], "kernel_facts": facts}

    def cached(self) -> dict | None:
        """The manifest if the recorded bzImage is intact; else None (and the stale images are
        removed so that make relinks them)."""
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return None
        want = manifest.get("bzimage", {}).get("sha256")
        if not manifest_complete(manifest):
            # a manifest of an older forkdiff: what it lacks is read from the source copy and
            # build and recorded, so the kernel is self-contained again (and exports complete);
            # without them (pruned, or by hand) it is built again (ccache makes that quick). A
            # complete manifest needs neither (an imported kernel has no build folder).
            if not self.obj.is_dir():
                self.say(f"manifest without {', '.join(missing_facts(manifest))} and build "
                         f"folder {self.obj} missing: rebuilding from a new source copy")
                self.manifest_path.unlink(missing_ok=True)
                return None
            manifest.update(self.facts())
            atomic_write(self.manifest_path, json.dumps(manifest, indent=2) + "\n")
        if self.bzimage.is_file() and want and sha256_file(self.bzimage) == want:
            return manifest
        self.say("cached bzImage missing or corrupt: rebuilding")
        for p in (self.bzimage, self.obj / "arch/x86/boot/bzImage", self.manifest_path):
            p.unlink(missing_ok=True)
        return None

    def result(self, manifest: dict) -> BuiltKernel:
        mark_used(self.kdir)
        if self.src.is_dir():
            mark_used(self.src)
        return BuiltKernel(variant=self.variant, profile=self.profile, bzimage=self.bzimage,
                           config=self.config, release=manifest["release"], tree=self.tree,
                           build_dir=self.obj, log=self.log, manifest=manifest,
                           made_of=self.made_of)


# What a run reads of a built kernel beyond its image and .config, recorded in its manifest so
# that the kernel is self-contained (an imported kernel has no source copy or build folder):
# the tree facts (treefacts.FACT_KEYS) and what the build made (BUILT_FACTS).
BUILT_FACTS = ("vdso_pages", "failslab_attr_ro")


def built_facts(src: Path, obj: Path) -> dict:
    """vdso_pages: the x86-64 vDSO image's pages as built; failslab_attr_ro: mm/slub.c makes
    /sys/kernel/slab/<cache>/failslab read-only (SLAB_ATTR_RO(failslab), 6.1), so the flag can
    only be given at boot (orchestrator/run/faultsetup.py boot_flags)."""
    out: dict = {"failslab_attr_ro": failslab_attr_ro(src)}
    pages = vdso_pages_of_build(obj)
    if pages:
        out["vdso_pages"] = pages
    return out


def failslab_attr_ro(src: Path) -> bool:
    slub = Path(src) / "mm/slub.c"
    return slub.is_file() and "SLAB_ATTR_RO(failslab)" in slub.read_text(errors="replace")


def missing_facts(manifest: dict) -> list[str]:
    have = set(manifest.get("kernel_facts") or {})
    return [k for k in (*FACT_KEYS, "failslab_attr_ro") if k not in have]


def manifest_complete(manifest: dict) -> bool:
    return not missing_facts(manifest)


def variant_patches(variant: str, tree_model: str, patches: Sequence[Path], tree_label: str,
                    baseline_applies: bool = True) -> list[Path]:
    """The patches that make `variant` out of a tree whose own dup_mmap() is `tree_model`
    (orchestrator/prepare/variants.py has the table). A tree whose dup_mmap() copies with __mt_dup
    ("patched", 6.8 on): `patched` is the tree plus `patches`; `baseline` the tree plus
    patches/baseline/ where that applies (6.12), else the tree as it is (7.x, where the pre-series
    loop cannot be restored: the reference kernel for `patches`, compared with the "patched"
    model). A tree from before the series ("baseline", e.g. 6.1): `baseline` is the tree as it
    is, `patched` the tree plus `patches`, which must then be given (there is nothing else to
    make it from)."""
    if tree_model == "baseline" and variant == "patched" and not patches:
        raise ForkdiffError(f"{tree_label}: its own dup_mmap() is the baseline one (no __mt_dup), "
                            "so variant 'patched' needs patches to make it",
                            "give PATCHES=/--patch with the series to test, or build --variant baseline")
    what = variants.made_of(variant, tree_model, lambda: None if baseline_applies else "no", patches)
    if what == variants.TREE_BASELINE:
        return baseline_patches()
    return list(patches) if what == variants.TREE_PATCHES else []


def _make(b: _Build) -> dict:
    """Build b (its lock held): the source copy, configure (or the objects of a seed), compile;
    its manifest."""
    b.start_log(f"forkdiff kernel build {b.label} key={b.key} tree={b.tree.path}\n")
    b.prepare_source()
    b.configure()
    b.compile()
    return b.record(time.monotonic() - b.t0)


def build_kernel(variant: str, profile: str, tree: str | Path | KernelTree | TreeSource | None = None,
                 patches: Sequence[Path] = (), progress: bool = True,
                 no_patches: bool = False) -> BuiltKernel:
    """Build (or fetch from the cache) the bzImage of one variant and profile.

    tree: a TreeSource (resolved once for a run: orchestrator/conduct/plan.py), a kernel source
    tree or debian:SUITE:PACKAGE (default: Debian's linux-source-6.12), resolved here.
    patches: extra patches for the `patched` variant (the commands read PATCHES=). `baseline` is the tree
    plus patches/baseline/*.patch, or the tree itself when its dup_mmap() is already the
    baseline one or that patch does not apply (variant_patches). `reference` is the tree as it
    is, the measured A/B partner of the tree + PATCHES (variants.py): the very kernel a run
    without PATCHES= builds as `patched` (same cache key, same image), whatever PATCHES says.
    no_patches: ignore `patches`.
    """
    if variant == "reference":
        k = build_kernel("patched", profile, tree, progress=progress, no_patches=True)
        return dataclasses.replace(k, variant="reference")
    if variant not in VARIANTS:
        raise ForkdiffError(f"unknown kernel variant {variant!r}",
                            f"use one of: {', '.join(variants.KERNELS)}")
    fragments = profile_fragments(profile)
    check_build_tools()
    source = resolve_source(tree)
    kt, tree_model = source.tree, source.model
    extra = [] if no_patches else [Path(p) for p in patches]
    applies = variant != "baseline" or tree_model == "baseline" or source.baseline_cause is None
    plist = variant_patches(variant, tree_model, extra, f"tree {kt.path} ({kt.version})", applies)
    what = variants.made_of(variant, tree_model, lambda: None if applies else "no", extra)
    b = _Build(variant, profile, kt, plist, fragments, progress, what)
    with locked(f"kernel-{b.key}"):
        manifest = b.cached()
        if manifest is not None:
            return b.result(manifest)
        manifest = _make(b)
        # patches/baseline/ must have restored the pre-series loop; a baseline that is the tree
        # as it is has the tree's own model, whatever it is (variants.py)
        want_model = "baseline" if what == variants.TREE_BASELINE else None
        if want_model and manifest["dup_mmap_model"] != want_model:
            raise ForkdiffError(f"kernel {b.label}: patched source still uses __mt_dup() in dup_mmap()",
                                "check patches/baseline/", b.log)
        b.say(f"done: {b.bzimage} ({manifest['bzimage']['size']} bytes, {manifest['release']})")
        return b.result(manifest)
