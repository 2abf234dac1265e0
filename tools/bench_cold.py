"""`make bench-cold`: the cold path, measured the way a new user meets it. A fresh clone of this
checkout's HEAD in a temporary folder, an empty FORKDIFF_CACHE (and so an empty ccache: it lives
in the cache) and `make TARGET` there (COLD_TARGET=vm-test, the default, or test). Every output
line is time-stamped; the table of steps is printed in `make bench-vmtest`'s style:

    setup                  `make setup` (apt only where a Debian package is missing, pip)
    kernel <label>         from its first to its last progress line (tree fetch and unpack,
                           source copy, configure, compile)
    <stage> / <suite>      vm-test: the wall times its run.json records
    pytest <phase>         test: each pytest invocation of the Makefile
    whole command

The clone and the cache are removed afterwards unless KEEP=1. Debian packages cannot be
uninstalled for the measurement on a shared machine: the setup line says how many it installed.
Prints figures; asserts nothing. COLD_CACHE=<dir> puts the empty cache somewhere else (it needs
about 10 GB for vm-test)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_KERNEL = re.compile(r"^forkdiff kernel (\S+): ")
_PYTEST = re.compile(r"-m pytest .*-m \"([^\"]+)\"")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[int, list[tuple[float, str]]]:
    """Run cmd, echo and time-stamp every output line (seconds from the start)."""
    lines: list[tuple[float, str]] = []
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            t = time.monotonic() - t0
            lines.append((t, line.rstrip("\n")))
            fh.write(f"[{t:8.1f}] {line}")
            sys.stdout.write(line)
        rc = proc.wait()
    lines.append((time.monotonic() - t0, "<end>"))
    return rc, lines


def steps(lines: list[tuple[float, str]]) -> list[tuple[str, float]]:
    """(step, seconds) from time-stamped output: each kernel build's span (from its first
    progress line to its `done:` line; `make test` builds the same variant/profile label on
    several trees and patch sets, so a label seen again after its `done:` is a new build, shown
    as `#2`, `#3`...), and each pytest phase's span."""
    spans: list[list] = []  # [label, start, end]
    open_span: dict[str, list] = {}
    seen: dict[str, int] = {}
    for i, (t, line) in enumerate(lines):
        if m := _KERNEL.match(line):
            label = f"kernel {m.group(1)}"
            if label not in open_span:
                seen[label] = seen.get(label, 0) + 1
                name = label if seen[label] == 1 else f"{label} #{seen[label]}"
                open_span[label] = [name, t, t]
                spans.append(open_span[label])
            open_span[label][2] = t
            if " done: " in line:
                del open_span[label]
        elif m := _PYTEST.search(line):
            nxt = next((t2 for t2, l2 in lines[i + 1:]
                        if l2.startswith(("python3 ", "make", "<end>")) and "pytest" not in l2), lines[-1][0])
            spans.append([f"pytest -m \"{m.group(1)}\"", t, nxt])
    return [(name, end - start) for name, start, end in spans]


def main() -> int:
    target = os.environ.get("COLD_TARGET", "vm-test")
    work = Path(tempfile.mkdtemp(prefix="forkdiff-cold-"))
    cache = Path(os.environ.get("COLD_CACHE") or work / "cache")
    clone, out = work / "clone", work / "out"
    if cache.exists() and any(cache.iterdir()):
        print(f"bench-cold: {cache} is not empty; give COLD_CACHE an empty or new folder", file=sys.stderr)
        return 2
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "COLD_TARGET", "COLD_CACHE", "KEEP")}
    env.update(FORKDIFF_CACHE=str(cache), OUT=str(out))
    load = os.getloadavg()
    print(f"bench-cold: make {target} in {clone}, FORKDIFF_CACHE={cache} (empty), "
          f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
    t0 = time.monotonic()
    setup_rc, setup_lines = _run(["make", "setup"], clone, env, work / "setup.log")
    t_setup = time.monotonic() - t0
    rc, lines = _run(["make", target], clone, env, work / f"{target}.log")
    total = time.monotonic() - t0
    installed = next((ln for _, ln in setup_lines if ln.startswith("setup: installing Debian")), "")
    print(f"\nbench-cold: make {target}, exit status {rc} (setup {setup_rc})")
    print(f"  {'setup':<40} {t_setup:8.1f} s  ({installed or 'no Debian package missing'})")
    for label, secs in steps(lines):
        print(f"  {label:<40} {secs:8.1f} s")
    run_json = out / "run.json"
    if target == "vm-test" and run_json.is_file():
        meta = json.loads(run_json.read_text())
        for key, value in meta.items():
            if key.endswith("wall s") and not key.startswith("kernel "):
                print(f"  {key[:-7]:<40} {value:8.1f} s")
        verdicts = out / "verdicts.jsonl"
        if verdicts.is_file():
            counts = Counter(json.loads(ln).get("verdict") for ln in verdicts.read_text().splitlines() if ln)
            print(f"  verdicts: {sum(counts.values())} comparisons, {dict(counts)}")
    print(f"  {'whole command (setup included)':<40} {total:8.1f} s")
    load = os.getloadavg()
    print(f"  load at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; logs in {work}")
    if os.environ.get("KEEP") != "1":
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(clone, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
