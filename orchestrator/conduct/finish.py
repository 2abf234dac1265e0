"""The finish stage: compare the records with the simulator (verdicts.jsonl), record the run in
the results database, render the report and print the summary; a shard only says how to merge."""

from __future__ import annotations

import time

from ..analysis import report as report_mod
from ..analysis.compare import compare_dir
from ..analysis.history_record import record_folder
from ..analysis.summary import print_summary
from ..results.folder import REPORT_HTML
from ..results.meta import RunMeta
from ..results.verdicts import failing
from .options import Progress, VmTestOptions


def finish(opts: VmTestOptions, models: dict[str, str], meta: RunMeta, say: Progress, errors: int) -> int:
    """Compare and report, or for a shard only say how to merge it. The exit status: 1 when a
    job had an error or a comparison fails."""
    out = opts.out
    if opts.shard:
        say("shard", f"{opts.shard[0]}/{opts.shard[1]} done: {out} ({errors} errors); when every "
                     f"shard is done: forkdiff merge MERGED SHARD-FOLDERS...")
        return 1 if errors else 0
    say("compare", str(out))
    t0 = time.monotonic()
    df = compare_dir(out, models, against=opts.against)
    meta.compare_wall_s = round(time.monotonic() - t0, 1)
    meta.save(out)
    if (db := record_folder(out, opts.history_db or None)) is not None:
        say("history", f"recorded in {db}")
    say("report", str(out / REPORT_HTML))
    t0 = time.monotonic()
    report_mod.render(out, opts.history_db or None)
    meta.report_wall_s = round(time.monotonic() - t0, 1)
    meta.save(out)
    print_summary(df, out)
    print(f"report: {out / 'report.html'}")
    return 1 if (errors or not failing(df).empty) else 0
