"""A requested option the final .config lacks: dropped for a dependency, or no longer defined by
the tree's Kconfig (orchestrator/prepare/kconfig_needs.py).

The trees here are FAKES: a few hand-written Kconfig files in tmp_path shaped like the real ones
(a renamed option marked `transitional` as kernels from 6.18 do it, an option folded into another
that takes over its prompt as 7.3 folded PROC_SYSCTL into SYSCTL, a removed option, a defined
option with a dependency). The needs table is a small fake too, except in the tests that read
the real kconfig/needs.toml. The real run is the 7.3 vm-test (docs/new-trees.md)."""

from pathlib import Path

import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.prepare import kconfig_needs as kn
from orchestrator.prepare.kconfig import check_final_config, parse_fragment

FAKE_KCONFIG = {
    "fs/proc/Kconfig": """\
config PROC_FS
    bool "/proc file system support" if EXPERT
    default y

config SYSCTL
    bool "Sysctl support (/proc/sys)" if EXPERT
    depends on PROC_FS
    default y
    help
      The sysctl interface. If unsure, say Y.
""",
    "mm/Kconfig": """\
config NEW_CACHES
    bool "Partitioned kmalloc caches"
    default OLD_CACHES

config OLD_CACHES
    bool
    transitional
    help
      Transitional config for migration to NEW_CACHES.

if DEBUG_KERNEL
config DEBUG_THING
    bool "Debug thing"
    depends on DEBUG_KERNEL
endif
""",
    "lib/Kconfig.debug": """\
config DEBUG_KERNEL
    bool "Kernel debugging"
""",
    # kconfig's own test inputs are not the tree's options
    "scripts/kconfig/tests/err/Kconfig": "config PROC_SYSCTL\n\tbool \"Sysctl support (/proc/sys)\"\n",
}

FAKE_NEEDS = """\
[[need]]
options = ["CONFIG_PROC_SYSCTL"]
need = "/proc/sys writes"
guest = "test -w /proc/sys/vm/stat_refresh"

[[need]]
options = ["CONFIG_OLD_CACHES"]
need = "partitioned caches"

[[need]]
options = ["CONFIG_GONE", "CONFIG_GONE_OFF"]
need = "something long gone"

[[need]]
options = ["CONFIG_GONE_BOOT"]
need = "the guest boots"
guest = "boot"

[[need]]
options = ["CONFIG_DEBUG_THING"]
need = "debug checks"

[prompt]
CONFIG_PROC_SYSCTL = "Sysctl support (/proc/sys)"
"""


@pytest.fixture
def fake_tree(tmp_path):
    root = tmp_path / "tree"
    for rel, text in FAKE_KCONFIG.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def needs(tmp_path):
    p = tmp_path / "needs.toml"
    p.write_text(FAKE_NEEDS)
    return kn.load(p)


def _one(tree, needs, option, want, config):
    return kn.resolve([(option, want, "base.config:1")], tree, config, needs)[0]


def test_scan_reads_entries_transitional_and_prompts_but_not_kconfig_tests(fake_tree):
    idx = kn.scan_tree(fake_tree)
    assert idx.defined == {"PROC_FS", "SYSCTL", "NEW_CACHES", "OLD_CACHES", "DEBUG_THING",
                           "DEBUG_KERNEL"}
    assert idx.transitional == {"OLD_CACHES"}
    assert idx.prompts["Sysctl support (/proc/sys)"] == {"SYSCTL"}
    assert idx.referring_to("OLD_CACHES") == ["NEW_CACHES"]


def test_defined_option_dropped_for_a_dependency_is_still_that(fake_tree, needs):
    out = _one(fake_tree, needs, "CONFIG_DEBUG_THING", "y", {"CONFIG_DEBUG_KERNEL": "n"})
    assert (out.kind, out.status) == ("dependency", "dependency")


def test_folded_option_found_by_its_old_prompt_and_met_by_the_new_symbol(fake_tree, needs):
    out = _one(fake_tree, needs, "CONFIG_PROC_SYSCTL", "y", {"CONFIG_SYSCTL": "y"})
    assert out.kind == "undefined" and out.successors == ("CONFIG_SYSCTL",)
    assert out.status == "met" and out.met_by == "CONFIG_SYSCTL=y"
    assert out.guest == "test -w /proc/sys/vm/stat_refresh"  # confirmed at boot as well
    text = out.describe()
    assert "no longer defined" in text and "/proc/sys writes" in text and "CONFIG_SYSCTL=y" in text


def test_folded_option_whose_successor_is_off_is_left_to_the_boot_check(fake_tree, needs):
    out = _one(fake_tree, needs, "CONFIG_PROC_SYSCTL", "y", {"CONFIG_SYSCTL": "n"})
    assert out.status == "at-boot" and not out.met_by


def test_transitional_option_points_at_the_symbol_that_refers_to_it(fake_tree, needs):
    met = _one(fake_tree, needs, "CONFIG_OLD_CACHES", "y", {"CONFIG_NEW_CACHES": "y"})
    assert met.kind == "transitional" and met.successors == ("CONFIG_NEW_CACHES",)
    assert met.status == "met"
    unmet = _one(fake_tree, needs, "CONFIG_OLD_CACHES", "y", {})
    assert unmet.status == "unmet"  # no guest check in the table: nothing else can tell


