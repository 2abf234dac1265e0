"""What `forkdiff history` and a run's report show of the results database
(orchestrator/analysis/history_db.py): verdicts and spawn forks/s per tree version over time,
as a table and a plot, and which run first diverged.

Table: one row per run, kernel and suite (oldest run first within a tree): when it started,
tree and version, the kernel's patches, kernel (variant/profile), suite, verdict, match and
mismatch counts, and for spawn the forks/s at each VMA count, side by side. A kernel measured
by spawn without verdicts of its own (the kernel spawn's work model is fitted on) has verdict
"-" and its rates (history_record).

Divergence: a line is one key of the database: tree, the kernel's patches (their hashes),
kernel variant and profile, and suite; its runs in the order they started, the tree's version
going along. A line diverged at its first FAIL that follows a PASS; the run that first
diverged is the earliest such FAIL over every line. Lines that failed from their first run
are said too (nothing passed before them to diverge from)."""

from __future__ import annotations

import json

import pandas as pd

FAIL, PASS, NONE = "FAIL", "PASS", "-"
# A run's report shows this many of its tree's latest runs (this one among them); the
# divergence is still found over all of them, and `forkdiff history` lists every run. The plot
# has a column per run: at 135 runs it was 22,000 pixels wide and took 4.4 s to draw.
REPORT_RUNS = 20
LINE = ["tree", "patchset", "variant", "profile", "suite"]


def _patch_names(text: str) -> str:
    try:
        names = [p["name"] for p in json.loads(text or "[]")]
    except (TypeError, ValueError, KeyError):
        return ""
    return ", ".join(n.removesuffix(".patch") for n in names) or "(none)"


def frame(tables: dict[str, pd.DataFrame], tree: str | None = None) -> pd.DataFrame:
    """The history table's rows (not yet formatted), oldest first within each tree."""
    runs, results, rates = tables["runs"], tables["results"], tables["rates"]
    res = results
    df = res.merge(runs[["run_id", "started", "tree", "tree_version", "folder", "models"]], on="run_id")
    if tree:
        df = df[df["tree"].str.contains(tree, regex=False)]
    df = df.assign(kernel=df["variant"] + "/" + df["profile"],
                   patch_names=[_patch_names(p) for p in df["patches"]])
    if not rates.empty and not df.empty:
        wide = rates.pivot_table(index=["run_id", "variant", "profile"], columns="vmas",
                                 values="forks_per_s", aggfunc="mean")
        wide.columns = [int(c) for c in wide.columns]
        spawn = df["suite"] == "spawn"
        for n in wide.columns:
            df[n] = [wide[n].get((r.run_id, r.variant, r.profile)) if s else None
                     for r, s in zip(df.itertuples(), spawn, strict=True)]
            if df[n].isna().all():
                df = df.drop(columns=[n])
    return df.sort_values(["tree", "started", "run_id", "variant", "profile", "suite"],
                          ignore_index=True)


def rate_columns(df: pd.DataFrame) -> list[int]:
    return sorted(c for c in df.columns if isinstance(c, int))


def table_text(df: pd.DataFrame) -> str:
    """The table for the terminal."""
    if df.empty:
        return "(no runs)"
    out = pd.DataFrame({
        "started (UTC)": df["started"].str.slice(0, 16).str.replace("T", " "),
        "tree": df["tree"], "version": df["tree_version"], "run": df["run_id"],
        "patches": df["patch_names"].str.slice(0, 40), "kernel": df["kernel"],
        "suite": df["suite"], "verdict": df["verdict"], "match": df["match"],
        "mismatch": df["mismatch"]})
    for n in rate_columns(df):
        out[f"forks/s@{n}"] = [f"{v:,.1f}" if pd.notna(v) else "" for v in df[n]]
    return out.to_string(index=False)


