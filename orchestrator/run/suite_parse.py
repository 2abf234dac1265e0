"""Turn a guest program's JSON lines into observation measurements (docs/records.md).

Each line becomes one ParsedRecord: its measurement name (the line's "event", or its
"measurement"), its repeat (fault sweeps: k; forkcount: the repeat number), the main value,
and every other field of the line as `values`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

# Programs whose output carries another program's records: faultsweep --observers copies the
# observe program's records after its own (guest/observe.c).
ALSO_FROM = {"faultsweep": ("observe",)}


@dataclass(frozen=True)
class ParsedRecord:
    measurement: str
    repeat: int | None
    value: object
    values: dict


@dataclass
class ParsedOutput:
    records: list[ParsedRecord] = field(default_factory=list)
    bad_lines: int = 0


def _main_value(measurement: str, rec: dict) -> object:
    if measurement in ("layout", "child", "parent_before", "parent_after"):
        return rec.get("map_count")
    if measurement == "spawn":
        # the median of the measured loop's time slices (guest/spawn.c): a slice something
        # else ran in does not move it; records made before it existed have the mean only
        return rec.get("forks_per_s_median", rec.get("forks_per_s"))
    if measurement == "check_count":
        return rec.get("checks")
    if measurement == "fault":
        return rec.get("fork_result")
    if measurement == "not_reached":
        return rec.get("k")
    if measurement == "sweep_end":
        return rec.get("last_k")
    if measurement == "repeat":
        return rec.get("delta", {}).get("maple_node", {}).get("alloc")
    if measurement == "summary":
        return rec.get("median", {}).get("maple_node", {}).get("alloc")
    if measurement == "error":
        return rec.get("message")
    if measurement == "observer":
        return rec.get("iterations")
    return None


def parse_line(line: str) -> ParsedRecord | None:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(rec, dict):
        return None
    measurement = rec.get("event") or rec.get("measurement")
    if not isinstance(measurement, str):
        return None
    repeat = (rec.get("k") if measurement == "fault" else rec.get("repeat") if measurement == "repeat"
              else rec.get("observer") if measurement == "observer" else None)
    values = {k: v for k, v in rec.items() if k not in ("event", "measurement")}
    return ParsedRecord(measurement, repeat, _main_value(measurement, rec), values)


def parse_output(program: str, stdout: str) -> ParsedOutput:
    out = ParsedOutput()
    for line in stdout.splitlines():
        if not line.strip():
            continue
        pr = parse_line(line)
        if pr is None or pr.values.get("prog") not in (program, *ALSO_FROM.get(program, ())):
            out.bad_lines += 1
            continue
        out.records.append(pr)
    return out
