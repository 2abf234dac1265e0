"""The plan stage: everything a run decides before it builds anything, resolved once.

The command (orchestrator/commands/vmtest.py) reads the knobs, KERNEL_TREE= and PATCHES=
included; make_plan() resolves the tree (its identity computed once), reads its facts, decides
the kernel variants (orchestrator/prepare/variants.py; the baseline patch's dry run happens at
most once) and lists the kernels to build. The build, execute and finish stages are given the
RunPlan and never resolve the tree or read the environment again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simulator import runconfig

from ..errors import ForkdiffError
from ..prepare import variants as variants_mod
from ..prepare.source import TreeSource, resolve_source
from ..prepare.tree import KernelTree


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
                   kernels=tuple((v, p) for p in profiles for v in variants), notice=notice)
