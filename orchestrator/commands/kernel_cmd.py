"""`forkdiff kernel build`: build (or fetch from the cache) kernel variants; prints bzImage paths."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from simulator import runconfig

from ..cli_env import patches_knob, tree_knob
from ..errors import ForkdiffError
from ..prepare import kernel_bundle_cli, treefacts
from ..prepare.kernel import PROFILES, VARIANTS, build_kernel, detect_dup_mmap_model
from ..prepare.tree import resolve_tree
from ..prepare.variants import BUILD_ORDER


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kernel", help="build kernel variants (bzImage, cached)")
    ksub = p.add_subparsers(dest="kernel_command", metavar="ACTION", required=True)
    b = ksub.add_parser("build", help="build one variant/profile (or --all) and print bzImage paths")
    b.add_argument("--variant", choices=VARIANTS)
    b.add_argument("--profile", choices=tuple(PROFILES))
    b.add_argument("--all", action="store_true",
                   help="both variants of the faults profile (what make vm-test boots)")
    b.add_argument("--tree", help="kernel source tree: a path or debian:SUITE:PACKAGE (default: $KERNEL_TREE, else linux-source-6.12)")
    b.add_argument("--patch", action="append", default=[], type=Path,
                   help="extra patch for the patched variant (repeatable; default: $PATCHES)")
    b.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    b.set_defaults(func=_build)
    m = ksub.add_parser("model", help="say whether a tree's dup_mmap() is 'patched' or 'baseline'")
    m.add_argument("--tree", help="kernel source tree: a path or debian:SUITE:PACKAGE (default: $KERNEL_TREE, else linux-source-6.12)")
    m.set_defaults(func=_model)
    kernel_bundle_cli.register(ksub)
    f = ksub.add_parser("facts", help="what a tree's source says (kernel_facts, JSON) and whether "
                                      "the simulator models it")
    f.add_argument("--tree", help="kernel source tree: a path or debian:SUITE:PACKAGE (default: "
                                  "$KERNEL_TREE, else linux-source-6.12)")
    f.set_defaults(func=_facts)
    pr = ksub.add_parser("profile", help="where fork's instructions go: the instruction-count "
                                         "plugin's per-function profile of a kernel (cached) and "
                                         "the instruction model fitted on it, with its LOLO errors")
    pr.add_argument("--variant", choices=VARIANTS, required=True)
    pr.add_argument("--profile", choices=tuple(PROFILES), default="faults",
                    help="the kernel profile (default faults, the kernels spawn times; perf with PERF_KERNELS=1)")
    pr.add_argument("--tree", help="kernel source tree (default: $KERNEL_TREE, else linux-source-6.12)")
    pr.add_argument("--patch", action="append", default=[], type=Path,
                    help="extra patch for the patched variant (repeatable; default: $PATCHES)")
    pr.add_argument("--model", help="the simulator model of its dup_mmap() (default: detected)")
    pr.add_argument("--json", type=Path, help="also write the profile and model here")
    pr.set_defaults(func=_profile)


def _build(args: argparse.Namespace) -> int:
    if args.all:
        if args.variant or args.profile:
            raise ForkdiffError("--all cannot be combined with --variant/--profile",
                                "give --all alone, or one --variant and --profile")
        pairs = [(v, "faults") for v in sorted(VARIANTS, key=BUILD_ORDER.index)]
    else:
        if not args.variant or not args.profile:
            raise ForkdiffError("kernel build needs --variant and --profile (or --all)",
                                f"e.g. forkdiff kernel build --variant {VARIANTS[0]} --profile faults")
        pairs = [(args.variant, args.profile)]
    for variant, profile in pairs:
        built = build_kernel(variant, profile, tree=tree_knob(args.tree), patches=patches_knob(args.patch),
                             progress=not args.quiet)
        print(built.bzimage, flush=True)
    return 0


def _facts(args: argparse.Namespace) -> int:
    facts = treefacts.detect(resolve_tree(tree_knob(args.tree)).path)
    print(json.dumps(facts))
    print(runconfig.tree_notice(facts) or f"the simulator models this tree ({facts['version']})")
    return 0


def _model(args: argparse.Namespace) -> int:
    print(detect_dup_mmap_model(resolve_tree(tree_knob(args.tree)).path))
    return 0


def _profile(args: argparse.Namespace) -> int:
    import sys

    from ..analysis.insn_calibration import function_table, lolo_table, model_of
    from ..run.insnprofile import cached_profile

    kernel = build_kernel(args.variant, args.profile, tree=tree_knob(args.tree),
                          patches=patches_knob(args.patch))
    prof = cached_profile(kernel, log=lambda m: print(m, file=sys.stderr, flush=True))
    model = args.model or kernel.manifest.get("dup_mmap_model") or args.variant
    m = model_of(prof, model)
    w = prof["wall"]
    print(f"{kernel.release} ({model} model): profile {prof['key']}, {len(prof['points'])} layouts; "
          f"plugin run wall {w['total_s']:.1f} s (boot {w['boot_s']:.1f} s, jobs {w['jobs_s']:.1f} s)")
    print("\n".join(lolo_table(m)))
    print(f"largest |LOLO error|: {m.band_pct:.2f}% (instructions per fork)")
    for p in m.points:
        if p["layout"] == "spawn" and p["vmas"] in (21, 1621, 51221):
            print(f"\nseed layout, {p['vmas']} VMAs: instructions per fork per function")
            print("\n".join(function_table(p)))
    if args.json:
        args.json.write_text(json.dumps({"profile": prof, "model": m.to_dict()}, indent=1) + "\n")
    return 0
