"""Scenario format (simulator/scenario.py): addresses, guest argv, and errors that name the field."""

import pytest

from simulator import scenario as sc


def test_layout_addresses_follow_base_sizes_and_gaps():
    s = sc.from_dict({"name": "t", "base": "0x200000000", "gap_pages": 2,
                      "groups": [{"count": 2, "pages": 3}, {"count": 1, "pages": 1, "prot": "r"}]})
    lay = s.layout()
    assert [(v.start, v.end) for v in lay] == [
        (0x200000000, 0x200000000 + 3 * 4096),
        (0x200000000 + 5 * 4096, 0x200000000 + 8 * 4096),
        (0x200000000 + 10 * 4096, 0x200000000 + 11 * 4096),
    ]
    assert lay[2].prot == "r" and s.layout_count == 3


def test_guest_args_round_trip_the_groups():
    s = sc.from_dict({"name": "t", "groups": [
        {"count": 3, "pages": 2, "prot": "rw", "kind": "anon", "advice": "wipeonfork", "touch": "all"}]})
    assert s.guest_args() == ["--base", "0x100000000", "--gap", "1", "3x2:rw:anon:wipeonfork:all"]


def test_shipped_scenarios_load(tmp_path):
    from pathlib import Path

    files = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))
    assert files, "scenarios/ holds the built-in scenarios"
    for f in files:
        assert sc.load(f).layout_count >= 1


@pytest.mark.parametrize("data, field", [
    ({"groups": [{"count": 1}]}, "'name'"),
    ({"name": "x", "groups": []}, "'groups'"),
    ({"name": "x", "groups": [{"count": 0}]}, "groups[0].count"),
    ({"name": "x", "groups": [{"count": 1, "prot": "rx-"}]}, "groups[0].prot"),
    ({"name": "x", "groups": [{"count": 1, "prot": "r", "touch": "all"}]}, "groups[0].touch"),
    ({"name": "x", "groups": [{"count": 1, "kind": "file", "advice": "wipeonfork"}]}, "groups[0].advice"),
    ({"name": "x", "base": 4097, "groups": [{"count": 1}]}, "'base'"),
    ({"name": "x", "groups": [{"count": 1, "colour": "red"}]}, "colour"),
    ({"name": "x", "base": "0x7ffffffff000", "groups": [{"count": 2}]}, "user address space"),
])
def test_bad_scenarios_name_the_field(data, field):
    with pytest.raises(sc.ScenarioError) as err:
        sc.from_dict(data, source="s.yaml")
    assert "s.yaml" in str(err.value) and field in str(err.value)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(sc.ScenarioError, match="cannot read"):
        sc.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(sc.ScenarioError, match="not valid YAML"):
        sc.load(bad)


def _alternating_groups(n: int) -> list[dict]:
    """n groups that differ from their neighbours (so none could be folded into another)."""
    return [{"count": 1, "prot": "rw" if i % 2 else "r"} for i in range(n)]


def test_a_300_group_scenario_is_accepted():
    """The guest builder keeps its groups in static storage sized beyond what argv can carry,
    so a scenario is no longer refused for its number of groups."""
    ok = sc.from_dict({"name": "x", "groups": _alternating_groups(300)}, source="s.yaml")
    assert len(ok.groups) == 300 and ok.layout_count == 300
