"""`forkdiff boot --variant V --profile P [--icount] -- CMD ARGS...`: boot a kernel variant in
QEMU, run one command over SSH, print its output, exit with its status, shut down.
`--shell` opens an interactive OpenSSH session instead."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from ..cli_env import patches_knob, tree_knob
from ..errors import ForkdiffError
from ..prepare.kernel import PROFILES, VARIANTS, BuiltKernel, build_kernel
from ..prepare.rootfs import KNOWN_HOSTS_ALIAS, Rootfs, build_rootfs
from ..vm.guest import Guest, GuestCrashed, GuestHung, GuestLost
from ..vm.ssh import HOST, USER


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("boot", help="boot a kernel variant in QEMU and run a command in it over SSH")
    p.add_argument("--variant", choices=VARIANTS, required=True)
    p.add_argument("--profile", choices=tuple(PROFILES), required=True)
    p.add_argument("--tree", help="kernel source tree: a path or debian:SUITE:PACKAGE (default: $KERNEL_TREE, else linux-source-6.12)")
    p.add_argument("--icount", action="store_true",
                   help="deterministic virtual time: -icount shift=0,sleep=off (TCG)")
    p.add_argument("--memory", type=int, default=1024, metavar="MB", help="guest RAM (default 1024)")
    p.add_argument("--smp", type=int, default=1, help="guest CPUs (default 1)")
    p.add_argument("--append", default="", help="extra kernel command line (e.g. kmemleak=on)")
    p.add_argument("--timeout", type=float, default=600, help="command timeout in seconds")
    p.add_argument("--boot-timeout", type=float, default=180, help="boot timeout in seconds")
    p.add_argument("--put", action="append", default=[], metavar="LOCAL:REMOTE",
                   help="copy a host file into the guest first (mode 0755); repeatable")
    p.add_argument("--shell", action="store_true", help="interactive shell (OpenSSH client)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and arguments to run")
    p.set_defaults(func=_boot)


def _boot(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd and not args.shell:
        raise ForkdiffError("boot needs a command after '--' (or --shell)",
                            "e.g. forkdiff boot --variant patched --profile faults -- uname -r")
    puts = []
    for spec in args.put:
        local, sep, remote = spec.partition(":")
        if not sep or not remote:
            raise ForkdiffError(f"--put {spec!r} is not LOCAL:REMOTE", "e.g. --put ./a.out:/tmp/a.out")
        puts.append((Path(local), remote))
    kernel = build_kernel(args.variant, args.profile, tree=tree_knob(args.tree), patches=patches_knob())
    rootfs = build_rootfs()
    try:
        return _session(args, kernel, rootfs, puts, cmd)
    except GuestCrashed as exc:
        print(exc.excerpt, file=sys.stderr)
        raise
    except (GuestHung, GuestLost) as exc:
        if exc.console_tail:
            print(exc.console_tail, file=sys.stderr)
        raise


def _session(args: argparse.Namespace, kernel: BuiltKernel, rootfs: Rootfs,
             puts: list[tuple[Path, str]], cmd: list[str]) -> int:
    with Guest(kernel, rootfs, icount=args.icount, memory_mb=args.memory, smp=args.smp,
               boot_timeout=args.boot_timeout, extra_append=args.append) as g:
        print(f"forkdiff: booted {kernel.release} in {g.boot_seconds:.1f} s ({g.qemu_mode}); "
              f"console: {g.console_log}", file=sys.stderr, flush=True)
        for local, remote in puts:
            g.put(local, remote, mode=0o755)
        if args.shell:
            return _shell(g, rootfs.client_key, rootfs.known_hosts, cmd)
        result = g.run(shlex.join(cmd), timeout=args.timeout)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        sys.stdout.flush()
        return result.status


def _shell(g: Guest, key: Path, known_hosts: Path, cmd: list[str]) -> int:
    argv = ["ssh", "-t", "-p", str(g.ssh_port), "-i", str(key), "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", f"HostKeyAlias={KNOWN_HOSTS_ALIAS}", "-o", "StrictHostKeyChecking=yes",
            "-o", "PasswordAuthentication=no", f"{USER}@{HOST}"] + cmd
    rc = subprocess.call(argv)
    g.check()
    return rc
