"""Where fork's instructions go: the spawn guest run under QEMU with the instruction-count
plugin (orchestrator/data/insncount.c, built by orchestrator.prepare.qemuplugin), per kernel
function, for the fixed calibration plan of a kernel: the calibration layouts
(orchestrator.run.calibration) and the seed's spawn layout at PROFILE_VMAS.

The spawn guest brackets its fork loop with two marker no-ops; the plugin writes that
window's instructions per kernel symbol (self instructions: each instruction is charged to
the System.map symbol whose range holds it) and its entries (blocks starting at a symbol's
first byte). Divided by the loop's forks, that is one fork + the child's exit + the parent's
wait, per function. Under -icount shift=0 one instruction is one nanosecond of guest time, so
the window's instructions per fork are its seconds per fork (checked: `ns_per_insn`).

The result is cached per kernel (orchestrator.analysis.insn_calibration): the kernel's cache
key and bzImage hash, the spawn binary's hash, QEMU's version, the -icount setting, the plugin
and the plan."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simulator.scenario import from_dict

from ..cache import cache_path, sha256_file, sha256_text
from ..errors import ForkdiffError
from .suite_parse import parse_output
from .suites import GUEST_BIN, SPAWN_LAYOUT, SPAWN_VMAS, facts_of_kernel, spawn_scenario

PROFILE_DURATION = 0.3  # guest seconds per layout (under -icount: ~10 forks at 51,221 VMAs)
PROFILE_VMAS = SPAWN_VMAS  # the seed's spawn layout: every seed count, whatever a run's VMAS=
ICOUNT = "shift=0,sleep=off"
PLAN_VERSION = 1  # bump when the plan or what is recorded changes
# the caches whose SLUB geometry the instruction model's slab sub-model uses (simulator.slub:
# one vm_area_struct and one vma_lock per copied VMA, anon_vma_chain / anon_vma per fork of an
# anon VMA) and what is read of each from /sys/kernel/slab/<cache>/
SLAB_CACHES = ("vm_area_struct", "vma_lock", "anon_vma_chain", "anon_vma", "maple_node")
SLAB_ATTRS = ("objs_per_slab", "order", "cpu_partial", "min_partial", "object_size",
              "slab_size")


@dataclass(frozen=True)
class ProfileJob:
    layout: str  # "spawn" for the seed's layout (all counts one family), else calib-...
    scenario: dict
    args: tuple[str, ...]

    @property
    def command(self) -> str:
        return " ".join([f"{GUEST_BIN}/spawn", *self.args])


def profile_jobs(duration: float = PROFILE_DURATION, vmas: tuple[int, ...] = PROFILE_VMAS,
                 layouts: tuple[str, ...] | None = None) -> list[ProfileJob]:
    """The fixed plan: the calibration layouts, then the seed's layout at every count."""
    from .calibration import calibration_scenarios

    jobs = []
    for sc in calibration_scenarios(profile=True):
        if layouts is not None and sc["name"] not in layouts:
            continue
        lay = from_dict({k: v for k, v in sc.items() if k != "calibration"})
        jobs.append(ProfileJob(sc["name"], sc, (*lay.guest_args(), "--duration", f"{duration:g}")))
    base = from_dict({"name": "spawn", **SPAWN_LAYOUT})
    for n in vmas:
        jobs.append(ProfileJob("spawn", spawn_scenario(n),
                               (*base.guest_args(), "--total", str(n), "--duration", f"{duration:g}")))
    return jobs


_WINDOW = re.compile(r"^window (\d+)$")
_END = re.compile(r"^end (\d+) (\d+)$")


def parse_windows(text: str) -> list[dict]:
    """The plugin's output: [{index, instructions, symbols: {name: [insns, entries]}}]; a window
    without its `end` line (the guest died inside it) is dropped."""
    out, cur = [], None
    for line in text.splitlines():
        m = _WINDOW.match(line)
        if m:
            cur = {"index": int(m.group(1)), "symbols": {}}
            continue
        m = _END.match(line)
        if m and cur is not None:
            cur["instructions"] = int(m.group(2))
            out.append(cur)
            cur = None
            continue
        if cur is not None:
            n, e, name = line.split(" ", 2)
            cur["symbols"][name] = [int(n), int(e)]
    return out


