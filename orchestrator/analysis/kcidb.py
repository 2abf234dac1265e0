"""A results folder as a KCIDB report (KernelCI's common results database), valid under the
latest schema kcidb-io knows, checked with kcidb-io's own validator before it is written.

What maps to what:
  checkout  one per kernel tree + patch set (the baseline's: the tree + patches/baseline/, or
            the tree as it is on 6.1 and, with PATCHES=, on 7.x; the patched kernel's: the
            tree + PATCHES=), from <out>/kernels/*.json
            (orchestrator/prepare/kernel_records.py): patchset_hash as KCIDB defines it (sha256 over the
            newline-terminated sha256 of each patch, in order; "" without patches)
  build     one per kernel variant and profile: its config (tinyconfig + the kconfig/
            fragments, the .config's sha256), compiler, architecture, status PASS (a build that
            failed stopped the run before any observation)
  test      one per comparison group of verdicts.jsonl: (kernel, model, axis, suite, scenario,
            measurement), so a fault sweep's per-k rows are one test; path
            forkdiff.<suite>.<scenario>.<measurement> (plus .model-<m> when the kernel was
            compared with another model than its own source shows, its record's dup_mmap_model); status the highest-priority (KCIDB's
            order FAIL > ERROR > MISS > PASS > DONE > SKIP) of its rows' statuses (STATUS);
            failing rows' details (a crash's console excerpt, a kmemleak report, what differs)
            as log_excerpt, cut to the schema's 16,384 characters; a group of one row with a
            number (spawn's forks/s per VMA count, improvement %) carries it as the test's
            `number` ({value, unit}); a kernel spawn measured without a forks/s verdict of its
            own (the one its work model is fitted on) gets a DONE test per VMA count with its
            forks/s as `number` (the schema: DONE for a test whose output is the number)

Ids are "<origin>:" + a sha256 of what the object is, never of when or where it was made:
checkout = tree identity + patch hashes; build = checkout + variant, profile, .config hash,
compiler; test = build + axis, model, suite, scenario, measurement (+ --label). The same
folder exported twice gives the same bytes, and two shards of one run give the same ids for
the same checkouts and builds and disjoint tests, so each can be submitted on its own.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from ..errors import ForkdiffError
from ..prepare.kernel_records import FOLDER as KERNELS_FOLDER
from ..prepare.kernel_records import read_records
from ..results import verdicts as vd
from ..results.folder import OBSERVATIONS_JSONL, RUN_JSON, VERDICTS_JSONL
from ..results.observations import iter_records
from ..suite_defs import REGISTRY as SUITES
from .rates import spawn_rates

ORIGIN = "forkdiff"
LOG_EXCERPT_MAX = 16384  # the schema's maxLength of every log_excerpt

# forkdiff verdict -> KCIDB status (the schema's "status" definition):
#   match     PASS   the comparison ran and the kernel did what the model predicts
#   mismatch  FAIL   the comparison ran and the kernel differs from the model
#   crashed   FAIL   the kernel oopsed, panicked, WARNed, locked up, reset or leaked memory
#                    (kmemleak) during the case: the tested code is faulty
#   hung      ERROR  the case did not end within its time-out: the tested code's state is unknown
#   error     ERROR  the case did not complete (the guest program failed, no final record, a
#                    kernel config the simulator does not model)
#   info      DONE   a note that judges nothing (e.g. defaults assumed for old records)
STATUS = {"match": "PASS", "mismatch": "FAIL", "crashed": "FAIL", "hung": "ERROR",
          "error": "ERROR", "info": "DONE", "skipped": "SKIP"}
# KCIDB's priority order, highest first: a group's status is its rows' highest.
PRIORITY = ("FAIL", "ERROR", "MISS", "PASS", "DONE", "SKIP")
# the order failing rows are shown in a log excerpt: what killed the kernel first
_SHOW_FIRST = {"crashed": 0, "hung": 1, "error": 2, "mismatch": 3}
_UNITS = {"forks_per_s": "forks/s", "improvement_pct": "%"}
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:\s|$)")
_SEGMENT = re.compile(r"[^A-Za-z0-9_-]+")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class ExportOptions:
    origin: str = ORIGIN
    label: str = ""  # mixed into every test id: one per run, the same for each of its shards
    tree_name: str = ""
    git_url: str = ""
    git_branch: str = ""


def stable_id(origin: str, *parts: str) -> str:
    """"<origin>:<sha256 of the parts>" (NUL-separated, so parts cannot run into each other)."""
    return f"{origin}:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


def patchset_hash(patch_sha256s: Iterable[str]) -> str:
    """KCIDB's patchset_hash: sha256 over the newline-terminated sha256 (hex) of each patch, in
    order ("sha256sum *.patch | cut -c-64 | sha256sum | cut -c-64"); "" without patches."""
    hashes = list(patch_sha256s)
    if not hashes:
        return ""
    return hashlib.sha256("".join(f"{h}\n" for h in hashes).encode()).hexdigest()


def path_segment(text: str) -> str:
    """A KCIDB path segment ([a-zA-Z0-9_-]+): anything else becomes "_"."""
    return _SEGMENT.sub("_", text) or "_"


def test_path(suite: str, scenario: str, measurement: str, own_model: str = "", model: str = "") -> str:
    """own_model: the model the kernel's own source shows (its record's dup_mmap_model, e.g.
    "patched" for 7.x's baseline = the tree as it is); `.model-<m>` is added only when the
    comparison used another one (MODEL=)."""
    parts = ["forkdiff", suite, *([scenario] if scenario else []), measurement]
    if model and own_model in ("baseline", "patched") and model != own_model:
        parts.append(f"model-{model}")
    return ".".join(path_segment(p) for p in parts)


def excerpt(text: str, limit: int = LOG_EXCERPT_MAX) -> str:
    """Text for a log_excerpt: NUL characters escaped, cut to the schema's length with a note."""
    text = text.replace("\0", "\\0")
    if len(text) <= limit:
        return text
    note = "\n[... cut: {} more characters; see verdicts.jsonl]"
    keep = limit - len(note.format(len(text)))  # the count has at most as many digits as len(text)
    note = note.format(len(text) - keep)
    return text[:keep] + note


