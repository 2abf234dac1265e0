"""`forkdiff cache prune` on a FAKE cache laid out like the real one (folders and small files
with back-dated use times, no kernels built): what goes and what stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from orchestrator.cache import LAST_USED
from orchestrator.cache_prune import DAY, candidates

NOW = time.time()


def _entry(path: Path, days_ago: float, size: int = 1000) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "blob").write_bytes(b"x" * size)
    t = NOW - days_ago * DAY
    (path / LAST_USED).touch()
    os.utime(path / LAST_USED, (t, t))
    os.utime(path, (t, t))
    return path


def _kernel(root: Path, key: str, src: str, days_ago: float, manifest: bool = True) -> Path:
    k = _entry(root / "kernels" / key, days_ago)
    build = _entry(root / "src" / src / f"o-{key}", days_ago, 5000)
    if manifest:
        (k / "manifest.json").write_text(json.dumps({"build_dir": str(build)}))
    return build


def _fake_cache(root: Path) -> dict[str, Path]:
    p = {}
    _entry(root / "src" / "s-live", 1)  # a tree copy used yesterday...
    p["k-old"] = root / "kernels" / "k-old"
    p["o-old"] = _kernel(root, "k-old", "s-live", 30)  # ...with one kernel not used for 30 days
    p["k-new"] = root / "kernels" / "k-new"
    p["o-new"] = _kernel(root, "k-new", "s-live", 2)
    p["o-orphan"] = _entry(root / "src" / "s-live" / "o-gone", 0.5)  # its kernel entry is gone
    p["s-dead"] = _entry(root / "src" / "s-dead", 40)  # a tree copy nobody used for 40 days
    p["o-dead"] = _kernel(root, "k-dead", "s-dead", 40)
    p["k-dead"] = root / "kernels" / "k-dead"
    p["r-old"] = _entry(root / "rootfs" / "r-old", 20)
    p["r-latest"] = _entry(root / "rootfs" / "r-latest", 20)
    (root / "rootfs" / "latest").symlink_to("r-latest")
    p["log-old"] = _entry(root / "logs" / "vm" / "log-old", 15)
    p["log-new"] = _entry(root / "logs" / "vm" / "log-new", 3)
    p["keys"] = _entry(root / "keys", 100)
    p["tree"] = _entry(root / "trees" / "linux", 100)
    return p


def test_candidates(tmp_path: Path) -> None:
    p = _fake_cache(tmp_path)
    gone = {e.path for e in candidates(14, tmp_path, NOW)}
    assert gone == {p["k-old"], p["o-old"], p["o-orphan"], p["s-dead"], p["k-dead"], p["r-old"], p["log-old"]}
    # o-dead goes with its source copy, not on its own
    assert p["o-dead"] not in gone
    # At 0.1 days the source copy used yesterday goes too, and takes its build folders with it.
    short = {e.path for e in candidates(0.1, tmp_path, NOW)}
    assert tmp_path / "src" / "s-live" in short and p["k-new"] in short and p["log-new"] in short
    assert not [x for x in short if tmp_path / "src" / "s-live" in x.parents]
    assert p["r-latest"] not in {e.path for e in candidates(0, tmp_path, NOW)}


def test_prune_cli_dry_run_then_real(tmp_path: Path) -> None:
    p = _fake_cache(tmp_path)
    env = dict(os.environ, FORKDIFF_CACHE=str(tmp_path))
    cmd = [sys.executable, "-m", "orchestrator", "cache", "prune", "--older-than", "14"]
    r = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "would free" in r.stdout and all(x.exists() for x in p.values())
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    kept = {n for n, x in p.items() if x.exists()}
    assert kept == {"k-new", "o-new", "r-latest", "log-new", "keys", "tree"}
    assert (tmp_path / "src" / "s-live").is_dir()
    r = subprocess.run([sys.executable, "-m", "orchestrator", "cache", "du"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0 and "total" in r.stdout and "src" in r.stdout
    r = subprocess.run([*cmd[:-1], "-3"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and "negative" in r.stderr


def test_bisect_build_folder_goes_with_its_mirror_not_with_one_kernel(tmp_path: Path) -> None:
    """A bisection's kernels all point at one persistent build folder (bisect/<key>/src/o-faults):
    an old kernel goes alone; the mirror goes as a whole when it is not used for DAYS."""
    live = _entry(tmp_path / "bisect" / "m-live", 1)
    build = _entry(live / "src" / "o-faults", 1, 5000)
    old_kernel = _entry(tmp_path / "kernels" / "k-bisect-old", 30)
    (old_kernel / "manifest.json").write_text(json.dumps({"build_dir": str(build)}))
    dead = _entry(tmp_path / "bisect" / "m-dead", 40)
    gone = {e.path for e in candidates(14, tmp_path, NOW)}
    assert old_kernel in gone and dead in gone
    assert build not in gone and live not in gone
