"""`make bench-vmtest`: run `forkdiff vm-test` (with the knobs in the environment) into a fresh
folder, or read an existing run with OUT=, and print the wall time of every stage and suite
from its run.json, so that the next change to the pipeline can be compared. Prints figures;
asserts nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    out = os.environ.get("OUT")
    total = None
    if not out:
        out = tempfile.mkdtemp(prefix="forkdiff-bench-vmtest-")
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", "orchestrator", "vm-test", "--out", out])
        total = time.monotonic() - t0
        print(f"vm-test exit status {rc}")
    meta = json.loads((Path(out) / "run.json").read_text())
    print(f"run {out}: {meta.get('suites')} on {meta.get('variants')}, "
          f"{meta.get('parallel guests')} guest(s) at a time, kvm {meta.get('kvm')}")
    for key, value in meta.items():
        if key.endswith("wall s"):
            print(f"  {key[:-7]:<40} {value:8.1f} s")
    if total is not None:
        print(f"  {'whole command':<40} {total:8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