def _rfc3339(stamp: str) -> str | None:
    """A timestamp as RFC 3339 (the schema's date-time), or None when it is not one."""
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.strptime(stamp, fmt).isoformat()
        except (TypeError, ValueError):
            continue
    try:
        dt = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    return dt.isoformat() if dt.tzinfo else None


# ----------------------------------------------------------------- reading the folder
def _load(out: Path) -> tuple[pd.DataFrame, dict[tuple[str, str], dict], dict]:
    if not out.is_dir():
        raise ForkdiffError(f"{out} is not a folder", "give a results folder (make vm-test OUT=...)")
    has_run = (out / RUN_JSON).is_file() or (out / OBSERVATIONS_JSONL).is_file()
    if not has_run:
        raise ForkdiffError(f"{out} is not a forkdiff results folder (no run.json, no observations.jsonl)",
                            "give the folder `make vm-test` or `forkdiff run` wrote")
    if not (out / VERDICTS_JSONL).is_file():
        raise ForkdiffError(f"no verdicts in {out} (verdicts.jsonl missing)",
                            f"run 'forkdiff compare {out}' first")
    kernels = read_records(out)
    if not kernels:
        raise ForkdiffError(f"{out} records no kernel builds ({KERNELS_FOLDER}/*.json missing: the "
                            "run predates them, or the folder was merged without them)",
                            "run the suites again into a fresh folder (OUT=...); forkdiff records "
                            "each kernel it boots there")
    try:
        df = vd.read(out / VERDICTS_JSONL)
    except (ValueError, KeyError) as err:
        raise ForkdiffError(f"{out / 'verdicts.jsonl'} is not a verdict table: {err}",
                            f"run 'forkdiff compare {out}' again") from None
    first: dict = {}
    obs = out / OBSERVATIONS_JSONL
    if obs.is_file():
        for r in iter_records(obs):
            sc = r.get("scenario")
            name = sc.get("name", "") if isinstance(sc, dict) else str(sc or "")
            key = (r.get("suite"), r.get("variant"), r.get("profile"), name)
            stamp = _rfc3339(r.get("timestamp", ""))
            if stamp and (key not in first or stamp < first[key]["start_time"]):
                first[key] = {"start_time": stamp, "qemu_mode": r.get("qemu_mode", ""),
                              "icount": bool(r.get("icount"))}
            kc = r.get("kernel_config") or {}
            rec = kernels.get((r.get("variant"), r.get("profile")))
            if rec and kc.get("sha256") and rec["config_sha256"] and kc["sha256"] != rec["config_sha256"]:
                raise ForkdiffError(
                    f"{out}: observations of {r.get('variant')}/{r.get('profile')} were made on a "
                    f"kernel whose .config ({kc['sha256'][:12]}) is not the recorded build's "
                    f"({rec['config_sha256'][:12]}): two kernels in one folder (a resumed run?)",
                    "run the suites again into a fresh folder")
    return df, kernels, first