def system_map(kernel) -> Path:
    """The System.map the kernel's build folder keeps (kernels/<key>/build -> o-<key>)."""
    p = Path(kernel.build_dir) / "System.map"
    if not p.is_file():
        raise ForkdiffError(f"{p} is missing: the instruction profile needs the kernel's symbols",
                            "build the kernel on this machine ('forkdiff kernel build'); an "
                            "imported kernel has no build folder")
    return p


def spawn_binary() -> Path:
    from .. import resources

    return resources.guest_bin_dir() / "spawn"


def profile_key(kernel, plugin: Path, qemu_version: str, plan: list[ProfileJob]) -> dict:
    """What a kernel's calibration depends on (its cache key is the hash of this)."""
    m = getattr(kernel, "manifest", None) or {}
    return {"kernel_key": m.get("key"), "bzimage_sha256": sha256_file(Path(kernel.bzimage)),
            "spawn_sha256": sha256_file(spawn_binary()), "qemu": qemu_version,
            "icount": ICOUNT, "plugin_sha256": sha256_file(plugin), "plan_version": PLAN_VERSION,
            "plan": sha256_text(json.dumps([[j.layout, j.command] for j in plan]))[:16]}


def kernel_config_of(kernel) -> dict | None:
    from ..prepare.kconfig import run_record

    cfg = getattr(kernel, "config", None)
    return run_record(cfg) if cfg is not None and Path(cfg).is_file() else None


def slab_geometry_command() -> str:
    return "; ".join(f'printf "%s %s %s\\n" {c} {a} "$(cat /sys/kernel/slab/{c}/{a} 2>/dev/null)"'
                     for c in SLAB_CACHES for a in SLAB_ATTRS)


def parse_slab_geometry(text: str) -> dict[str, dict[str, int]]:
    """{cache: {attr: int}} from slab_geometry_command()'s lines; a cache whose objs_per_slab
    cannot be read (no such cache, no SLUB sysfs) is left out."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in SLAB_CACHES and parts[1] in SLAB_ATTRS:
            try:
                out.setdefault(parts[0], {})[parts[1]] = int(parts[2].split()[0])
            except ValueError:
                continue
    return {c: a for c, a in out.items() if a.get("objs_per_slab", 0) > 0}


def read_slab_geometry(g) -> dict[str, dict[str, int]]:
    """The booted kernel's SLUB geometry of SLAB_CACHES (objects per slab, order, cpu_partial,
    min_partial: properties of the kernel and the guest's CPU count); {} when unreadable."""
    r = g.run(slab_geometry_command(), timeout=60)
    return parse_slab_geometry(r.stdout) if r.status == 0 else {}


def per_fork(window: dict, forks: int) -> dict[str, float]:
    return {name: v[0] / forks for name, v in window["symbols"].items()}


