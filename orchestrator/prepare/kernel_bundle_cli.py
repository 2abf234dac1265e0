"""`forkdiff kernel export FILE` / `forkdiff kernel import FILE` (orchestrator.prepare.kernel_bundle);
registered under `forkdiff kernel` by commands/kernel_cmd.py (kept out of commands/, whose modules are top-level commands)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_env import patches_knob, tree_knob
from .kernel import PROFILES, VARIANTS, build_kernel
from .kernel_bundle import export, import_bundle


def register(ksub) -> None:
    e = ksub.add_parser("export", help="pack built kernels (both variants x both profiles, built "
                                       "first if needed) into a tar.gz for other machines")
    e.add_argument("file", type=Path, help="bundle to write (.tar.gz)")
    e.add_argument("--variant", choices=VARIANTS, action="append", help="only these (repeatable)")
    e.add_argument("--profile", choices=tuple(PROFILES), action="append", help="only these (repeatable)")
    e.add_argument("--tree", help="kernel source tree (default: $KERNEL_TREE, else linux-source-6.12)")
    e.add_argument("--patch", action="append", default=[], type=Path,
                   help="extra patch for the patched variant (repeatable; default: $PATCHES)")
    e.set_defaults(func=_export)
    i = ksub.add_parser("import", help="unpack a bundle from 'forkdiff kernel export' into the cache")
    i.add_argument("file", type=Path)
    i.set_defaults(func=_import)


def _export(args: argparse.Namespace) -> int:
    kernels = [build_kernel(v, p, tree=tree_knob(args.tree), patches=patches_knob(args.patch), progress=True)
               for p in (args.profile or PROFILES) for v in (args.variant or VARIANTS)]
    keys = export(kernels, args.file)
    print(f"{args.file}: {len(keys)} kernels ({', '.join(k.release for k in kernels)}), "
          f"{args.file.stat().st_size} bytes")
    return 0


def _import(args: argparse.Namespace) -> int:
    for key, what in import_bundle(args.file):
        print(f"kernel {key}: {what}")
    return 0
