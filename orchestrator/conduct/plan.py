"""The plan stage: everything a run decides before it builds anything, resolved once.

The command (orchestrator/commands/vmtest.py) reads the knobs, KERNEL_TREE= and PATCHES=
included; make_plan() resolves the tree (its identity computed once), reads its facts, decides
the kernel variants (orchestrator/prepare/variants.py; the baseline patch's dry run happens at
most once) and lists the kernels to build. The build, execute and finish stages are given the
RunPlan and never resolve the tree or read the environment again."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simulator import runconfig

from ..errors import ForkdiffError
from ..prepare import variants as variants_mod
from ..prepare.patches import patch_identity, patch_subject
from ..prepare.source import TreeSource, resolve_source
from ..prepare.tree import KernelTree
from ..results.meta import RunMeta


@dataclass(frozen=True, eq=False)
class RunPlan:
    source: TreeSource  # the tree, resolved once, and its facts
    tree_spec: str  # the tree as the user named it ("" for the default), for run.json / reply
    patches: tuple[Path, ...]  # the extra patches (PATCHES=), expanded by the command
    variant_plan: variants_mod.VariantPlan  # the kernels the tree gives
    variants: tuple[str, ...]  # the kernels this run runs (VARIANTS= applied), in run order
    models: dict[str, str]  # kernel -> simulator model, as far as the tree says (MODEL= applied)
    kernels: tuple[tuple[str, str], ...]  # (variant, profile) to build, in build order
    notice: str  # why the simulator does not model the tree ("" when it does)

    @property
    def tree(self) -> KernelTree:
        return self.source.tree

    @property
    def facts(self) -> dict:
        return self.source.facts


def build_order(variants: tuple[str, ...], made_of: dict[str, str]) -> list[str]:
    """A profile's kernels are built one after the other, the tree as it is first: the others
    start from its objects (orchestrator/prepare/kernel.py _Build.seed: a baseline recompiles
    kernel/fork.c and links, instead of compiling everything from ccache)."""
    return sorted(variants, key=lambda v: made_of.get(v) != variants_mod.TREE)


def make_plan(tree, patches: tuple[Path, ...], profiles: list[str], only: tuple[str, ...],
              models: dict[str, str], say: Callable[[str, str], None]) -> RunPlan:
    """Resolve the tree and decide the run's kernels; say the decisions (stage, line) on the way.
    tree: a path, debian:SUITE:PACKAGE spec, KernelTree or TreeSource (None: Debian's 6.12);
    profiles: the kernel profiles the suites boot; only: VARIANTS= (empty: every kernel)."""
    source = resolve_source(tree)
    facts = source.facts
    notice = runconfig.tree_notice(facts) or ""
    say("model", notice or f"the simulator models this tree ({facts['version']}): "
                           "kernel-vs-simulator and kernel-only checks")
    for part in runconfig.partial_model(facts):
        say("model", f"partly: {part}")
    vplan = variants_mod.plan(source.model, lambda: source.baseline_cause, tuple(patches))
    for stage, line in vplan.notes:
        say(stage, line)
    variants = list(vplan.variants)
    if only:
        missing = [v for v in only if v not in variants]
        if missing:
            raise ForkdiffError(f"VARIANTS asks for {', '.join(missing)}, which this tree does not give",
                                f"use VARIANTS= with: {', '.join(variants)}")
        variants = [v for v in variants if v in only]
    spec = str(getattr(tree, "path", tree) or "")
    return RunPlan(source=source, tree_spec=spec, patches=tuple(patches), variant_plan=vplan,
                   variants=tuple(variants), models={**vplan.models, **models},
                   kernels=tuple((v, p) for p in profiles for v in build_order(variants, vplan.made_of)),
                   notice=notice)


def describe(rp: RunPlan, opts, started: str) -> RunMeta:
    """run.json's description of the run, before anything is built (orchestrator.results.meta)."""
    vplan, variants, models = rp.variant_plan, rp.variants, rp.models
    ab = {v: r for v, r in vplan.reference_of.items() if {v, r} <= set(variants)}
    return RunMeta(
        run=opts.out.name, started=started, tree=str(rp.tree.path), tree_identity=rp.tree.identity,
        kernel_version=rp.tree.version, simulator=rp.notice or "models this tree",
        kernel_facts=json.dumps(rp.facts), variants=", ".join(variants),
        made_of="; ".join(f"{v}: {vplan.made_of[v]}" for v in variants),
        reference_kernel=("baseline = the tree as it is (its dup_mmap() already uses __mt_dup and "
                          "patches/baseline/ does not apply), compared with the patched model")
        if vplan.reference and "baseline" in variants else None,
        measured_ab="; ".join(f"{v} (the tree + PATCHES) against {r} (the tree as it is), "
                              "measured at the same counts" for v, r in ab.items()) if ab else None,
        models=", ".join(f"{v} kernel vs {models.get(v, v)} model" for v in variants),
        suites=", ".join(opts.suites), scenarios=", ".join(opts.scenarios) or "default",
        spawn_vmas=", ".join(map(str, opts.vmas)), spawn_duration_s=opts.duration,
        spawn_repeats=opts.repeats or "1 (-icount), 5 (real time)",
        kmemleak="on (faults suite)" if opts.kmemleak else "off", faults=",".join(opts.faults),
        observers=(f"{','.join(opts.observers)} (seed {opts.observer_seed}; faults suite)"
                   if opts.observers else "none"),
        # what `forkdiff reply` names and its one-command reproduction gives back: a tree given
        # as a path or debian: spec; a resolved one (forkdiff series, bisect-run) by its folder
        tree_spec=rp.tree_spec,
        model_arg=",".join(f"{k}={v}" for k, v in sorted(opts.models.items())),
        patches=[{**p, "subject": patch_subject(Path(p["path"]))} for p in patch_identity(rp.patches)])