def test_removed_option_without_replacement_or_guest_check_is_unmet(fake_tree, needs):
    out = _one(fake_tree, needs, "CONFIG_GONE", "y", {})
    assert (out.kind, out.successors, out.status) == ("undefined", (), "unmet")
    assert "removed or renamed" in out.describe() and "something long gone" in out.describe()


def test_removed_option_wanted_off_is_met_by_its_absence(fake_tree, needs):
    out = _one(fake_tree, needs, "CONFIG_GONE_OFF", "n", {})
    assert out.status == "met"


def test_removed_option_whose_proof_is_the_boot_goes_on(fake_tree, needs):
    out = _one(fake_tree, needs, "CONFIG_GONE_BOOT", "y", {})
    assert out.status == "at-boot"
    assert kn.guest_checks([vars(out)]) == []  # no command: booting is the check


def test_option_missing_from_the_table_is_unmet_and_says_so(fake_tree, needs):
    out = _one(fake_tree, needs, "CONFIG_NOT_IN_TABLE", "y", {})
    assert out.status == "unmet" and "does not say what forkdiff needed it for" in out.describe()


def _fragment_and_config(tmp_path, fragment, config):
    f = tmp_path / "base.config"
    f.write_text(fragment)
    c = tmp_path / ".config"
    c.write_text(config)
    return f, c


def test_check_final_config_goes_on_when_the_need_is_met(fake_tree, tmp_path, monkeypatch, needs):
    monkeypatch.setattr(kn, "load", lambda path=None: needs)
    f, c = _fragment_and_config(tmp_path, "CONFIG_PROC_SYSCTL=y\nCONFIG_PROC_FS=y\n",
                                "CONFIG_PROC_FS=y\nCONFIG_SYSCTL=y\n")
    kept = check_final_config([f], c, tree=fake_tree)
    assert [o.option for o in kept] == ["CONFIG_PROC_SYSCTL"]
    kn.save(kept, tmp_path)
    assert kn.guest_checks(kn.saved(tmp_path)) == [
        ("CONFIG_PROC_SYSCTL", "/proc/sys writes", "test -w /proc/sys/vm/stat_refresh")]


def test_check_final_config_error_tells_the_two_kinds_apart(fake_tree, tmp_path, monkeypatch, needs):
    monkeypatch.setattr(kn, "load", lambda path=None: needs)
    f, c = _fragment_and_config(tmp_path, "CONFIG_DEBUG_THING=y\nCONFIG_GONE=y\nCONFIG_PROC_SYSCTL=y\n",
                                "CONFIG_SYSCTL=y\n")
    with pytest.raises(ForkdiffError) as err:
        check_final_config([f], c, tree=fake_tree)
    msg = str(err.value)
    assert "1 kconfig option(s) dropped by olddefconfig (the tree's Kconfig defines them" in msg
    assert "CONFIG_DEBUG_THING=y (base.config:1) -> absent" in msg
    assert "1 requested option(s) this tree's Kconfig no longer defines" in msg
    assert "CONFIG_GONE=y (base.config:2)" in msg and "something long gone" in msg
    assert "PROC_SYSCTL" not in msg  # met: not an error
    assert "needs.toml" in err.value.next_step


def test_check_guest_runs_each_check_and_names_the_failing_one():
    subs = [{"option": "CONFIG_A", "need": "a", "guest": "test -e /a"},
            {"option": "CONFIG_B", "need": "b", "guest": "boot"},
            {"option": "CONFIG_C", "need": "c", "guest": "test -e /c"}]
    ran, said = [], []

    def run(cmd):
        ran.append(cmd)
        return (0, "") if cmd == "test -e /a" else (1, "")

    with pytest.raises(ForkdiffError, match=r"CONFIG_C is not in this tree's Kconfig.*`test -e /c` failed.*c"):
        kn.check_guest(subs, run, said.append, "[faults] patched/faults")
    assert ran == ["test -e /a", "test -e /c"] and len(said) == 1


def test_real_table_covers_every_option_the_fragments_request():
    """kconfig/needs.toml (the real one) says what every requested option is for."""
    real = kn.load()
    folder = Path(kn.resources.data_dir("kconfig"))
    requested = set()
    for f in folder.glob("*.config"):
        requested |= {r.option for r in parse_fragment(f.read_text(), f.name)}
    assert requested and sorted(requested - set(real.by_option)) == []
    assert set(real.prompts) <= requested


def test_real_table_finds_sysctl_for_proc_sysctl_in_a_7_3_shaped_kconfig(fake_tree):
    """The real table's prompt for PROC_SYSCTL against the fake tree's SYSCTL entry (shaped
    like 7.3's fs/proc/Kconfig)."""
    out = kn.resolve([("CONFIG_PROC_SYSCTL", "y", "base.config:57")], fake_tree,
                     {"CONFIG_SYSCTL": "y"})[0]
    assert out.successors == ("CONFIG_SYSCTL",) and out.status == "met"

