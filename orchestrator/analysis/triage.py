"""What a reader of a FAIL needs first: the first divergence and the failing rows grouped by
kind, each rule said once (the report, report.md and the terminal summary open with it).

First divergence: the failing row that comes first in run order (suites in the order they run,
then kernel, scenario, and the smallest k or VMA count), with the kernel function or
allocation site the row names (a fault sweep's injected site, a kmemleak stack's first frame).

Groups: failing rows of one kind: verdict, suite, kernel, measurement and what they are about
(the cache of a leak, the site of the failure): how many, the scenarios, the k or VMA range,
one example, and the rule once."""

from __future__ import annotations

import re

import pandas as pd

from ..results.verdicts import FAILING

SUITE_ORDER = ("maps", "faults", "counts", "spawn")
_KEY = re.compile(r"^(k|vmas)=(\d+)$")
_SITE = re.compile(r"failure at ([A-Za-z_][\w.]*) \(([\w]+)")
_STACK = re.compile(r"from ([A-Za-z_]\w*)\+0x")
_CACHE = re.compile(r"^([a-z_]+) [+-]\d")


def _key_num(key: str) -> tuple[str, int]:
    m = _KEY.match(str(key))
    return (m.group(1), int(m.group(2))) if m else ("", 1 << 62)  # a whole-job row after its steps


def site_of(row: dict) -> str:
    """The kernel function or allocation site a failing row names ('' when none)."""
    detail = str(row.get("detail", ""))
    if m := _SITE.search(detail):
        return f"{m.group(1)} ({m.group(2)})"
    if m := _STACK.search(detail):
        return m.group(1)
    return ""


def about(row: dict) -> str:
    """What a row is about beyond its measurement: the cache of a leak/allocation row."""
    m = _CACHE.match(str(row.get("observed", "")))
    return m.group(1) if m else ""


def natural(text: str) -> tuple:
    """'total-421' before 'total-1621': digit runs compare as numbers."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text)))


def _order(row: dict) -> tuple:
    """Run order: suites as they run, then kernel, the smallest k or VMA count, scenario."""
    suite = row.get("suite", "")
    kind, num = _key_num(row.get("key", ""))
    return (SUITE_ORDER.index(suite) if suite in SUITE_ORDER else len(SUITE_ORDER),
            str(row.get("variant", "")), num, natural(row.get("scenario", "")), str(row.get("key", "")))


def failing_rows(df: pd.DataFrame) -> list[dict]:
    return sorted(df[df["verdict"].isin(FAILING)].to_dict(orient="records"), key=_order)


def first_divergence(df: pd.DataFrame) -> dict | None:
    """The first failing row in run order, with its site, or None."""
    rows = failing_rows(df)
    if not rows:
        return None
    r = rows[0]
    return {**r, "site": site_of(r), "about": about(r)}


def groups(df: pd.DataFrame) -> list[dict]:
    """Failing rows grouped by kind, in run order of their first row."""
    out: dict[tuple, dict] = {}
    for r in failing_rows(df):
        key = (r["verdict"], r["suite"], r["variant"], r["measurement"], about(r), site_of(r))
        g = out.get(key)
        if g is None:
            g = out[key] = {"verdict": r["verdict"], "suite": r["suite"], "variant": r["variant"],
                            "model": r["model"], "measurement": r["measurement"], "about": about(r),
                            "site": site_of(r), "count": 0, "scenarios": [], "keys": [],
                            "example": r, "rule": r["rule"]}
        g["count"] += 1
        if r["scenario"] not in g["scenarios"]:
            g["scenarios"].append(r["scenario"])
        g["keys"].append(r["key"])
    for g in out.values():
        g["range"] = key_range(g["keys"])
        g["scenarios"].sort(key=natural)
    return list(out.values())


def key_range(keys: list[str]) -> str:
    """'k=13..92' / 'vmas=121..6421' / 'k=5' over the rows' keys ('' when they have none)."""
    parsed = [_key_num(k) for k in keys]
    kinds = {kind for kind, _ in parsed if kind}
    if len(kinds) != 1:
        return ""
    kind = kinds.pop()
    nums = sorted(n for k, n in parsed if k == kind)
    return f"{kind}={nums[0]}" if nums[0] == nums[-1] else f"{kind}={nums[0]}..{nums[-1]}"


def describe(g: dict) -> str:
    """One line for a group."""
    what = " ".join(x for x in (g["measurement"], g["about"]) if x)
    where = f" at {g['site']}" if g["site"] else ""
    rng = f" {g['range']}" if g["range"] else ""
    ex = g["example"]
    return (f"{g['count']} x {g['verdict']}: {g['suite']}/{g['variant']} {what}{where}{rng} "
            f"[{', '.join(g['scenarios'])}]; e.g. {ex['key'] or ex['scenario']}: "
            f"observed {ex['observed']}, predicted {ex['predicted']}")


def describe_first(r: dict) -> str:
    what = " ".join(x for x in (r["measurement"], r.get("about", "")) if x)
    where = f" at {r['site']}" if r.get("site") else ""
    return (f"{r['suite']} on {r['variant']} (model {r['model'] or '-'}), scenario {r['scenario']}"
            f"{', ' + r['key'] if r['key'] else ''}: {what}{where}: observed {r['observed']}, "
            f"predicted {r['predicted']}")