def run_profile(kernel, plan: list[ProfileJob], out_dir: Path,
                log: Callable[[str], None] = print) -> dict:
    """Boot `kernel` under TCG -icount with the plugin and run the plan's jobs; returns
    {points: [...], wall: {...}}. Each point: layout, scenario, vmas, forks, forks_per_s,
    insns_per_fork (total), symbols {name: [insns per fork, entries per fork]}."""
    from ..prepare.qemuplugin import build_plugin
    from ..prepare.rootfs import build_rootfs
    from ..vm.guest import Guest

    plugin = build_plugin()
    sysmap = system_map(kernel)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = out_dir / "insncount.txt"
    rootfs = build_rootfs()
    t0 = time.monotonic()
    points: list[dict] = []
    job_wall: list[float] = []
    with Guest(kernel, rootfs, icount=True, log_dir=out_dir / "vm",
               extra_args=("-plugin", f"{plugin},map={sysmap},out={counts}")) as g:
        boot = time.monotonic() - t0
        geometry = read_slab_geometry(g)
        seen = 0
        for job in plan:
            t = time.monotonic()
            r = g.run(job.command, timeout=300 + job.scenario.get("total_vmas", 0) / 20)
            parsed = parse_output("spawn", r.stdout)
            rec = next((p for p in parsed.records if p.measurement == "spawn"), None)
            windows = parse_windows(counts.read_text())
            new = windows[seen:]
            seen = len(windows)
            if r.status != 0 or rec is None or len(new) != 1:
                raise ForkdiffError(f"insn profile {job.layout}: spawn exited {r.status}, "
                                    f"{len(new)} plugin windows: {r.stderr[-300:]}",
                                    "read the guest's console", g.console_log)
            v = rec.values
            forks = int(v["forks"])
            w = new[0]
            points.append({
                "layout": job.layout, "scenario": job.scenario, "vmas": int(v["map_count"]),
                "forks": forks, "forks_per_s": float(v["forks_per_s"]),
                "seconds": float(v["seconds"]), "insns_per_fork": w["instructions"] / forks,
                "ns_per_insn": float(v["seconds"]) * 1e9 / w["instructions"],
                "symbols": {name: [n / forks, e / forks] for name, (n, e) in w["symbols"].items()},
            })
            job_wall.append(time.monotonic() - t)
            log(f"[insn-profile] {kernel.variant}: {job.layout} {v['map_count']} VMAs: "
                f"{forks} forks, {w['instructions'] / forks:,.0f} instructions/fork "
                f"({job_wall[-1]:.1f} s)")
    return {"points": points, "slab_geometry": geometry,
            "wall": {"boot_s": round(boot, 1), "jobs_s": round(sum(job_wall), 1),
                     "total_s": round(time.monotonic() - t0, 1),
                     "per_job_s": [round(x, 2) for x in job_wall]}}


def boot_slab_geometry(kernel, log: Callable[[str], None] = print) -> dict:
    """The SLUB geometry of a kernel whose cached profile lacks it: one boot (the profile's
    guest: same CPU count and memory, no plugin) that reads /sys/kernel/slab."""
    from ..prepare.rootfs import build_rootfs
    from ..vm.guest import Guest

    log(f"[insn-profile] {kernel.variant}: reading the SLUB geometry (/sys/kernel/slab) for a "
        "profile made before it was recorded")
    with Guest(kernel, build_rootfs(), icount=True) as g:
        return read_slab_geometry(g)


def cached_profile(kernel, log: Callable[[str], None] = print, plan: list[ProfileJob] | None = None,
                   ) -> dict:
    """The kernel's instruction profile over the fixed plan: from the cache, else measured
    once (under a lock) and stored: cache/insn-profile/<key>.json."""
    from ..cache import atomic_write, locked
    from ..prepare.qemuplugin import build_plugin, qemu_source_version

    plan = plan or profile_jobs()
    plugin = build_plugin()
    ident = profile_key(kernel, plugin, qemu_source_version(), plan)
    key = sha256_text(json.dumps(ident, sort_keys=True))[:16]
    path = cache_path("insn-profile") / f"{key}.json"
    with locked(f"insn-profile-{key}"):
        if path.is_file():
            data = json.loads(path.read_text())
            if "slab_geometry" not in data:  # a profile made before it was recorded
                try:
                    data["slab_geometry"] = boot_slab_geometry(kernel, log)
                except ForkdiffError as e:  # not stored: the next run tries again
                    log(f"[insn-profile] {kernel.variant}: SLUB geometry not read ({e}); the "
                        "slab sub-model counts every allocation and free as the fast path")
                    data["slab_geometry"] = {}
                    return data
                atomic_write(path, json.dumps(data) + "\n")
            return data
        log(f"[insn-profile] {kernel.variant}/{kernel.profile}: measuring {len(plan)} layouts "
            f"with the instruction-count plugin (once per kernel; cached as {path.name})")
        res = run_profile(kernel, plan, cache_path("insn-profile", f"run-{key}"), log)
        data = {"key": key, "identity": ident, "variant": kernel.variant,
                "release": kernel.release, "made_of": getattr(kernel, "made_of", ""),
                "kernel_config": kernel_config_of(kernel), "kernel_facts": facts_of_kernel(kernel),
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **res}
        atomic_write(path, json.dumps(data) + "\n")
        return data
