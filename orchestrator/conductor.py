"""`forkdiff vm-test` end to end, in four stages (docs/architecture.md):

    plan     orchestrator/conduct/plan.py     the tree resolved once, its facts, the kernels
                                              (orchestrator/prepare/variants.py), run.json's description
    build    orchestrator/conduct/build.py    the kernels, the rootfs, the KVM probe (orchestrator/prepare/)
    execute  orchestrator/conduct/execute.py  the jobs on guests: threads, a shard or Dask (orchestrator/run/)
    finish   orchestrator/conduct/finish.py   compare, history, report (orchestrator/analysis/)

Every stage reads and writes the results folder through orchestrator/results/ (run.json is
orchestrator.results.meta.RunMeta). Progress goes to stderr.

Which kernels: on a tree whose dup_mmap() copies with __mt_dup (6.8 on), `patched` is the tree
as it is (plus PATCHES=) and `baseline` the tree plus patches/baseline/. Where that patch does not
apply (7.x), `baseline` is the tree as it is when PATCHES= are given: the reference kernel the
patched one is measured and predicted from, compared with the tree's own model ("patched");
without PATCHES= the run says so and goes on with `patched` alone. On a tree from before the
series (6.1) `baseline` is the tree as it is, plus `patched` (the tree + PATCHES) only when
patches are given. Which model each kernel is compared with follows the plan's model map, not
the variant's name: the model its dup_mmap() source shows (a patched kernel made from a
pre-series tree: its built source's), unless MODEL= says otherwise. run.json records the map
("model map") and what each kernel is built from ("made of").

Before anything is built the run says whether the simulator models the tree
(simulator/runconfig.py tree_notice); on a tree it does not model the model's verdicts are
`skipped` and the kernel-only checks run (orchestrator/analysis/kernel_only.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from .conduct.build import build
from .conduct.execute import Execution, Executor, ShardExecutor, ThreadExecutor
from .conduct.finish import finish
from .conduct.options import Progress, VmTestOptions
from .conduct.plan import describe, make_plan
from .results import provenance
from .results.observations import ObservationLog
from .run.suites import load_scenarios, profile_of

__all__ = ["VmTestOptions", "run"]


def run(opts: VmTestOptions) -> int:
    say = Progress()
    ObservationLog(opts.out)  # fails now, before any build, when the folder cannot be written
    started = datetime.now(UTC).isoformat(timespec="seconds")

    # plan: the tree resolved once; every stage below gets it (and the patches) from the plan
    profiles = sorted({profile_of(s, opts.observers, opts.perf_kernels, opts.debug_vm) for s in opts.suites})
    rp = make_plan(opts.tree, tuple(opts.patches), profiles, opts.variants, opts.models, say)
    variants = list(rp.variants)
    # spawn's work model is fitted on one kernel: the baseline when the run has one, else its
    # only kernel (orchestrator.analysis.spawn_model)
    opts = replace(opts, tree=rp.source, patches=rp.patches,
                   spawn_fit_on="baseline" if "baseline" in variants else variants[0])
    scenarios = load_scenarios(opts.scenarios) if opts.scenarios else None
    meta = describe(rp, opts, started)
    if opts.against is not None:  # before anything is built: a folder we cannot compare is refused
        from .analysis.against import check_early

        provenance.record(opts.out, meta)
        check_early(opts.against, meta.to_dict())
        meta.against = str(opts.against)
    say("setup", f"tree {rp.tree.path} ({rp.tree.identity}); variants {', '.join(variants)}; "
                 f"tree's dup_mmap model: {rp.source.model}")

    built = build(rp, opts, meta, say)

    ex = Execution(opts, variants, scenarios, say, built.kvm_ok, meta)
    ex.save()
    errors = executor_for(opts).execute(ex)
    ex.save()

    return finish(opts, built.models, meta, say, errors)


def executor_for(opts: VmTestOptions) -> Executor:
    if opts.executor:
        from .conduct.dask_executor import DaskExecutor  # Dask is an optional dependency

        inner: Executor = DaskExecutor()
    else:
        inner = ThreadExecutor()
    return ShardExecutor(opts.shard, inner) if opts.shard else inner