# ----------------------------------------------------------------- objects
def _checkout(rec: dict, opts: ExportOptions) -> dict:
    tree = rec["tree"]
    hashes = [p["sha256"] for p in rec["patches"]]
    ident = tree["identity"]
    c = {"id": stable_id(opts.origin, "checkout", ident, *hashes), "origin": opts.origin,
         "patchset_hash": patchset_hash(hashes), "valid": True}
    names = ", ".join(p["name"] for p in rec["patches"])
    c["comment"] = (f"{ident} (Linux {tree['version']})"
                    + (f" + {len(hashes)} patch{'es' if len(hashes) > 1 else ''}: {names}" if hashes else ""))
    kind, _, rest = ident.partition(":")
    if kind == "debian":
        c["tree_name"] = "debian-" + rest.partition(":")[0]
    elif kind == "git":
        commit, _, diff = rest.partition(":")
        if re.fullmatch(r"[0-9a-f]{40}", commit) and _EMPTY_SHA256.startswith(diff):
            c["git_commit_hash"] = commit  # a clean working tree: exactly that commit
    if opts.tree_name:
        c["tree_name"] = opts.tree_name
    if opts.git_url:
        c["git_repository_url"] = opts.git_url
    if opts.git_branch:
        c["git_repository_branch"] = opts.git_branch
    c["misc"] = {"tree_identity": ident, "kernel_version": tree["version"],
                 "patches": [{"name": p["name"], "sha256": p["sha256"]} for p in rec["patches"]]}
    return c


def _build(rec: dict, checkout_id: str, opts: ExportOptions) -> dict:
    b = {"id": stable_id(opts.origin, "build", checkout_id, rec["variant"], rec["profile"],
                         rec["config_sha256"], rec["compiler"]),
         "origin": opts.origin, "checkout_id": checkout_id, "status": "PASS",
         "architecture": rec["arch"], "compiler": rec["compiler"],
         "config_name": "+".join(["tinyconfig", *(f["name"].removesuffix(".config")
                                                  for f in rec["fragments"])]),
         "comment": f"{rec['release']} ({rec['variant']} kernel, {rec['profile']} profile)",
         "misc": {"variant": rec["variant"], "profile": rec["profile"], "release": rec["release"],
                  "config_sha256": rec["config_sha256"], "bzimage_sha256": rec["bzimage"]["sha256"],
                  "bzimage_size": rec["bzimage"]["size"], "dup_mmap_model": rec["dup_mmap_model"],
                  "fragments": rec["fragments"], "forkdiff_build_key": rec["build_key"]}}
    seconds = rec.get("build_seconds")
    if isinstance(seconds, int | float) and seconds >= 0:
        b["duration"] = float(seconds)
    done = _rfc3339(rec.get("built_at", ""))
    if done and "duration" in b:
        b["start_time"] = (datetime.fromisoformat(done) - timedelta(seconds=b["duration"])).isoformat()
    return b


def kernel_of(row: dict) -> tuple[str, str]:
    """(variant, profile) of the kernel a verdict row judges: the variant axis's rows are the
    patched kernel's (its forks/s against the baseline's); spawn's rows name the profile its
    measurements were made on (compare fills it in), older folders' leave it empty."""
    variant = "patched" if row["variant"] == "both" else row["variant"]
    suite = SUITES.get(row["suite"])  # spawn's rows leave the profile: its suite's (suite_defs)
    return variant, row["profile"] or (suite.profile if suite is not None else "")


