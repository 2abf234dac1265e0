"""Exit 0 when every Python dependency imports and `orchestrator` is this checkout's (editable
install pointing here); exit 1 otherwise, saying why on stderr, so `make setup` knows whether to
run pip."""

import importlib
import sys
from pathlib import Path

MODULES = ["paramiko", "qemu.qmp", "jinja2", "pandas", "yaml", "scipy", "matplotlib",
           "kcidb_io", "pytest", "xdist", "hypothesis", "ruff", "distributed"]


def main() -> int:
    here = Path(sys.argv[1]).resolve()
    for name in MODULES:
        try:
            importlib.import_module(name)
        except ImportError as err:
            return _missing(f"{name} does not import ({err})")
    sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path.cwd().resolve()]
    for pkg in ("orchestrator", "simulator"):
        sys.modules.pop(pkg, None)
        try:
            mod = importlib.import_module(pkg)
        except ImportError as err:
            return _missing(f"{pkg} does not import ({err})")
        if Path(mod.__file__).resolve().parent != here / pkg:
            return _missing(f"{pkg} is {Path(mod.__file__).parent}, not this checkout's")
    return 0


def _missing(why: str) -> int:
    print(f"setup: {why}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
