"""`forkdiff reply`: a plain-text mail body for a FAIL, in the form the kernel's test robots
(0-day, syzbot) reply to a patch on the list with: what was tested (tree, version, patches with
their subjects, kernels, suites), the first divergence and the failing rows grouped by kind
(orchestrator/analysis/triage.py), the first failing row's detail (a kmemleak stack, what
differs), how to reproduce it with one `make vm-test` line, and the Reported-by:/Closes: tags
left for the sender to fill. It is written to a file and printed, never sent.

Where the facts come from: the folder's run.json (tree, suites, scenarios, options; since this
version also the tree as given, KERNEL_TREE=, PATCHES= with paths and subjects, and MODEL=),
kernels/*.json (each kernel's release, patches and their sha256), verdicts.jsonl. Older
folders do not record PATCHES= paths: a patch file given with --patches whose sha256 is the
recorded one supplies path and subject; otherwise the reply says which patch file to name."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pandas as pd

from .. import resources
from ..cache import sha256_file
from ..errors import ForkdiffError
from ..prepare.kernel_records import read_records as read_kernel_records
from ..prepare.patches import patch_subject
from ..prepare.tree import DEFAULT_PACKAGE
from ..results import verdicts as vd
from ..results.folder import RUN_JSON
from . import triage
from .kcidb import kernel_of

WIDTH = 72
DETAIL_LINES = 25


def _meta(out: Path) -> dict:
    try:
        return json.loads((out / RUN_JSON).read_text()) if (out / RUN_JSON).is_file() else {}
    except ValueError as err:
        raise ForkdiffError(f"{out / 'run.json'} is not JSON: {err}",
                            "give the folder `make vm-test` wrote, unchanged") from None


def user_patches(meta: dict, kernels: dict, given: list[Path]) -> list[dict]:
    """PATCHES= of the run, in order: name, sha256, path ("" when unknown) and subject."""
    recorded = meta.get("patches")
    if isinstance(recorded, list) and recorded:
        pats = [{"name": p.get("name", ""), "sha256": p.get("sha256", ""), "path": p.get("path", ""),
                 "subject": p.get("subject", "")} for p in recorded if isinstance(p, dict)]
    else:  # older folders: the patched kernel's record (the tree + PATCHES)
        rec = next((r for (v, _), r in sorted(kernels.items()) if v == "patched"), None)
        pats = [{"name": p["name"], "sha256": p["sha256"], "path": "", "subject": ""}
                for p in (rec["patches"] if rec else [])]
    by_hash = {}
    for p in given:
        if not p.is_file():
            raise ForkdiffError(f"--patches {p}: no such file", "give the patch files the run applied")
        by_hash[sha256_file(p)] = p
    for p in pats:
        f = by_hash.get(p["sha256"])
        if f is not None:
            p["path"] = str(f.resolve())
            p["subject"] = p["subject"] or patch_subject(f)
        elif p["path"] and not p["subject"] and Path(p["path"]).is_file() \
                and sha256_file(Path(p["path"])) == p["sha256"]:
            p["subject"] = patch_subject(Path(p["path"]))
    return pats


def _tree_arg(meta: dict) -> str:
    """KERNEL_TREE= that gives the run's tree again ("" for the default tree)."""
    if meta.get("tree_spec"):
        return str(meta["tree_spec"])
    ident = str(meta.get("tree_identity", ""))
    if ident.startswith(f"debian:{DEFAULT_PACKAGE}:"):
        return ""
    return str(meta.get("tree", ""))  # the unpacked package or the user's tree, as a path


def _scenario_names(names: list[str]) -> list[str]:
    """The scenarios SCENARIOS= can name again (built-in names), else []."""
    folder = resources.data_dir("scenarios")
    return names if names and all((folder / f"{n}.yaml").is_file() for n in names) else []


