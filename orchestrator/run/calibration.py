"""The spawn suite's calibration design: layouts run on the BASELINE kernel only, besides the
seed's VMA counts, so that the timing work model (simulator.cost.calibrate) can tell its cost
features apart. In the seed's layout every operation count grows with the VMA count; these
layouts move them independently:

  gap0        adjacent VMAs (alternating rw / r, no gaps): one slot per VMA instead of two,
              so the bulk store's appends, splits and gap updates change per VMA while
              vm_area_dup and exit's remove_vma do not
  dontfork-*  VM_DONTCOPY on a half / three quarters of the VMAs: the loop visits every parent
              VMA, but copies, stores and tears down only the rest
  gap0-dontfork  both: the child gets gaps the parent does not have (with dontfork-half:
              the cost of the parent-side iterator step alone)
  dontfork-mix  the half and three-quarter DONTCOPY patterns alternating: the patched
              kernel's NULL stores over its __mt_dup copy as node stores, rebalances and
              spanning stores in one layout, in another mix than the three above (each store
              type then appears in two layouts, so leaving one out still prices it)
  gap0-40     a small process: the per-fork constant apart from the seed's 21-VMA point
  touched-sparse  one written page in every 512 VMAs (gap 1): the child gets a PTE table in
              every other 2 MiB region, so exit's page-table walk ends at the PTE level for
              half of the untouched VMAs and at the PMD level for the rest
  gap0-touched    one written page in every 64 adjacent VMAs: PTE tables everywhere (the
              seed's layout ends most walks at the PMD level: these two price the depths)
  anon-*      written private pages, 1, 4 or 8 per VMA: anon_vma_fork apart from ptes
  file-*      private file mappings (two sizes): get_file, the i_mmap interval tree

No patched-kernel measurement is ever used: the patched kernel's forks/s is predicted.
Under -icount a run's forks/s is deterministic (virtual time), so each layout runs once, for
CALIBRATION_DURATION guest seconds."""

from __future__ import annotations

from simulator.scenario import from_dict

CALIBRATION_DURATION = 0.5  # guest seconds per calibration layout

_A = {"pages": 1, "prot": "rw", "kind": "anon", "advice": "none", "touch": "none"}


def _g(count: int = 1, **kw) -> dict:
    return {**_A, "count": count, **kw}


CALIBRATION_LAYOUTS: dict[str, dict] = {
    "gap0-800": {"gap_pages": 0, "repeat": 400, "groups": [_g(), _g(prot="r")]},
    "gap0-4000": {"gap_pages": 0, "repeat": 2000, "groups": [_g(), _g(prot="r")]},
    "dontfork-half-1600": {"gap_pages": 1, "repeat": 800,
                           "groups": [_g(advice="dontfork"), _g()]},
    "dontfork-3q-3200": {"gap_pages": 1, "repeat": 800,
                         "groups": [_g(3, advice="dontfork"), _g()]},
    "gap0-dontfork-1600": {"gap_pages": 0, "repeat": 800,
                           "groups": [_g(advice="dontfork"), _g(prot="r")]},
    "dontfork-mix-2400": {"gap_pages": 1, "repeat": 400,
                          "groups": [_g(advice="dontfork"), _g(), _g(3, advice="dontfork"), _g()]},
    "touched-sparse-2048": {"gap_pages": 1, "repeat": 4,
                            "groups": [_g(touch="all"), _g(511)]},
    "gap0-touched-2048": {"gap_pages": 0, "repeat": 32,
                          "groups": [_g(touch="all"), _g(prot="r")] + [_g(), _g(prot="r")] * 31},
    "gap0-40": {"gap_pages": 0, "repeat": 20, "groups": [_g(), _g(prot="r")]},
    "anon-touched-800": {"gap_pages": 1, "groups": [_g(800, touch="all")]},
    "anon-4pages-600": {"gap_pages": 1, "groups": [_g(600, pages=4, touch="all")]},
    "anon-8pages-300": {"gap_pages": 1, "groups": [_g(300, pages=8, touch="all")]},
    "file-800": {"gap_pages": 1, "groups": [_g(800, prot="r", kind="file")]},
    "file-2400": {"gap_pages": 1, "groups": [_g(2400, prot="r", kind="file")]},
}


# Layouts only the instruction profile (orchestrator.run.insnprofile) measures: the per-run
# work model (simulator.cost) keeps the 11 layouts it was designed and validated with (its
# features do not tell these apart: its band would widen).
PROFILE_ONLY = ("dontfork-mix-2400", "touched-sparse-2048", "gap0-touched-2048")


def calibration_scenarios(profile: bool = False) -> list[dict]:
    """Scenario dicts of the calibration jobs (validated: the simulator replays them); with
    profile=True also the PROFILE_ONLY layouts (the instruction profile's plan)."""
    out = []
    for name, layout in CALIBRATION_LAYOUTS.items():
        if name in PROFILE_ONLY and not profile:
            continue
        sc = {"name": f"calib-{name}", "base": "0x100000000", **layout}
        from_dict(sc, source=f"calibration layout {name}")
        out.append({**sc, "calibration": True})
    return out


def is_calibration(scenario: dict) -> bool:
    return bool(scenario.get("calibration"))


def is_replayed(scenario: dict) -> bool:
    """A replayed layout given with SCENARIOS= (orchestrator/run/suites.py plan): a layout of its
    own like a calibration layout, but never fitted on, so the work model and its band do not
    depend on which scenarios a run names; its rows are predicted like the seed's."""
    return bool(scenario.get("replayed"))


def layout_family(scenario: dict) -> str:
    """The layout a spawn measurement belongs to (leave-one-layout-out drops all its points):
    the seed's fill layout is one family whatever its VMA count."""
    name = str(scenario.get("name", "?"))
    return name if is_calibration(scenario) else "spawn"