def _log_excerpt(rows: list[dict]) -> str:
    bad = sorted((r for r in rows if r["verdict"] in vd.FAILING),
                 key=lambda r: _SHOW_FIRST.get(r["verdict"], 9))
    if not bad:
        return ""
    parts = []
    for r in bad:
        head = f"{r['verdict'].upper()} {r['key'] or r['measurement']}: observed={str(r['observed'])[:300]}"
        if r["predicted"]:
            head += f" predicted={str(r['predicted'])[:300]}"
        parts.append(head + (f"\n{r['detail']}" if r["detail"] else ""))
    return excerpt("\n\n".join(parts) + "\n")


def _number(rows: list[dict]) -> dict | None:
    if len(rows) != 1 or not _NUMBER.match(str(rows[0]["observed"])):
        return None
    n = {"value": float(str(rows[0]["observed"]).split()[0])}
    if rows[0]["measurement"] in _UNITS:
        n["unit"] = _UNITS[rows[0]["measurement"]]
    return n


def _test(group: tuple, rows: list[dict], build_id: str, first: dict, opts: ExportOptions,
          own_model: str = "") -> dict:
    variant, profile, model, axis, suite, scenario, measurement = group
    statuses = {STATUS[r["verdict"]] for r in rows}
    status = next(s for s in PRIORITY if s in statuses)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in vd.VERDICTS}
    counts = {v: n for v, n in counts.items() if n}
    t = {"id": stable_id(opts.origin, "test", build_id, axis, model, suite, scenario, measurement,
                         opts.label),
         "origin": opts.origin, "build_id": build_id, "status": status,
         "path": test_path(suite, scenario, measurement, own_model or variant, model),
         "comment": (f"{axis}: {suite} {scenario or '(all scenarios)'} {measurement}, "
                     f"{rows[0]['variant']} kernel" + (f" vs {model} model" if model else "")
                     + ": " + ", ".join(f"{n} {v}" for v, n in counts.items())),
         "misc": {"axis": axis, "suite": suite, "kernel_variant": rows[0]["variant"],
                  "model": model, "profile": profile, "scenario": scenario,
                  "measurement": measurement, "comparisons": len(rows), "verdicts": counts,
                  "rule": rows[0]["rule"],
                  "failing": [{"key": r["key"], "verdict": r["verdict"],
                               "observed": str(r["observed"])[:200],
                               "predicted": str(r["predicted"])[:200]}
                              for r in rows if r["verdict"] in vd.FAILING][:20]}}
    log = _log_excerpt(rows)
    if log:
        t["log_excerpt"] = log
    number = _number(rows)
    if number is not None:
        t["number"] = number
    env = first.get((suite, variant, profile, scenario))
    if env:
        t["start_time"] = env["start_time"]
        if env["qemu_mode"]:
            t["environment"] = {"comment": f"QEMU x86_64 guest ({env['qemu_mode']})",
                                "misc": {"qemu_mode": env["qemu_mode"], "icount": env["icount"]}}
    return t


def _rate_tests(out: Path, groups: dict, builds: dict, first: dict, opts: ExportOptions) -> list[dict]:
    """A DONE test per spawn VMA count of each kernel measured without a forks/s verdict of its
    own (the kernel spawn's work model is fitted on: its rates are the model's input, not
    judged), so that every kernel's forks/s is in the report as its test's `number`."""
    judged = {(k[0], k[1], k[4], k[5]) for k in groups if k[6] == "forks_per_s"}
    tests = []
    for r in spawn_rates(iter_records(out / OBSERVATIONS_JSONL)):
        scenario = f"total-{r['vmas']}"
        kernel = (r["variant"], r["profile"])
        if kernel not in builds or (*kernel, "spawn", scenario) in judged:
            continue
        build_id = builds[kernel]["id"]
        t = {"id": stable_id(opts.origin, "test", build_id, "measurement", "", "spawn", scenario,
                             "forks_per_s", opts.label),
             "origin": opts.origin, "build_id": build_id, "status": "DONE",
             "path": test_path("spawn", scenario, "forks_per_s"),
             "number": {"value": round(r["forks_per_s"], 6), "unit": _UNITS["forks_per_s"]},
             "comment": (f"measurement: spawn {scenario} forks_per_s, {r['variant']} kernel: "
                         f"{r['forks_per_s']:.2f} forks/s (mean of {r['runs']} run"
                         f"{'s' if r['runs'] > 1 else ''}); not judged: the work model is fitted "
                         "on this kernel's rates"),
             "misc": {"axis": "measurement", "suite": "spawn", "kernel_variant": r["variant"],
                      "profile": r["profile"], "scenario": scenario, "measurement": "forks_per_s",
                      "vmas": r["vmas"], "runs": r["runs"]}}
        env = first.get(("spawn", r["variant"], r["profile"], scenario))
        if env:
            t["start_time"] = env["start_time"]
            if env["qemu_mode"]:
                t["environment"] = {"comment": f"QEMU x86_64 guest ({env['qemu_mode']})",
                                    "misc": {"qemu_mode": env["qemu_mode"], "icount": env["icount"]}}
        tests.append(t)
    return tests