def reproduce(meta: dict, patches: list[dict], bad: pd.DataFrame, focused: bool = True) -> str:
    """The `make vm-test` line that runs again what failed (focused: only the failing suites,
    kernels and scenarios; else the whole run)."""
    args: list[tuple[str, str]] = []
    if tree := _tree_arg(meta):
        args.append(("KERNEL_TREE", tree))
    run_suites = [s.strip() for s in str(meta.get("suites", "")).split(",") if s.strip()]
    suites = [s for s in triage.SUITE_ORDER if s in set(bad["suite"])] if focused else run_suites
    args.append(("SUITES", ",".join(suites or run_suites)))
    run_scen = [s.strip() for s in str(meta.get("scenarios", "")).split(",")
                if s.strip() and s.strip() != "default"]
    failing_scen = sorted(set(bad[bad["suite"] != "spawn"]["scenario"]), key=triage.natural)
    scen = (_scenario_names(failing_scen) if focused else []) or run_scen
    if scen and set(suites) - {"spawn"}:
        args.append(("SCENARIOS", ",".join(scen)))
    if "spawn" in suites:
        if meta.get("spawn_vmas"):
            args.append(("VMAS", str(meta["spawn_vmas"]).replace(" ", "")))
        if meta.get("spawn_duration_s"):
            args.append(("DURATION", f"{meta['spawn_duration_s']:g}"))
    if patches:
        args.append(("PATCHES", " ".join(p["path"] or f"<{p['name']}>" for p in patches)))
    run_variants = [v.strip() for v in str(meta.get("variants", "")).split(",") if v.strip()]
    variants = run_variants
    if focused and "both" not in set(bad["variant"]) and "spawn" not in suites:
        # a kernel-vs-simulator row needs its own kernel only (variant-vs-variant and
        # measured spawn rows need the run's kernels)
        variants = sorted({v for v in bad["variant"]}) or run_variants
    if variants:
        args.append(("VARIANTS", ",".join(variants)))
    if meta.get("model_arg"):  # MODEL= of the run (the kernel compared with another model)
        args.append(("MODEL", str(meta["model_arg"])))
    if str(meta.get("kmemleak", "")).startswith("on") and "faults" in suites:
        args.append(("KMEMLEAK", "1"))
    if meta.get("faults") and meta["faults"] != "slab" and "faults" in suites:
        args.append(("FAULTS", str(meta["faults"])))
    return "make vm-test " + " ".join(f"{k}={shlex.quote(v)}" for k, v in args)


def _wrap(text: str, indent: str = "  ") -> list[str]:
    import textwrap

    return textwrap.wrap(text, WIDTH, initial_indent=indent,
                         subsequent_indent=indent + ("  " if indent else ""),
                         break_long_words=False, break_on_hyphens=False) or [indent]


def _tested(out: Path, meta: dict, kernels: dict, patches: list[dict], df: pd.DataFrame) -> list[str]:
    ident = str(meta.get("tree_identity", "")) or next(
        (r["tree"]["identity"] for r in kernels.values()), "unknown")
    version = meta.get("kernel_version") or next((r["tree"]["version"] for r in kernels.values()), "")
    lines = [f"tree:      {ident} (Linux {version})"]
    if patches:
        for i, p in enumerate(patches):
            head = "patches:   " if i == 0 else "           "
            lines.append(f"{head}[{i + 1}/{len(patches)}] {p['name']} (sha256 {p['sha256'][:12]})")
            lines.append(f"             {p['subject'] or '(subject unknown: name the patch file with --patches)'}")
    else:
        lines.append("patches:   none (the tree as it is)")
    bad_kernels = {kernel_of(r) for r in vd.failing(df).to_dict(orient="records")}
    made_of = dict(part.split(": ", 1) for part in str(meta.get("made of", "")).split("; ")
                   if ": " in part)
    for i, ((v, prof), r) in enumerate(sorted(kernels.items())):
        head = "kernels:   " if i == 0 else "           "
        mark = "  <- FAIL" if (v, prof) in bad_kernels else ""
        what = made_of.get(v) or r.get("made_of", "")
        lines.append(f"{head}{r['release']}{' (' + what + ')' if what else ''}{mark}")
    if kernels:
        r = next(iter(kernels.values()))
        frags = " + ".join(["tinyconfig", *(f["name"].removesuffix(".config") for f in r["fragments"])])
        lines.append(f"config:    {frags}; {r['arch']}; {r['compiler']}")
    elif any(k.startswith("kernel ") for k in meta):
        lines += [f"kernel:    {v}" for k, v in meta.items()
                  if k.startswith("kernel ") and not k.endswith((" s", "slub_debug"))]
    opts = [f"scenarios {meta.get('scenarios') or 'default'}"]
    if str(meta.get("kmemleak", "")).startswith("on"):
        opts.append("kmemleak on")
    if meta.get("faults"):
        opts.append(f"fail-nth over {meta['faults']}")
    suites = meta.get("suites") or ", ".join(sorted(set(df["suite"]), key=triage.SUITE_ORDER.index))
    lines.append(f"suites:    {suites} ({'; '.join(opts)})")
    if meta.get("qemu version"):
        kvm = f", KVM {meta['kvm']}" if meta.get("kvm") else ""
        lines.append(f"guest:     {meta['qemu version']}{kvm}")
    if meta.get("models"):
        lines.append(f"models:    {meta['models']}")
    return lines


