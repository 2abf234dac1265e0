"""Kconfig fragments and the dropped-option check (orchestrator/prepare/kconfig.py).

The pure checker is tested on hand-written configs; the profile fragments and a fragment with an
option that cannot be enabled are tested with the real tree's tinyconfig, merge_config.sh and
olddefconfig (about 10 s each)."""

import subprocess

import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.prepare.kconfig import (
    PROFILES,
    configure,
    dropped_options,
    merged_requests,
    parse_config,
    parse_fragment,
    profile_fragments,
)
from orchestrator.prepare.tree import resolve_tree


def test_parse_config_reads_set_unset_and_strings():
    cfg = parse_config('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="-x"\nCONFIG_D=16\n# comment\n')
    assert cfg == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": '"-x"', "CONFIG_D": "16"}


def test_parse_fragment_rejects_garbage_line():
    with pytest.raises(ForkdiffError, match=r"frag:2: cannot parse"):
        parse_fragment("CONFIG_A=y\nA=y\n", "frag")


def test_later_fragment_wins():
    req = merged_requests([("a", "CONFIG_X=y\n"), ("b", "# CONFIG_X is not set\n")])
    assert req["CONFIG_X"].value == "n" and req["CONFIG_X"].source == "b:1"


def test_checker_accepts_a_config_that_has_everything():
    req = merged_requests([("f", 'CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S="-v"\n')])
    # CONFIG_B absent from .config counts as "not set", as Kconfig writes it.
    assert dropped_options(req, parse_config('CONFIG_A=y\nCONFIG_S="-v"\nCONFIG_OTHER=y\n')) == []


def test_checker_lists_each_dropped_option():
    req = merged_requests([("f", 'CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_N=8\n')])
    final = parse_config("# CONFIG_A is not set\nCONFIG_C=y\nCONFIG_N=4\n")
    problems = dropped_options(req, final)
    assert len(problems) == 4
    text = "\n".join(problems)
    for option in ("CONFIG_A=y (f:1)", "CONFIG_B=y (f:2)", "# CONFIG_C is not set (f:3)",
                   "CONFIG_N=8 (f:4)"):
        assert option in text
    assert "CONFIG_B=y (f:2) -> absent" in text


def test_unknown_profile_is_a_user_error():
    with pytest.raises(ForkdiffError, match="unknown kconfig profile 'fast'"):
        profile_fragments("fast")


def test_profiles_start_with_base():
    for profile in PROFILES:
        assert [p.name for p in profile_fragments(profile)][0] == "base.config"


def _runner(cmd, phase):
    res = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                                                                   "LC_ALL": "C"})
    assert res.returncode == 0, f"{phase}: {res.stderr[-500:]}"


@pytest.fixture(scope="module")
def tree():
    return resolve_tree(None)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profile_fragments_survive_olddefconfig(tree, tmp_path, profile):
    """Real tinyconfig + merge_config.sh + olddefconfig: every requested option is in .config."""
    config = configure(tree.path, tmp_path / "o", profile_fragments(profile), _runner)
    final = parse_config(config.read_text())
    assert final["CONFIG_64BIT"] == "y" and final.get("CONFIG_SLUB_TINY", "n") == "n"
    if profile in ("faults", "debug"):
        assert final["CONFIG_FAILSLAB"] == "y" and final["CONFIG_SLUB_STATS"] == "y"
        # DEBUG_VM's checks with DEBUG_VM=1 only: spawn times the faults kernels
        want_debug = "y" if profile == "debug" else "n"
        assert final.get("CONFIG_DEBUG_VM_MAPLE_TREE", "n") == want_debug
        assert final.get("CONFIG_DEBUG_VM", "n") == want_debug
        # swap on zram for OBSERVERS=, in the one kernel every suite boots
        for opt in ("CONFIG_SWAP", "CONFIG_ZRAM", "CONFIG_BLOCK", "CONFIG_PROC_PAGE_MONITOR"):
            assert final.get(opt, "n") == "y", opt
    else:
        assert final.get("CONFIG_FAULT_INJECTION", "n") == "n"


def test_option_that_cannot_be_enabled_is_listed(tree, tmp_path):
    """DEBUG_VM_MAPLE_TREE depends on DEBUG_VM (off here), FAILSLAB on FAULT_INJECTION (off):
    olddefconfig drops both and configure() names both."""
    frag = tmp_path / "bad.config"
    frag.write_text("CONFIG_64BIT=y\n# CONFIG_DEBUG_VM is not set\nCONFIG_DEBUG_VM_MAPLE_TREE=y\n"
                    "# CONFIG_FAULT_INJECTION is not set\nCONFIG_FAILSLAB=y\n")
    with pytest.raises(ForkdiffError) as info:
        configure(tree.path, tmp_path / "o", [frag], _runner)
    msg = info.value.one_line()
    assert "2 kconfig option(s) dropped" in msg
    assert "CONFIG_DEBUG_VM_MAPLE_TREE=y (bad.config:3)" in msg
    assert "CONFIG_FAILSLAB=y (bad.config:5)" in msg
