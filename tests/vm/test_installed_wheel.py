"""forkdiff installed from its wheel, outside any checkout: an sdist is built from a copy of
the repository's files (PyPA build, in a venv of its own), the wheel from the sdist (`pip wheel
--no-deps`), and the wheel installed into a fresh venv (dependencies from the package index),
then run from a folder outside the checkout with the shared cache (FORKDIFF_CACHE), so the
cached kernels are reused. For real: pip, the venv, the console
script, the guest programs built into the cache from the wheel's sources, QEMU, sshd.

Checks: the installed packages and data come from the venv, not the checkout; `forkdiff setup
--print` prints the Makefile's package list (one list for both); `forkdiff vm-test SUITES=maps`
passes with maps rows for both kernels, guest programs built in cache/guest/<key>/bin."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from orchestrator.cache import cache_dir

REPO = Path(__file__).resolve().parents[2]
_ANYWHERE = shutil.ignore_patterns("*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
                                   ".hypothesis")
# only at these places: orchestrator/prepare/ is a package, the top-level build/ is setuptools'
_AT = {REPO: {".git", "build", "results", "tests"}, REPO / "guest": {"bin"}}


def SKIP(folder: str, names: list[str]) -> set[str]:
    return set(_ANYWHERE(folder, names)) | (_AT.get(Path(folder), set()) & set(names))


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv with forkdiff installed from a wheel built from this checkout's files."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=SKIP)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["FORKDIFF_CACHE"] = str(cache_dir())
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp, env, 300)
    t0 = time.monotonic()
    # the sdist first (PyPA build, into the fresh venv), then the wheel from the sdist: what
    # `pipx install forkdiff-<v>.tar.gz` does, and the wheel then holds what the sdist carried
    tools = tmp / "tools"  # PyPA build in a venv of its own: the forkdiff venv stays as pipx makes it
    _run([sys.executable, "-m", "venv", str(tools)], tmp, env, 300)
    _run([str(tools / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "build"], tmp, env, 600)
    _run([str(tools / "bin" / "python"), "-m", "build", "--sdist", "--outdir", str(tmp / "sdist"), str(src)],
         tmp, env, 600)
    sdists = list((tmp / "sdist").glob("forkdiff-*.tar.gz"))
    assert len(sdists) == 1, sdists
    _run([str(venv / "bin" / "pip"), "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(sdists[0])],
         tmp, env, 600)
    wheels = list((tmp / "dist").glob("forkdiff-*.whl"))
    assert len(wheels) == 1, wheels
    print(f"\nsdist {sdists[0].stat().st_size} bytes, wheel {wheels[0].name}: "
          f"{wheels[0].stat().st_size} bytes, both built in {time.monotonic() - t0:.0f} s")
    with zipfile.ZipFile(wheels[0]) as whl:
        data = {n for n in whl.namelist() if n.startswith("forkdiff_data/")}
    for folder in ("kconfig", "scenarios", "guest"):
        want = {f"forkdiff_data/{folder}/{f.name}" for f in (REPO / folder).iterdir()
                if f.is_file() and (f.suffix in (".config", ".yaml", ".c", ".h") or f.name == "Makefile")}
        assert want and want <= data, (folder, want - data)
    assert not any("/bin/" in n for n in data)  # no built guest programs in the wheel
    t0 = time.monotonic()
    _run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheels[0])],
         tmp, env, 900)
    print(f"installed into a fresh venv in {time.monotonic() - t0:.0f} s")
    shutil.rmtree(src)  # nothing may point back at the copy the wheel was built from
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return venv, env


def test_installed_package_reads_its_own_data(venv, tmp_path: Path) -> None:
    vdir, env = venv
    probe = ("import json, orchestrator, simulator\n"
             "from orchestrator import resources\nfrom orchestrator.run import suites\n"
             "print(json.dumps({'orchestrator': orchestrator.__file__, 'checkout': str(resources.checkout_root()),"
             " 'scenarios': str(resources.data_dir('scenarios')), 'oracle': str(resources.oracle_source()),"
             " 'guest_bin': str(resources.guest_bin_dir()),"
             " 'loaded': [s.name for s in suites.load_scenarios(['mixed-small'])]}))\n")
    r = _run([str(vdir / "bin" / "python"), "-c", probe], tmp_path, env, 120)
    got = json.loads(r.stdout)
    assert got["orchestrator"].startswith(str(vdir)), got
    assert got["checkout"] == "None"
    assert got["scenarios"].startswith(str(vdir)) and got["oracle"].startswith(str(vdir))
    assert Path(got["oracle"]).read_bytes() == (REPO / "simulator/oracle/maple_oracle.c").read_bytes()
    assert got["guest_bin"].startswith(str(cache_dir() / "guest")), got
    assert got["loaded"] == ["mixed-small"]


def test_setup_print_is_the_makefile_list(venv, tmp_path: Path) -> None:
    _vdir, env = venv
    printed = _run(["forkdiff", "setup", "--print"], tmp_path, env, 60).stdout.split()
    # a make of its own, not a sub-make of the make that runs the tests (whose MAKEFLAGS and
    # MAKELEVEL would print "make[2]: Entering directory" lines)
    menv = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    make = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(REPO), "--eval",
                           "print-debs: ; @echo $(DEB_PACKAGES)", "print-debs"],
                          capture_output=True, text=True, timeout=60, env=menv)
    assert make.returncode == 0, make.stderr
    assert printed == make.stdout.split()
    assert {"qemu-system-x86", "busybox-static", "openssh-server", "linux-source-6.12"} <= set(printed)


def test_vm_test_maps_outside_the_checkout(venv, tmp_path: Path) -> None:
    _vdir, env = venv
    out = tmp_path / "out"
    run_env = {**env, "SUITES": "maps", "OUT": str(out)}
    t0 = time.monotonic()
    r = subprocess.run(["forkdiff", "vm-test"], cwd=tmp_path, env=run_env, capture_output=True,
                       text=True, timeout=1200)
    print(f"forkdiff vm-test SUITES=maps (installed): {time.monotonic() - t0:.0f} s, exit {r.returncode}")
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    rows = [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines() if line.strip()]
    maps = [x for x in rows if x["suite"] == "maps"]
    assert {x["variant"] for x in maps} == {"baseline", "patched"}
    assert maps and all(x["verdict"] == "match" for x in maps), [x for x in maps if x["verdict"] != "match"][:3]
    assert (out / "report.html").is_file()
    guest_bin = _run([str(_vdir / "bin" / "python"), "-c",
                      "from orchestrator import resources; print(resources.guest_bin_dir())"],
                     tmp_path, env, 120).stdout.strip()
    assert Path(guest_bin).parent.parent == cache_dir() / "guest"
    assert all((Path(guest_bin) / p).is_file() for p in ("mapsprobe", "faultsweep", "forkcount", "spawn"))