def body(out: Path, given_patches: list[Path] | None = None, force: bool = False) -> tuple[str, bool]:
    """(the mail body, whether the run failed). A PASS is a ForkdiffError unless force."""
    out = Path(out)
    df = vd.read_compared(out, "nothing to report on")
    bad = vd.failing(df)
    if bad.empty and not force:
        raise ForkdiffError(f"{out}: PASS ({len(df)} comparisons, none failing): nothing to report",
                            "a reply is for a FAIL; give --force for a PASS notice anyway")
    meta = _meta(out)
    kernels = read_kernel_records(out)
    patches = user_patches(meta, kernels, list(given_patches or []))
    lines = ["Hi,", ""]
    what = (f"with the patch{'es' if len(patches) > 1 else ''} below applied" if patches
            else "on the tree below")
    if bad.empty:
        lines += _para(f"forkdiff, a differential test of the kernel's fork() against a model of "
                       f"it, ran {what}: all {len(df)} comparisons passed. Nothing to report.")
    else:
        lines += _para(f"forkdiff, a differential test of the kernel's fork() against a model of "
                       f"it, found a divergence {what}: {len(bad)} of {len(df)} comparisons "
                       "failed.")
    lines += ["", "Tested:", *[f"  {x}" for x in _tested(out, meta, kernels, patches, df)], ""]
    if not bad.empty:
        first = triage.first_divergence(df)
        lines += ["First divergence:", *_wrap(triage.describe_first(first)), ""]
        groups = triage.groups(df)
        lines.append(f"Failing comparisons, grouped ({len(bad)} rows in {len(groups)} groups):")
        for g in groups:
            lines += _wrap(triage.describe(g))
        lines += ["", "Rules:"]
        for rule in dict.fromkeys(g["rule"] for g in groups):
            lines += _wrap(str(rule))
        detail = [x for x in str(first.get("detail", "")).splitlines() if x.strip()]
        if detail:
            lines += ["", "Detail of the first divergence:"]
            for x in detail[:DETAIL_LINES]:
                lines += _wrap(x) if len(x) > WIDTH and " " in x.strip() else [f"  {x}"]
            if len(detail) > DETAIL_LINES:
                lines.append(f"  [... {len(detail) - DETAIL_LINES} more lines in verdicts.jsonl]")
        focused, whole = reproduce(meta, patches, bad), reproduce(meta, patches, bad, focused=False)
        lines += ["", "To reproduce (forkdiff checkout, the kernels are built from the tree):",
                  f"  {focused}", ""]
        if whole != focused:
            lines += ["The whole run:", f"  {whole}", ""]
        if any(not p["path"] for p in patches):
            lines += _para("(<name> stands for the path of that patch file: this results folder "
                           "predates the record of PATCHES= paths)") + [""]
        lines += _para("If you fix the issue in a separate patch/commit (i.e. not just a new "
                       "version of the same patch/commit), kindly add following tags")
        lines += ["| Reported-by: <name <address>: fill in>",
                  "| Closes: <link to this report: fill in>", ""]
    lines += ["-- ", f"forkdiff results folder: {out.resolve()}"
              + (f" (run {meta['run']}, started {meta['started']})" if meta.get("started") else "")]
    return "\n".join(lines) + "\n", not bad.empty


def _para(text: str) -> list[str]:
    return _wrap(text, indent="")
