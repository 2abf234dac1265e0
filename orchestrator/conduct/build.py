"""The build stage: the plan's kernels (orchestrator/prepare/kernel.py, each from the plan's
resolved tree), the rootfs, and the KVM probe; what each took goes into run.json."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..prepare.kernel import build_kernel
from ..prepare.rootfs import build_rootfs
from ..results import provenance
from ..results.meta import RunMeta
from ..run.suites import boot_slub_debug, profile_of
from ..vm import kvm
from .options import Progress, VmTestOptions
from .plan import RunPlan


@dataclass
class Built:
    kernels: dict[tuple[str, str], object]  # (variant, profile) -> BuiltKernel
    models: dict[str, str]  # kernel -> the simulator model it is compared with
    kvm_ok: bool  # KVM is usable for the suites that need exactness only


def side_by_side(kernels: Sequence[tuple[str, str]], build_one: Callable[[str, str], object]
                 ) -> dict[tuple[str, str], object]:
    """build_one(variant, profile) for every kernel. Each profile's variants are built in order,
    one after the other (the plan puts the tree as it is first: the next starts from its
    objects, orchestrator/prepare/seed.py); different profiles share no objects
    (docs/cache.md), so two profiles are built side by side: on two cores that keeps a core
    busy while the other profile's build is in a single-threaded step (configure, the vmlinux
    link, kallsyms, compression). The first failure is raised once both have stopped."""
    by_profile: dict[str, list[str]] = {}
    for v, profile in kernels:
        by_profile.setdefault(profile, []).append(v)
    built: dict[tuple[str, str], object] = {}

    def one_profile(profile: str) -> None:
        for v in by_profile[profile]:
            built[(v, profile)] = build_one(v, profile)

    with ThreadPoolExecutor(max_workers=max(1, min(2, len(by_profile)))) as pool:
        for future in [pool.submit(one_profile, p) for p in by_profile]:
            future.result()
    return built


def build(rp: RunPlan, opts: VmTestOptions, meta: RunMeta, say: Progress) -> Built:
    models = dict(rp.models)
    for v, profile in rp.kernels:
        meta.kernel(v, profile)  # run.json lists the kernels in plan order

    def one(v: str, profile: str) -> object:
        say("kernel", f"{v}/{profile}")
        t0 = time.monotonic()
        k = build_kernel(v, profile, tree=rp.source, patches=rp.patches)
        km = meta.kernel(v, profile)
        km.release = k.release
        km.wall_s = round(time.monotonic() - t0, 1)
        # what its guests boot with (the records' slab_debug says what each guest got)
        words = {s: boot_slub_debug(s, k, "slab" in opts.faults)
                 for s in opts.suites if profile_of(s, opts.observers, opts.perf_kernels, opts.debug_vm) == profile}
        km.slub_debug = "; ".join(f"{s}: {w}" for s, w in words.items() if w) or "none"
        return k

    built = side_by_side(rp.kernels, one)
    for v, profile in rp.kernels:  # in plan order, whichever finished first
        if v not in models:  # a pre-series tree + PATCHES: the model its built source shows
            models[v] = built[(v, profile)].manifest.get("dup_mmap_model", v)  # type: ignore[attr-defined]
    meta.models = ", ".join(f"{v} kernel vs {models.get(v, v)} model" for v in rp.variants)
    t0 = time.monotonic()
    build_rootfs()
    meta.rootfs_wall_s = round(time.monotonic() - t0, 1)
    # KVM for the suites that need exactness only, when it works here (suites.resolve_icount);
    # probed once, with the kernel the first of them boots
    first = next((s for s in opts.suites if s != "spawn"), None)
    needs_probe = first is not None or opts.spawn_timing == "realtime"
    kvm_ok = needs_probe and kvm.probe(
        Path(built[(rp.variants[0], profile_of(first or "spawn", opts.observers, opts.perf_kernels,
                                                      opts.debug_vm))].bzimage)).usable
    meta.kvm = "usable" if kvm_ok else "not usable (TCG)" if needs_probe else "not probed"
    provenance.record(opts.out, meta)
    meta.model_map = models
    return Built(built, models, kvm_ok)
