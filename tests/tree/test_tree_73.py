"""The newest tree Debian ships (trixie-backports' linux-source-7.3, 7.3.4 when written; fetched
once through KERNEL_TREE=debian:SUITE:PACKAGE, about a minute on a cold cache), configured for
real: its Kconfig no longer defines PROC_SYSCTL (fs/proc/Kconfig gives SYSCTL the prompt
"Sysctl support (/proc/sys)"), which the base fragment requests. configure() must tell that
apart from a dependency drop, find SYSCTL, see the need met and go on (docs/new-trees.md)."""

import json
import subprocess

import pytest

from orchestrator.prepare import kconfig_needs
from orchestrator.prepare.kconfig import configure, parse_config, profile_fragments
from orchestrator.prepare.tree import resolve_tree
from orchestrator.prepare.treefacts import detect, version_tuple
from simulator import runconfig

SPEC = "debian:trixie-backports:linux-source-7.3"


@pytest.fixture(scope="module")
def tree73():
    return resolve_tree(SPEC)


def _runner(cmd, phase):
    res = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    assert res.returncode == 0, f"{phase}: {res.stderr[-500:]}"


def test_73_folds_proc_sysctl_into_sysctl_and_the_build_goes_on(tree73, tmp_path):
    assert version_tuple(tree73.version)[:2] == (7, 3)
    obj = tmp_path / "o"
    config = configure(tree73.path, obj, profile_fragments("faults"), _runner,
                       version_tuple(tree73.version))
    final = parse_config(config.read_text())
    assert "CONFIG_PROC_SYSCTL" not in final and final["CONFIG_SYSCTL"] == "y"
    saved = json.loads((obj / kconfig_needs.RESULT_FILE).read_text())
    assert [(s["option"], s["kind"], s["successors"], s["met_by"], s["status"]) for s in saved] == [
        ("CONFIG_PROC_SYSCTL", "undefined", ["CONFIG_SYSCTL"], "CONFIG_SYSCTL=y", "met")]
    assert kconfig_needs.guest_checks(saved) == [
        ("CONFIG_PROC_SYSCTL", saved[0]["need"], "test -w /proc/sys/vm/stat_refresh")]


def test_73_facts_are_ones_the_simulator_models(tree73):
    facts = detect(tree73.path)
    assert facts["dup_mmap_file"] == "mm/mmap.c" and facts["dup_mmap_model"] == "patched"
    assert runconfig.tree_problems(facts) == []