def build_report(out: Path, opts: ExportOptions = ExportOptions()) -> dict:
    """The KCIDB report of a results folder (not yet validated)."""
    latest = schema()
    out = Path(out)
    df, kernels, first = _load(out)
    checkouts, builds = {}, {}
    for (variant, profile), rec in sorted(kernels.items()):
        c = _checkout(rec, opts)
        checkouts[c["id"]] = c
        builds[(variant, profile)] = _build(rec, c["id"], opts)
    groups: dict[tuple, list[dict]] = {}
    for row in df.to_dict(orient="records"):
        variant, profile = kernel_of(row)
        if (variant, profile) not in builds and not row["profile"]:
            # a folder compared before spawn rows named their profile: the variant's only kernel
            # (spawn ran alone on the perf kernels then)
            mine = [p for v, p in builds if v == variant]
            profile = mine[0] if len(mine) == 1 else profile
        if (variant, profile) not in builds:
            raise ForkdiffError(
                f"{out}: verdicts judge the {variant}/{profile} kernel, but {KERNELS_FOLDER}/ has no "
                f"record of it (recorded: {', '.join('/'.join(k) for k in sorted(builds))})",
                "export a folder whose suites ran in it (a merged folder needs every shard's "
                f"{KERNELS_FOLDER}/*.json)")
        key = (variant, profile, row["model"], row["axis"], row["suite"], row["scenario"],
               row["measurement"])
        groups.setdefault(key, []).append(row)
    tests = [_test(k, rows, builds[k[:2]]["id"], first, opts, kernels[k[:2]].get("dup_mmap_model", ""))
             for k, rows in groups.items()]
    tests += _rate_tests(out, groups, builds, first, opts)
    return {"version": {"major": latest.major, "minor": latest.minor},
            "checkouts": sorted(checkouts.values(), key=lambda o: o["id"]),
            "builds": sorted(builds.values(), key=lambda o: o["id"]),
            "tests": sorted(tests, key=lambda o: (o["build_id"], o["path"], o["id"]))}


def schema():
    """kcidb-io's latest schema version (a kcidb_io.schema Version class)."""
    try:
        from kcidb_io.schema import LATEST
    except ImportError:
        raise ForkdiffError("kcidb-io is not installed (forkdiff validates KCIDB reports with it)",
                            "run 'make setup'") from None
    return LATEST


def validate(data: dict) -> None:
    """kcidb-io's own validator, against exactly its latest schema; a report it refuses is a
    ForkdiffError naming the object and the field."""
    import jsonschema

    latest = schema()
    try:
        latest.validate_exactly(data)
    except jsonschema.exceptions.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ForkdiffError(f"the KCIDB report is not valid under schema {latest}: at {where}: "
                            f"{err.message[:500]}",
                            "this is a forkdiff bug when the report came from `forkdiff export "
                            "kcidb` unchanged; check the --git-url/--tree-name values given") from None


def export(out: Path, dest: Path, opts: ExportOptions = ExportOptions()) -> dict:
    """Build, validate and write the report; returns it."""
    data = build_report(out, opts)
    validate(data)
    text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(text)
    tmp.replace(dest)
    return data
