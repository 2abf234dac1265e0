"""Report rendering (orchestrator/analysis/report.py) from a stored verdict table and timing table."""

import re

import pandas as pd

from orchestrator.analysis import report
from orchestrator.analysis.timing import improvement_table
from orchestrator.results import verdicts as vd


def _row(**kw):
    base = dict(axis="kernel-vs-simulator", suite="faults", variant="patched", model="patched",
                profile="faults", scenario="mixed-small", measurement="fault_outcome", key="",
                observed="", predicted="", verdict="match", rule="exact", detail="")
    base.update(kw)
    return base


def _results(tmp_path, with_mismatch: bool):
    rows = [_row(key=f"k={k}", observed="ENOMEM" if k < 5 else "ok", predicted="ENOMEM" if k < 5 else "ok")
            for k in range(1, 8)]
    if with_mismatch:
        rows.append(_row(suite="maps", variant="baseline", model="baseline", measurement="map_count",
                         observed="30", predicted="31", verdict="mismatch"))
    vd.write(vd.frame(rows), tmp_path / "verdicts.jsonl")
    timing = improvement_table(pd.DataFrame(
        [{"variant": v, "vmas": n, "forks_per_s": x}
         for n, b, p in ((21, 200.0, 210.0), (421, 40.0, 60.0))
         for v, xs in (("baseline", (b, b * 1.01)), ("patched", (p, p * 1.01))) for x in xs]))
    timing.to_csv(tmp_path / "timing.csv", index=False)


def test_report_tables_plots_and_junit(tmp_path):
    _results(tmp_path, with_mismatch=True)
    res = report.render(tmp_path)
    assert res["failing"] == 1 and res["total"] == 8
    html = (tmp_path / "report.html").read_text()
    md = (tmp_path / "report.md").read_text()
    assert "FAIL" in html and "**Verdict: FAIL**" in md
    # The seed's numbers stand beside ours: 421 VMAs, seed 34035 -> 45824 (34.64%), ours +50%.
    line = next(ln for ln in md.splitlines() if ln.startswith("| 421 |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1:4] == ["34035", "45824", "34.64"]
    assert float(cells[6]) == 50.0
    # The mismatch appears with observed and predicted side by side.
    assert re.search(r"\| map_count \|  \| 30 \| 31 \| mismatch \|", md)
    for p in report.PLOTS:
        f = tmp_path / "plots" / p
        assert f.stat().st_size > 1000 and f.read_bytes()[:4] == b"\x89PNG"
        assert f'src="plots/{p}"' in html
    junit = (tmp_path / "junit.xml").read_text()
    assert 'failures="1"' in junit and junit.count("<testcase") == 8
    # Fault strip: 7 cells, 4 ENOMEM.
    assert html.count('class="cell enomem') == 4 and html.count('class="cell ok') == 3


def test_report_passes_when_everything_matches(tmp_path):
    _results(tmp_path, with_mismatch=False)
    res = report.render(tmp_path)
    assert res["failing"] == 0
    assert "PASS" in (tmp_path / "report.md").read_text()
