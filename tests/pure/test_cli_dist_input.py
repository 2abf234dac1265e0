"""Bad input to the shard, merge, executor and kernel bundle options: one line naming the
cause and the next step, exit 2, no traceback (real CLI in a subprocess; each case fails
before any kernel build or VM)."""

import os
import subprocess
import sys

import pytest


def forkdiff(*args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.mark.parametrize("args, env, cause", [
    (["vm-test", "--shard", "3/2"], {}, "--shard '3/2' is not i/n"),
    (["vm-test"], {"SHARD": "x"}, "--shard 'x' is not i/n"),
    (["vm-test", "--executor", "ray"], {}, "unknown executor 'ray'"),
    (["vm-test", "--sweep-part", "-5"], {}, "SWEEP_PART='-5' is not a positive number"),
    (["merge", "/tmp/forkdiff-merged-nowhere", "/nonexistent-forkdiff-shard"], {},
     "/nonexistent-forkdiff-shard is not a run folder"),
    (["kernel", "import", "/nonexistent-forkdiff-bundle.tar.gz"], {}, "is not a kernel bundle"),
])
def test_bad_dist_input_is_one_line(args, env, cause):
    r = forkdiff(*args, env_extra=env)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("forkdiff: error:") and cause in lines[0], lines
    assert "next:" in lines[0] and "Traceback" not in r.stderr


def test_setup_print_lists_the_packages_without_installing():
    r = forkdiff("setup", "--print")
    assert r.returncode == 0, r.stderr
    assert {"qemu-system-x86", "busybox-static", "openssh-server", "liburcu-dev"} <= set(r.stdout.split())
