"""Kconfig version annotations (orchestrator/prepare/kconfig.py): `# since X.Y` / `# until X.Y` on an
option line decide on which trees it is requested and checked. Pure tests on hand-written
fragments; the real fragments on the three real trees are in tests/tree/test_trees.py."""

import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.prepare.kconfig import (
    dropped_options,
    effective_text,
    merged_requests,
    parse_config,
    parse_fragment,
    profile_fragments,
)

FRAG = ("CONFIG_A=y\n"
        "CONFIG_NEW=y  # since 6.4\n"
        "# CONFIG_OLD is not set  # until 6.8\n"
        'CONFIG_S="x # y"\n'
        "# a comment that says since 6.4 is only a comment\n")


def test_annotations_parse_into_bounds():
    reqs = {r.option: r for r in parse_fragment(FRAG, "f")}
    assert reqs["CONFIG_A"].since == () and reqs["CONFIG_A"].until == ()
    assert reqs["CONFIG_NEW"].value == "y" and reqs["CONFIG_NEW"].since == (6, 4)
    assert reqs["CONFIG_OLD"].value == "n" and reqs["CONFIG_OLD"].until == (6, 8)
    assert reqs["CONFIG_S"].value == '"x # y"'  # a '#' inside a value is not an annotation
    assert len(reqs) == 4


@pytest.mark.parametrize("version,new,old", [
    ((6, 1, 192), False, True), ((6, 3, 99), False, True), ((6, 4, 0), True, True),
    ((6, 4), True, True), ((6, 7, 12), True, True), ((6, 8, 0), True, False),
    ((7, 2, 13), True, False)])
def test_requests_apply_by_version(version, new, old):
    req = merged_requests([("f", FRAG)], version)
    assert ("CONFIG_NEW" in req) is new
    assert ("CONFIG_OLD" in req) is old
    assert "CONFIG_A" in req  # unannotated: required everywhere


def test_effective_text_drops_what_does_not_apply_and_strips_markers():
    old = effective_text(FRAG, (6, 1, 192), "f").splitlines()
    assert "CONFIG_A=y" in old and "# CONFIG_OLD is not set" in old
    assert "# forkdiff: not requested on 6.1.192 (since 6.4): CONFIG_NEW=y" in old
    assert not any(line.startswith("CONFIG_NEW") for line in old)
    new = effective_text(FRAG, (7, 2, 13), "f").splitlines()
    assert "CONFIG_NEW=y" in new
    assert "# forkdiff: not requested on 7.2.13 (until 6.8): # CONFIG_OLD is not set" in new
    # what merge_config.sh gets parses back to exactly the requests that apply
    assert {r.option for r in parse_fragment("\n".join(new))} == {"CONFIG_A", "CONFIG_NEW", "CONFIG_S"}


def test_strict_check_still_names_a_dropped_required_option_on_any_version():
    req = merged_requests([("f", FRAG)], (6, 1, 192))
    problems = dropped_options(req, parse_config('CONFIG_S="x # y"\n'))
    assert problems == ["CONFIG_A=y (f:1) -> absent (dependencies off?)"]
    # and a versioned option is checked where it applies
    req = merged_requests([("f", FRAG)], (6, 12, 57))
    problems = dropped_options(req, parse_config('CONFIG_A=y\nCONFIG_S="x # y"\n'))
    assert problems == ["CONFIG_NEW=y (f:2) -> absent (dependencies off?)"]


def test_annotation_on_a_garbage_line_is_still_an_error():
    with pytest.raises(ForkdiffError, match="f:1: cannot parse"):
        parse_fragment("NOT_AN_OPTION=y  # since 6.4\n", "f")


def test_shipped_fragments_annotate_the_options_6_1_lacks():
    """The per-version facts the fragments carry: required on every tree unless marked."""
    faults = merged_requests([(p.name, p.read_text()) for p in profile_fragments("faults")], (6, 1, 192))
    assert faults["CONFIG_SLUB"].value == "y"  # tinyconfig on 6.1 picks SLOB
    for opt in ("CONFIG_PER_VMA_LOCK", "CONFIG_FAULT_INJECTION_STACKTRACE_FILTER",
                "CONFIG_HARDLOCKUP_DETECTOR_PREFER_BUDDY"):
        assert opt not in faults
    for opt in ("CONFIG_FAILSLAB", "CONFIG_SLUB_DEBUG", "CONFIG_SLUB_STATS"):
        assert faults[opt].since == () and faults[opt].until == ()
    later = merged_requests([(p.name, p.read_text()) for p in profile_fragments("faults")], (6, 12, 117))
    assert {"CONFIG_PER_VMA_LOCK", "CONFIG_FAULT_INJECTION_STACKTRACE_FILTER",
            "CONFIG_HARDLOCKUP_DETECTOR_PREFER_BUDDY"} <= set(later)
