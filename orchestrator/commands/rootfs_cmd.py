"""`forkdiff rootfs build`: build (or reuse) the guest initramfs and print its path."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..prepare.rootfs import build_rootfs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rootfs", help="the guest initramfs (busybox + sshd + guest programs)")
    rsub = p.add_subparsers(dest="rootfs_command", metavar="ACTION", required=True)
    b = rsub.add_parser("build", help="build the initramfs if its inputs changed; print its path")
    b.add_argument("--guest-bin", type=Path, default=None,
                   help="folder of guest programs to bake in (default: guest/bin of this checkout)")
    b.add_argument("--force", action="store_true", help="rebuild even if the cached image is intact")
    b.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    rootfs = build_rootfs(guest_bin=args.guest_bin, force=args.force)
    print(rootfs.path)
    return 0