def divergences(df: pd.DataFrame) -> dict:
    """{"first": the run that first diverged (a row dict) or None, "lines": per diverged line
    its first FAIL and the last PASS before it, "failing_from_start": lines whose first run
    failed}."""
    lines, from_start = [], []
    judged = df[df["verdict"].isin((PASS, FAIL))]
    for _key, grp in judged.groupby(LINE, sort=True):
        grp = grp.sort_values(["started", "run_id"])
        verdicts = list(grp["verdict"])
        if verdicts[0] == FAIL:
            from_start.append(grp.iloc[0].to_dict())
        passed = None
        for row in grp.to_dict(orient="records"):
            if row["verdict"] == PASS:
                passed = row
            elif passed is not None:
                lines.append({"fail": row, "last_pass": passed,
                              "passes_before": int((grp["started"] < row["started"]).sum())})
                break
    lines.sort(key=lambda d: (d["fail"]["started"], d["fail"]["run_id"]))
    return {"first": lines[0]["fail"] if lines else None, "lines": lines,
            "failing_from_start": from_start}


def describe_line(d: dict) -> str:
    f, p = d["fail"], d["last_pass"]
    same = ""
    if f["kernel_key"] and f["kernel_key"] == p["kernel_key"]:
        same = "; the same kernel (cache key) as that PASS: what changed is outside the kernel"
        if f.get("models") != p.get("models"):
            same += f" (models: {p.get('models')} -> {f.get('models')})"
    return (f"{f['tree']} {f['tree_version']}, {f['kernel']} {f['suite']}, patches "
            f"{f['patch_names']}: FAIL in run {f['run_id']} ({f['started']}, "
            f"{f['mismatch']} mismatches) after PASS in run {p['run_id']} "
            f"({p['tree_version']}, {p['started']}){same}")


def divergence_text(div: dict) -> list[str]:
    lines = []
    if div["first"] is not None:
        lines.append(f"first diverged: {describe_line(div['lines'][0])}")
        lines += [f"  also diverged: {describe_line(d)}" for d in div["lines"][1:]]
    else:
        lines.append("first diverged: none (no FAIL follows a PASS of the same tree, patches, "
                     "kernel and suite)")
    for r in div["failing_from_start"]:
        lines.append(f"failing from its first run: {r['tree']} {r['tree_version']}, {r['kernel']} "
                     f"{r['suite']}, patches {r['patch_names']} (run {r['run_id']})")
    return lines


