"""A results folder's report.html as a PNG of its first screen, rendered by headless Chromium
(Debian package `chromium`, installed by `make screenshot` only).

    python3 -m tools.screenshot RESULTS_DIR [PNG] [--width 1280] [--height 1000]

PNG defaults to RESULTS_DIR/report.png. Chromium runs with a profile, HOME and caches in a
temporary folder (removed after), so nothing outside the results folder and PNG is written;
--no-sandbox because it usually runs as root in CI containers. The report must exist
(forkdiff report RESULTS_DIR renders it)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from orchestrator.errors import ForkdiffError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 180


def browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    raise ForkdiffError("no headless Chromium found (chromium, chromium-browser, google-chrome)",
                        "run 'make screenshot OUT=...' (it installs Debian's chromium), or "
                        "apt-get install chromium")


def screenshot(results: Path, png: Path, width: int = 1280, height: int = 1000) -> Path:
    report = Path(results) / "report.html"
    if not report.is_file():
        raise ForkdiffError(f"no report in {results} (report.html missing)",
                            f"run 'forkdiff report {results}' first")
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="forkdiff-chromium-") as tmp:
        env = {**os.environ, "HOME": tmp, "XDG_CONFIG_HOME": f"{tmp}/config",
               "XDG_CACHE_HOME": f"{tmp}/cache"}
        cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", "--disable-extensions", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp}/profile", f"--window-size={width},{height}",
               f"--screenshot={png}", report.resolve().as_uri()]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            raise ForkdiffError(f"Chromium did not finish the screenshot in {TIMEOUT_S} s",
                                "retry when the machine is less loaded") from None
    if r.returncode != 0 or not png.is_file() or png.stat().st_size == 0:
        tail = " / ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
        raise ForkdiffError(f"Chromium failed (status {r.returncode}): {tail[:400]}",
                            "run the command by hand to see its full output: " + " ".join(cmd))
    return png


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools.screenshot", description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="results folder holding report.html")
    p.add_argument("png", nargs="?", help="PNG to write (default: RESULTS/report.png)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=1000)
    args = p.parse_args(argv)
    try:
        out = screenshot(Path(args.results), Path(args.png or Path(args.results) / "report.png"),
                         args.width, args.height)
    except ForkdiffError as err:
        print(err.one_line(), file=sys.stderr)
        return err.exit_code
    print(f"screenshot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
