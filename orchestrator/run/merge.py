"""`forkdiff merge OUT SHARD...`: the observations of shard folders (`vm-test --shard i/n`)
joined into one folder that compare and report read as if one process had run everything.

Refused, naming the folders and what differs: a folder that is not a run's; shards of
different runs (plan digest) or a shard given twice or missing; guest binaries or QEMU
versions that differ between folders; one record key with different values in two folders
(the same key with the same value is kept once)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..cache import atomic_write
from ..errors import ForkdiffError
from ..prepare import kernel_records
from ..results.elves import ELF_FILE
from ..results.folder import RUN_JSON
from ..results.meta import RunMeta
from ..results.observations import FILENAME, read_records
from ..results.provenance import GUEST_BINARIES, QEMU_VERSION
from . import sweep_parts

SHARD_FILE = "shard.json"
SAME = ("value", "values")  # what must agree when two folders hold the same key


@dataclass
class Merged:
    out: Path
    records: int
    duplicates: int
    meta: dict


def _load(folder: Path) -> tuple[dict, dict | None]:
    run = folder / RUN_JSON
    if not (folder / FILENAME).is_file() or not run.is_file():
        raise ForkdiffError(f"{folder} is not a run folder ({FILENAME} or run.json missing)",
                            "give folders written by 'forkdiff vm-test --shard i/n --out DIR'")
    shard = folder / SHARD_FILE
    return json.loads(run.read_text()), json.loads(shard.read_text()) if shard.is_file() else None


def _same(what: str, folders: list[Path], values: list) -> None:
    first = values[0]
    for folder, v in zip(folders, values, strict=True):
        if v is None:
            raise ForkdiffError(f"{folder}/run.json does not record the {what}",
                                "rerun that shard with this version of forkdiff")
        if v != first:
            raise ForkdiffError(f"{folders[0]} and {folder} were made with different {what}: "
                                f"{json.dumps(first)[:300]} vs {json.dumps(v)[:300]}",
                                f"run every shard with the same {what} (same forkdiff, same image)")


def _check_shards(folders: list[Path], shards: list[dict | None]) -> None:
    if all(s is None for s in shards):
        return
    for folder, s in zip(folders, shards, strict=True):
        if s is None:
            raise ForkdiffError(f"{folder} is not a shard ({SHARD_FILE} missing) but others are",
                                "merge the shards of one run only")
    first = shards[0]
    for folder, s in zip(folders, shards, strict=True):
        if (s["plan"], s["of"]) != (first["plan"], first["of"]):
            raise ForkdiffError(f"{folders[0]} and {folder} are shards of different runs "
                                f"(plan {first['plan']} of {first['of']} vs {s['plan']} of {s['of']})",
                                "run every shard with the same options and shard count")
    seen: dict[int, Path] = {}
    for folder, s in zip(folders, shards, strict=True):
        if s["shard"] in seen:
            raise ForkdiffError(f"shard {s['shard']}/{s['of']} given twice: {seen[s['shard']]} and {folder}",
                                "give each shard folder once")
        seen[s["shard"]] = folder
    missing = [i for i in range(1, first["of"] + 1) if i not in seen]
    if missing:
        n = first["of"]
        raise ForkdiffError(f"shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing "
                            "from the merge", "run the missing shards, then merge all of them")


VOLATILE = ("build_seconds", "built_at")  # differ between two builds of the same kernel


def same_kernel(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k not in VOLATILE} == {k: v for k, v in b.items() if k not in VOLATILE}


def _kernel_records(folders: list[Path]) -> dict[str, str]:
    """kernels/<variant>-<profile>.json of every folder (orchestrator.prepare.kernel_records), one per
    kernel; two folders that booted different kernels of one variant and profile are refused."""
    texts: dict[str, tuple[str, Path]] = {}
    for folder in folders:
        for path in sorted((Path(folder) / kernel_records.FOLDER).glob("*.json")):
            text = path.read_text()
            if path.name in texts:
                first, where = texts[path.name]
                if not same_kernel(json.loads(first), json.loads(text)):
                    raise ForkdiffError(f"{where} and {folder} ran different kernels "
                                        f"({path.name}: build or bzImage differ)",
                                        "build the kernels once and 'forkdiff kernel import' them "
                                        "on every shard")
                continue
            texts[path.name] = (text, Path(folder))
    return {name: text for name, (text, _f) in texts.items()}


INSN_PROFILES = "insn-profile"  # orchestrator.analysis.insn_rows.PROFILE_DIR


def _insn_profiles(folders: list[Path]) -> dict[str, str]:
    """insn-profile/<variant>.json of every folder: one per kernel; shards that stored
    different profiles (another kernel, QEMU, guest binary or plan) are refused."""
    texts: dict[str, tuple[str, Path]] = {}
    for folder in folders:
        for path in sorted((Path(folder) / INSN_PROFILES).glob("*.json")):
            text = path.read_text()
            if path.name in texts:
                first, where = texts[path.name]
                if json.loads(first).get("key") != json.loads(text).get("key"):
                    raise ForkdiffError(f"{where} and {folder} hold different instruction profiles "
                                        f"for {path.stem} ({INSN_PROFILES}/{path.name})",
                                        "run the shards with the same kernels, QEMU and guest binaries")
                continue
            texts[path.name] = (text, Path(folder))
    return {name: text for name, (text, _f) in texts.items()}


def merge(out: Path, folders: list[Path]) -> Merged:
    if not folders:
        raise ForkdiffError("no shard folders to merge", "forkdiff merge OUT SHARD1 SHARD2 ...")
    out = Path(out)
    if (out / FILENAME).exists():
        raise ForkdiffError(f"{out} already holds {FILENAME}", "merge into a new folder")
    loaded = [_load(Path(f)) for f in folders]
    metas, shards = [m for m, _ in loaded], [s for _, s in loaded]
    _same("guest binaries", folders, [m.get(GUEST_BINARIES) for m in metas])
    _same("QEMU version", folders, [m.get(QEMU_VERSION) for m in metas])
    elves = [(Path(f) / ELF_FILE).read_text() if (Path(f) / ELF_FILE).is_file() else None for f in folders]
    _same("guest binary program headers (guest-elf.json)", folders, [json.loads(e) if e else None for e in elves])
    _check_shards([Path(f) for f in folders], shards)

    by_key: dict[str, tuple[dict, Path]] = {}
    lines: list[str] = []
    dups = 0
    for folder in folders:
        for rec in read_records(Path(folder) / FILENAME):
            key = rec.get("key")
            if isinstance(key, str) and key in by_key:
                other, where = by_key[key]
                if any(rec.get(f) != other.get(f) for f in SAME):
                    raise ForkdiffError(
                        f"record {key} differs between {where} and {folder}: "
                        f"{json.dumps(other.get('value'))[:200]} vs {json.dumps(rec.get('value'))[:200]}",
                        "the shards overlap and disagree: rerun the shard(s) into fresh folders")
                dups += 1
                continue
            if isinstance(key, str):
                by_key[key] = (rec, Path(folder))
            lines.append(json.dumps(rec, separators=(",", ":")) + "\n")
    if shards[0] is not None:  # every shard is here: split sweeps are whole again
        lines = [json.dumps(r, separators=(",", ":")) + "\n"
                 for r in sweep_parts.join([json.loads(x) for x in lines])]
    kernels = _kernel_records(folders)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in kernels.items():
        atomic_write(out / kernel_records.FOLDER / name, text)
        (out / kernel_records.FOLDER / name).chmod(0o644)
    for name, text in _insn_profiles(folders).items():
        atomic_write(out / INSN_PROFILES / name, text)
    atomic_write(out / FILENAME, "".join(lines))
    atomic_write(out / ELF_FILE, elves[0])
    meta = RunMeta.from_dict(metas[0])
    meta.run = out.name
    meta.merged_from = ", ".join(str(f) for f in folders)
    meta.suite_wall_s = {}  # per-shard figures: kept in the shard folders
    for folder, m, s in zip(folders, metas, shards, strict=True):
        tag = f"shard {s['shard']}/{s['of']}" if s else str(folder)
        meta.extra[f"{tag} suites wall s"] = m.get("suites wall s")
    meta.save(out)
    return Merged(out, len(lines), dups, meta.to_dict())
