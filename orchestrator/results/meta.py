"""run.json, typed: RunMeta says what a run was (tree, kernels, models, options), what it was
made with (guest binaries, QEMU) and how long each part took. RunMeta.save() is the one writer
of run.json; load() reads any run.json forkdiff wrote (older ones lack some keys: those fields
are None and stay out of the file).

On disk the file keeps its keys as they always were ("kernel baseline/faults wall s", "suite
maps patched wall s", "made of", ...), so every recorded folder and every reader of run.json
(report, reply, history, against, merge) reads it as before; keys this module does not know
(added by hand, or by a newer forkdiff) are kept in `extra` and written back."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cache import atomic_write
from .folder import RUN_JSON


@dataclass
class KernelMeta:
    """One kernel the run built: its release, the seconds build_kernel took (a cached kernel:
    about none) and the slub_debug= words its guests boot with ("none")."""

    release: str
    wall_s: float | None = None
    slub_debug: str | None = None


# the fields of the run's description, in file order, and their keys in run.json
_HEAD = (("run", "run"), ("started", "started"), ("tree", "tree"), ("tree_identity", "tree_identity"),
         ("kernel_version", "kernel_version"), ("simulator", "simulator"), ("kernel_facts", "kernel_facts"),
         ("variants", "variants"), ("made_of", "made of"), ("reference_kernel", "reference kernel"),
         ("measured_ab", "measured A/B"), ("models", "models"), ("suites", "suites"),
         ("scenarios", "scenarios"), ("spawn_vmas", "spawn_vmas"), ("spawn_duration_s", "spawn_duration_s"),
         ("spawn_repeats", "spawn_repeats"), ("kmemleak", "kmemleak"), ("faults", "faults"),
         ("observers", "observers"), ("tree_spec", "tree_spec"), ("model_arg", "model_arg"),
         ("patches", "patches"), ("against", "against"))
# ... after the kernels
_TAIL = (("rootfs_wall_s", "rootfs wall s"), ("kvm", "kvm"), ("guest_binaries", "guest binaries"),
         ("qemu_version", "qemu version"), ("model_map", "model map"), ("shard", "shard"),
         ("executor", "executor"), ("parallel_guests", "parallel guests"))
# ... after the suites' times
_END = (("suites_wall_s", "suites wall s"), ("merged_from", "merged from"),
        ("compare_wall_s", "compare wall s"), ("report_wall_s", "report wall s"))

_KERNEL = re.compile(r"^kernel (\S+/\S+?)(?: (wall s|slub_debug))?$")
_SUITE = re.compile(r"^suite (\S+) (\S+) wall s$")


@dataclass
class RunMeta:
    run: str | None = None
    started: str | None = None
    tree: str | None = None
    tree_identity: str | None = None
    kernel_version: str | None = None
    simulator: str | None = None  # "models this tree", or why not
    kernel_facts: str | None = None  # treefacts.detect() of the tree, as JSON text
    variants: str | None = None
    made_of: str | None = None
    reference_kernel: str | None = None
    measured_ab: str | None = None
    models: str | None = None
    suites: str | None = None
    scenarios: str | None = None
    spawn_vmas: str | None = None
    spawn_duration_s: float | None = None
    spawn_repeats: int | str | None = None
    kmemleak: str | None = None
    faults: str | None = None
    observers: str | None = None
    tree_spec: str | None = None
    model_arg: str | None = None
    patches: list[dict] | None = None
    against: str | None = None
    kernels: dict[str, KernelMeta] = field(default_factory=dict)  # "variant/profile" -> kernel
    rootfs_wall_s: float | None = None
    kvm: str | None = None
    guest_binaries: dict[str, str] | None = None  # program -> sha256 (results/provenance.py)
    qemu_version: str | None = None
    model_map: dict[str, str] | None = None  # kernel -> the simulator model it is compared with
    shard: str | None = None
    executor: str | None = None
    parallel_guests: int | None = None
    suite_wall_s: dict[tuple[str, str], float] = field(default_factory=dict)  # (suite, variant) -> s
    suites_wall_s: float | None = None
    merged_from: str | None = None
    compare_wall_s: float | None = None
    report_wall_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this module does not know

    def kernel(self, variant: str, profile: str) -> KernelMeta:
        return self.kernels.setdefault(f"{variant}/{profile}", KernelMeta(release=""))

    def to_dict(self) -> dict[str, Any]:
        """run.json as it is written: the keys forkdiff has always used, in run order."""
        out: dict[str, Any] = {}
        for name, key in _HEAD:
            if (v := getattr(self, name)) is not None:
                out[key] = v
        for kv, k in self.kernels.items():
            out[f"kernel {kv}"] = k.release
            if k.wall_s is not None:
                out[f"kernel {kv} wall s"] = k.wall_s
            if k.slub_debug is not None:
                out[f"kernel {kv} slub_debug"] = k.slub_debug
        for name, key in _TAIL:
            if (v := getattr(self, name)) is not None:
                out[key] = v
        for (suite, variant), s in self.suite_wall_s.items():
            out[f"suite {suite} {variant} wall s"] = s
        for name, key in _END:
            if (v := getattr(self, name)) is not None:
                out[key] = v
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunMeta:
        keys = {key: name for name, key in (*_HEAD, *_TAIL, *_END)}
        meta = cls()
        for key, v in d.items():
            if key in keys:
                setattr(meta, keys[key], v)
            elif m := _KERNEL.match(key):
                k = meta.kernels.setdefault(m.group(1), KernelMeta(release=""))
                if m.group(2) == "wall s":
                    k.wall_s = v
                elif m.group(2) == "slub_debug":
                    k.slub_debug = v
                else:
                    k.release = v
            elif m := _SUITE.match(key):
                meta.suite_wall_s[(m.group(1), m.group(2))] = v
            else:
                meta.extra[key] = v
        return meta

    @classmethod
    def load(cls, folder: Path) -> RunMeta:
        """The folder's run.json (a ForkdiffError-free empty RunMeta when there is none)."""
        path = Path(folder) / RUN_JSON
        return cls.from_dict(json.loads(path.read_text())) if path.is_file() else cls()

    def save(self, folder: Path) -> None:
        """Write <folder>/run.json (whole, atomically: a reader never sees half a file)."""
        atomic_write(Path(folder) / RUN_JSON, json.dumps(self.to_dict(), indent=1))

