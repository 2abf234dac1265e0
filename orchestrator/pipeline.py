"""`make vm-test` end to end: kernels -> suites -> compare -> report, with progress on stderr.

Which kernels: `patched` is the tree as it is (plus $PATCHES); `baseline` is the tree plus
patches/baseline/. Where the baseline patch does not apply (an older or much newer tree), the
run says so and goes on with the kernels it has. Which model each kernel is compared with: its
own variant, except that the tree's own kernel ("patched") is compared with the model its
dup_mmap() source shows (detect_dup_mmap_model), unless MODEL= says otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import report as report_mod
from .compare import compare_dir
from .errors import ForkdiffError
from .faultsetup import FaultOptions
from .kernel import build_kernel, detect_dup_mmap_model
from .observations import ObservationLog
from .patches import baseline_patches, check_applies
from .suites import SPAWN_VMAS, SUITES, RunOptions, run_suite
from .summary import print_summary
from .tree import resolve_tree
from .verdicts import failing

# The profiles each suite's kernels are built with (suites.DEFAULT_PROFILE).
PROFILES_OF = {"maps": "faults", "faults": "faults", "counts": "faults", "spawn": "perf"}


@dataclass
class VmTestOptions:
    out: Path
    suites: tuple[str, ...] = SUITES
    vmas: tuple[int, ...] = SPAWN_VMAS
    duration: float = 2.0  # guest (virtual) seconds per spawn measurement
    repeats: int = 1  # spawn runs per VMA count (-icount: repeats are identical; Welch needs >= 2)
    tree: str | None = None
    patches: tuple[Path, ...] = ()
    models: dict[str, str] = field(default_factory=dict)
    resume: bool = False


class Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, stage: str, item: str = "") -> None:
        el = int(time.monotonic() - self.t0)
        print(f"[vm-test {el // 60:02d}:{el % 60:02d}] {stage}{': ' + item if item else ''}",
              file=sys.stderr, flush=True)


def _variants(tree_path: Path, say: Progress) -> tuple[list[str], str]:
    """Kernel variants this tree gives, and the model of its own dup_mmap()."""
    model = detect_dup_mmap_model(tree_path)
    variants = ["patched"]
    try:
        check_applies(tree_path, baseline_patches())
        variants.insert(0, "baseline")
    except ForkdiffError as err:
        say("baseline", f"skipped: {err.cause} (going on with the tree's own kernel)")
    return variants, model


def run(opts: VmTestOptions) -> int:
    say = Progress()
    out = opts.out
    ObservationLog(out)  # fails now, before any build, when the folder cannot be written
    if opts.tree:
        os.environ["KERNEL_TREE"] = str(opts.tree)
    if opts.patches:
        os.environ["PATCHES"] = " ".join(str(p) for p in opts.patches)
    tree = resolve_tree(opts.tree)
    variants, tree_model = _variants(tree.path, say)
    models = {"patched": tree_model, **opts.models}
    meta = {"run": out.name, "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "tree": str(tree.path), "tree_identity": tree.identity, "kernel_version": tree.version,
            "variants": ", ".join(variants),
            "models": ", ".join(f"{v} kernel vs {models.get(v, v)} model" for v in variants),
            "suites": ", ".join(opts.suites), "spawn_vmas": ", ".join(map(str, opts.vmas)),
            "spawn_duration_s": opts.duration, "spawn_repeats": opts.repeats}
    say("setup", f"tree {tree.path} ({tree.identity}); variants {', '.join(variants)}; "
                 f"tree's dup_mmap model: {tree_model}")
    profiles = sorted({PROFILES_OF[s] for s in opts.suites})
    for profile in profiles:
        for v in variants:
            say("kernel", f"{v}/{profile}")
            k = build_kernel(v, profile)
            meta[f"kernel {v}/{profile}"] = k.release
    (out / "run.json").write_text(json.dumps(meta, indent=1))
    errors = 0
    for suite in opts.suites:
        say("suite", suite)
        t0 = time.monotonic()
        res = run_suite(RunOptions(
            suite=suite, out=out, variants=tuple(variants), vmas=opts.vmas, duration=opts.duration,
            repeats=opts.repeats if suite == "spawn" else None, resume=opts.resume,
            fault=FaultOptions(), log=lambda m: say("suite", m)))
        meta[f"suite {suite} wall s"] = round(time.monotonic() - t0, 1)
        errors += len(res.errors)
        (out / "run.json").write_text(json.dumps(meta, indent=1))
    say("compare", str(out))
    df = compare_dir(out, models)
    say("report", str(out / "report.html"))
    report_mod.render(out)
    print_summary(df, out)
    print(f"report: {out / 'report.html'}")
    return 1 if (errors or not failing(df).empty) else 0
