"""Benchmark: the instruction model (simulator.insn_cost) of each perf kernel of the default
tree, fitted on its instruction profile (the QEMU plugin over the fixed plan, cached per
kernel: orchestrator.run.insnprofile; measured here if the cache lacks it): the
leave-one-layout-out error per layout, the seed's spawn layout included, the plugin run's
wall time (boot + jobs, as measured when the profile was made), and where a fork's
instructions go at a few seed counts. With BENCH_INSN_OVERHEAD=1 it also times one spawn job
(the seed layout at 6,421 VMAs) in a guest with and one without the plugin.
Prints figures; asserts nothing. Run: python -m tools.bench_insn [baseline|patched ...]"""

from __future__ import annotations

import os
import sys
import time

from orchestrator.analysis.insn_calibration import function_table, lolo_table, model_of
from orchestrator.prepare.kernel import build_kernel
from orchestrator.run.insnprofile import cached_profile


def overhead(kernel) -> None:
    from orchestrator.cache import cache_path
    from orchestrator.prepare.qemuplugin import build_plugin
    from orchestrator.prepare.rootfs import build_rootfs
    from orchestrator.run.insnprofile import profile_jobs, system_map
    from orchestrator.vm.guest import Guest

    job = profile_jobs(duration=1.0, vmas=(6421,), layouts=())[0]
    plugin = build_plugin()
    walls = {}
    for label, extra in (("without", ()), ("with", ("-plugin", f"{plugin},map={system_map(kernel)},"
                                                    f"out={cache_path('insn-profile')}/bench.txt"))):
        with Guest(kernel, build_rootfs(), icount=True, extra_args=extra) as g:
            t = time.monotonic()
            g.run(job.command, timeout=600)
            walls[label] = time.monotonic() - t
    print(f"  one spawn job (6,421 VMAs, 1 guest s): {walls['without']:.1f} s wall without the "
          f"plugin, {walls['with']:.1f} s with it ({walls['with'] / walls['without']:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    variants = [a for a in (argv if argv is not None else sys.argv[1:])] or ["baseline", "patched"]
    for variant in variants:
        kernel = build_kernel(variant, os.environ.get("PROFILE") or "faults")
        prof = cached_profile(kernel, log=lambda m: print("  " + m, flush=True))
        model = kernel.manifest.get("dup_mmap_model") or variant
        t0 = time.perf_counter()
        m = model_of(prof, model)
        fit_s = time.perf_counter() - t0
        w = prof["wall"]
        print(f"{variant}: {kernel.release} ({model} model), profile {prof['key']}: "
              f"{len(prof['points'])} layouts; plugin run {w['total_s']:.1f} s wall "
              f"(boot {w['boot_s']:.1f} s, jobs {w['jobs_s']:.1f} s); simulate + fit + LOLO "
              f"{fit_s:.1f} s")
        print("\n".join("  " + line for line in lolo_table(m)))
        within = sum(1 for p in m.points if p["lolo_error_pct"] is not None
                     and abs(p["lolo_error_pct"]) <= 2.0)
        print(f"  largest |LOLO error|: {m.band_pct:.2f}%; {within} of {len(m.points)} points "
              f"within the issue's 2%")
        for p in m.points:
            if p["layout"] == "spawn" and p["vmas"] in (421, 51221):
                print(f"  seed layout, {p['vmas']} VMAs, instructions per fork (plugin / model):")
                print("\n".join("    " + line for line in function_table(p)))
        if os.environ.get("BENCH_INSN_OVERHEAD") == "1":
            overhead(kernel)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