def plot(df: pd.DataFrame, dest, div: dict | None = None, title: str = "") -> None:
    """history.png: forks/s per kernel and VMA count (top, when any) and the verdict of each
    kernel and suite (bottom), one column per run in the order they started."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = df.drop_duplicates("run_id").sort_values(["started", "run_id"])
    xpos = {r: i for i, r in enumerate(runs["run_id"])}
    labels = [f"{t}\n{v}\n{s[5:16].replace('T', ' ')}" for t, v, s
              in zip(runs["tree"].str.split(":").str[-1].str.rsplit("/").str[-1],
                     runs["tree_version"], runs["started"], strict=True)]
    cols = rate_columns(df)
    panels = 2 if cols else 1
    fig, axes = plt.subplots(panels, 1, figsize=(max(8.0, 1.6 * len(runs) + 6), 3.2 * panels + 0.8),
                             sharex=True, squeeze=False)
    if cols:
        ax = axes[0][0]
        spawn = df[df["suite"] == "spawn"]
        for (tree, kernel, _patches), grp in spawn.groupby(["tree", "kernel", "patch_names"]):
            grp = grp.sort_values("started")
            for n in cols:
                pts = grp[grp[n].notna()]
                if len(pts):
                    ax.plot([xpos[r] for r in pts["run_id"]], pts[n], "o-",
                            label=f"{tree.split(':')[-1]} {kernel} @{n} VMAs")
        ax.set_yscale("log")
        ax.set_ylabel("forks/s (guest)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax = axes[-1][0]
    keys = df.drop_duplicates(LINE)[LINE + ["kernel", "patch_names"]].reset_index(drop=True)
    ylab = []
    for i, k in enumerate(keys.itertuples()):
        ylab.append(f"{k.tree.split(':')[-1].rsplit('/')[-1]} {k.kernel} {k.suite}"
                    + (f" +{k.patch_names[:18]}" if k.patch_names != "(none)" else ""))
        sel = df[(df[LINE] == pd.Series(k._asdict())[LINE]).all(axis=1)]
        for verdict, style in ((PASS, dict(marker="o", color="tab:green")),
                               (FAIL, dict(marker="X", color="tab:red")),
                               (NONE, dict(marker="s", color="tab:gray"))):
            name = verdict if verdict != NONE else "no verdict (fitted on)"
            pts = sel[sel["verdict"] == verdict]
            if len(pts):
                ax.scatter([xpos[r] for r in pts["run_id"]], [i] * len(pts), s=80,
                           label=name if name not in ax.get_legend_handles_labels()[1] else None,
                           **style)
    if div and div.get("first") is not None:
        f = div["first"]
        row = keys.index[(keys[LINE] == pd.Series({c: f[c] for c in LINE})).all(axis=1)]
        if len(row):
            ax.annotate("first diverged", (xpos[f["run_id"]], row[0]), xytext=(0, 14),
                        textcoords="offset points", ha="center", color="tab:red", fontsize=8)
    ax.set_yticks(range(len(keys)), ylab, fontsize=7)
    ax.set_ylim(-0.7, len(keys) - 0.3)
    ax.set_ylabel("verdict")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xticks(range(len(runs)), labels, fontsize=7)
    ax.set_xlim(-0.5, len(runs) - 0.5)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(dest, dpi=100)
    plt.close(fig)


def report_section(out, db=None) -> dict | None:
    """The report's history (orchestrator/analysis/report.py): the tree's runs in the database
    when it holds runs of the folder's tree other than this one; writes plots/history.png.
    None when there is no database or no other run (a report never fails on history: an
    unreadable database is said in the section's place)."""
    from pathlib import Path

    from ..errors import ForkdiffError
    from . import history_db
    from .history_record import read_run, tree_of

    out = Path(out)
    path = Path(db).expanduser() if db else history_db.auto_path()
    if path is None or not path.is_file():
        return None
    try:
        this = read_run(out)
        tables = history_db.load(path)
    except ForkdiffError as err:
        return {"error": err.one_line(), "rows": [], "plot": "", "divergence": [], "columns": []}
    tree = this["tree"] or tree_of(this["tree_identity"], this["kernel_version"], "")[0]
    df = frame(tables)
    df = df[df["tree"] == tree]
    if df.empty or set(df["run_id"]) <= {this["run_id"]}:
        return None
    div = divergences(df)
    order = df.drop_duplicates("run_id").sort_values(["started", "run_id"])["run_id"].tolist()
    shown = order[-REPORT_RUNS:]
    if this["run_id"] in order and this["run_id"] not in shown:
        shown = shown[1:] + [this["run_id"]]
    df = df[df["run_id"].isin(shown)]
    df = df.drop(columns=[c for c in rate_columns(df) if df[c].isna().all()])
    first = div.get("first")
    (out / "plots").mkdir(exist_ok=True)
    plot(df, out / "plots" / "history.png",
         div if first is not None and first["run_id"] in shown else None,
         title=f"{tree}: the latest {len(shown)} of {len(order)} runs in {path.name}")
    rows = []
    for r in df.to_dict(orient="records"):
        rows.append({**{k: r[k] for k in ("started", "tree_version", "run_id", "patch_names", "kernel",
                                         "suite", "verdict", "match", "mismatch")},
                     "this": r["run_id"] == this["run_id"],
                     "rates": [r[n] if pd.notna(r[n]) else None for n in rate_columns(df)]})
    return {"error": "", "tree": tree, "db": str(path), "rows": rows, "columns": rate_columns(df),
            "plot": "plots/history.png", "divergence": divergence_text(div),
            "runs": int(df["run_id"].nunique()), "total_runs": len(order)}
