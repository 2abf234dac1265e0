"""`make bench`: run every benchmark section in turn; each prints its own figures."""

from __future__ import annotations

import importlib
import sys

# (title, module with a main() -> int). tools.bench_predict is run by the Makefile itself.
SECTIONS = [
    ("maple tree (simulator.maple)", "tools.bench_maple"),
    ("spawn calibration (orchestrator.run.calibration)", "tools.bench_calibration"),
    ("instruction model: LOLO per layout, plugin cost (orchestrator.run.insnprofile; profiles "
     "the perf kernels once if the cache lacks them)", "tools.bench_insn"),
    ("boot to SSH ready (orchestrator.vm.guest; builds the patched faults kernel if missing)",
     "tools.bench_boot"),
]


def main(argv: list[str] | None = None) -> int:
    wanted = set(argv if argv is not None else sys.argv[1:])
    rc = 0
    for title, modname in SECTIONS:
        if wanted and not any(w in modname for w in wanted):
            continue
        print(f"== {title}")
        try:
            mod = importlib.import_module(modname)
        except ImportError as err:
            print(f"  skipped: {err}")
            continue
        rc |= int(mod.main() or 0)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
