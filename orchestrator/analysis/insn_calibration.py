"""A kernel's instruction model (simulator.insn_cost) from its cached instruction profile
(orchestrator.run.insnprofile): the measured instructions per function and fork of every
profiled layout, against the simulator's work counts for the same layout under the kernel's
model (computed here from the scenario, never from a measurement).

The profile, and so the model and its LOLO band, is fixed per kernel: it depends on the
kernel (cache key, bzImage hash), the spawn binary, QEMU's version and -icount setting, the
plugin and the fixed plan, never on a run's VMAS=, SCENARIOS= or shard."""

from __future__ import annotations

from pathlib import Path

from simulator import predict as sim_predict
from simulator import runconfig
from simulator.insn_cost import InsnModel, InsnPoint, by_function, fit
from simulator.scenario import from_dict

from .job_predictions import guest_elf, spawn_layout

_WORK_CACHE: dict[tuple, dict] = {}


def work_for(scenario: dict, model: str, kernel_config: dict | None = None,
             kernel_facts: dict | None = None, elf=None) -> dict:
    """The simulator's work counts (simulator.work) of one spawn fork of this scenario. The
    spawn binary's ELF is part of the key: its bss decides the parent's page tables."""
    import json
    from dataclasses import asdict

    elf = elf or guest_elf("spawn")
    key = (json.dumps(scenario, sort_keys=True), model, json.dumps(kernel_config, sort_keys=True),
           json.dumps(kernel_facts, sort_keys=True), json.dumps(asdict(elf), sort_keys=True))
    if key not in _WORK_CACHE:
        disk = _disk_cache(key)
        if disk is not None and disk.is_file():
            _WORK_CACHE[key] = json.loads(disk.read_text())
            return _WORK_CACHE[key]
        rm = runconfig.resolve("spawn", kernel_config, None, kernel_facts, None)
        sc = from_dict(spawn_layout(scenario), source=f"profile layout {scenario.get('name')}")
        recs = sim_predict.records(sc, model, program="spawn", total=scenario.get("total_vmas"),
                                   elf=elf, measurements=("op_counts",),
                                   settings=rm.settings, config=rm.config)
        _WORK_CACHE[key] = next(r for r in recs if r["measurement"] == "op_counts")["work"]
        if disk is not None:
            from ..cache import atomic_write

            atomic_write(disk, json.dumps(_WORK_CACHE[key]))
    return _WORK_CACHE[key]


def _disk_cache(key: tuple) -> Path | None:
    """cache/insn-work/<hash>.json: the simulator's work counts of one profile layout, keyed
    by the scenario, model, kernel config and facts, and the simulator's own sources (a
    simulator change recomputes them). None when the cache cannot be used."""
    try:
        from ..cache import cache_path, sha256_text

        src = Path(sim_predict.__file__).parent
        code = sha256_text(*(p.read_bytes() for p in sorted(src.glob("*.py"))))
        return cache_path("insn-work") / f"{sha256_text(code, *key)[:24]}.json"
    except OSError:
        return None


def points_of(profile: dict, model: str, elf=None) -> list[InsnPoint]:
    pts = []
    for p in profile["points"]:
        work = work_for(p["scenario"], model, profile.get("kernel_config"),
                        profile.get("kernel_facts"), elf)
        pts.append(InsnPoint(p["layout"], int(p["vmas"]), float(p["forks_per_s"]),
                             by_function(p["symbols"]), work))
    return pts


def model_of(profile: dict, model: str, elf=None) -> InsnModel:
    """The kernel's instruction model, fitted on its own profile; `fitted_on` says on what."""
    pts = points_of(profile, model, elf)
    geo = profile.get("slab_geometry") or {}
    return fit(pts, slab_geometry=geo, fitted_on={
        "slab_geometry": "/sys/kernel/slab of the profiled kernel: " + ", ".join(
            f"{c} {g['objs_per_slab']} objects per slab" for c, g in sorted(geo.items()))
        if geo else "not recorded with this profile: the slab sub-model counts every "
        "allocation and free as SLUB's fast path (linear in the objects)",
        "kernel": profile.get("variant"), "release": profile.get("release"),
        "profile_key": profile.get("key"), "identity": profile.get("identity"),
        "model": model, "data": "instructions per function and fork, QEMU plugin "
        "(orchestrator/data/insncount.c) under -icount, one run per layout",
        "layouts": sorted({p.layout for p in pts}),
        "spawn_vmas": sorted(p.vmas for p in pts if p.layout == "spawn"),
        "points": len(pts)})


def lolo_table(m: InsnModel) -> list[str]:
    """Lines: per layout family, the largest |LOLO error| and the function that errs most."""
    out = [f"{'layout':<24} {'VMAs':>7} {'measured insns/fork':>20} {'LOLO err %':>10}  worst function"]
    for p in sorted(m.points, key=lambda p: (p["layout"] != "spawn", p["layout"], p["vmas"])):
        e = p["lolo_error_pct"]
        byf = p["lolo_by_function_pct"] or {}
        worst = max(byf.items(), key=lambda kv: abs(kv[1])) if byf else ("", 0.0)
        out.append(f"{p['layout']:<24} {p['vmas']:>7} {p['measured_insns']:>20,.0f} "
                   f"{'-' if e is None else f'{e:+.2f}':>10}  {worst[0]} {worst[1]:+.2f}")
    return out


def function_table(point: dict) -> list[str]:
    """Lines: instructions per fork per function, measured vs modelled, of one point."""
    out = [f"{'function':<16} {'measured':>14} {'modelled':>14}"]
    meas, fitted = point["measured_by_function"], point["fitted_by_function"]
    for g in sorted(meas, key=lambda g: -meas[g]):
        if meas[g] or fitted.get(g):
            out.append(f"{g:<16} {meas[g]:>14,.0f} {fitted.get(g, 0.0):>14,.0f}")
    return out
