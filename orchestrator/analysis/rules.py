"""The comparison rules of the maps, faults and counts suites (see orchestrator.analysis.compare): one
function per suite turning a job's records and its predictions into verdict rows; each suite
object names its own (orchestrator/suite_defs, `comparer`)."""

from __future__ import annotations

from simulator.scenario import LIST_FILE_FMT

from .compare_jobs import ObservedJob, _row
from .job_predictions import LAYOUT_FILE, _pred
from .observer_rows import fault_detail, observer_rows

LIST_FILE_PREFIX = LIST_FILE_FMT.split("%")[0]  # a list scenario's file I (simulator/scenario.py)

SLAB_CACHES = ("maple_node", "vm_area_struct", "anon_vma", "anon_vma_chain")


def _maps_line(start: str, end: str, perms: str, offset: int, name: str, is_file: bool) -> str:
    """One VMA as compared: range, perms, offset, and what backs it ([name], the layout file,
    the executable, or anonymous memory)."""
    if name.startswith("["):
        what = name
    elif is_file:
        what = ("layout-file" if name == LAYOUT_FILE else f"layout-file:{name.rsplit('-', 1)[-1]}"
                if name.startswith(LIST_FILE_PREFIX) else "exe")
    else:
        what = "anon"
    return f"{int(start, 16):x}-{int(end, 16):x} {perms} {offset:x} {what}"


def _maps_line_observed(m: dict) -> str | None:
    """A /proc/self/maps line from the guest ([vsyscall] is not a VMA)."""
    path = m.get("path") or ""
    if path == "[vsyscall]":
        return None
    return _maps_line(m["start"], m["end"], m["perms"], int(m["offset"], 16), path,
                      bool(path) and not path.startswith("["))


def _maps_line_predicted(m: dict) -> str:
    return _maps_line(m["start"], m["end"], m["perms"], int(m["offset"]), m.get("name") or "",
                      bool(m.get("file")))


def _first_difference(a: list[str], b: list[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"line {i + 1}: observed '{x}' predicted '{y}'"
    if len(a) != len(b):
        return f"observed {len(a)} lines, predicted {len(b)}"
    return ""



def compare_maps(job: ObservedJob, model: str, preds: list[dict]) -> list[dict]:
    rows = []
    counts = _pred(preds, "map_count")
    before, child, after = job.one("parent_before"), job.one("child"), job.one("parent_after")
    if before:
        rows.append(_row(job, model, "parent_map_count", "", before["value"], counts["parent"]))
    if child:
        rows.append(_row(job, model, "child_map_count", "", child["value"], counts["child"]))
        obs = [x for x in map(_maps_line_observed, child["values"]["maps"]) if x]
        pred = [_maps_line_predicted(m) for m in _pred(preds, "child_maps")["vmas"]]
        rows.append(_row(job, model, "child_maps", "", f"{len(obs)} VMAs", f"{len(pred)} VMAs",
                         verdict="match" if obs == pred else "mismatch",
                         detail=_first_difference(obs, pred)))
    layout = job.one("child_layout")
    if layout:
        pvmas = {int(m["start"], 16): m for m in _pred(preds, "child_maps")["vmas"]}
        for v in layout["values"]["vmas"]:
            start = int(v["start"], 16)
            p = pvmas.get(start)
            if v["advice"] == "dontfork":
                rows.append(_row(job, model, "dontfork_absent", f"vma={v['index']}",
                                 not v["present"] and not v["overlapped"], p is None))
            elif v["advice"] == "wipeonfork":
                rows.append(_row(job, model, "wipeonfork_zero", f"vma={v['index']}",
                                 bool(v["present"]) and v.get("zero") is True,
                                 p is not None and bool(p.get("wipeonfork"))))
    if after:
        rows.append(_row(job, model, "parent_maps_unchanged", "", after["values"].get("unchanged"), True,
                         rule="invariant: fork() does not change the parent's maps"))
    return rows


def _observed_outcome(r: dict) -> str:
    v = r["values"]
    if r["measurement"] == "not_reached":
        return "not reached"
    if v.get("fork_result", 0) > 0:
        return "ok (absorbed)"
    return "ENOMEM" if v.get("errno") == 12 else f"errno {v.get('errno')}"


def _predicted_outcome(p: dict) -> str:
    if p.get("modelled") is False:
        return "not modelled"
    if not p.get("injected"):
        return "not reached"
    return "ok (absorbed)" if p.get("fork") == "success" else str(p.get("errno"))


def _cache_counts(d: dict | None) -> str:
    """{"vm_area_struct": 1, "vma_lock": 0} -> "vm_area_struct +1"; all zero -> "0"."""
    parts = [f"{c} {n:+d}" for c, n in sorted((d or {}).items()) if n]
    return ", ".join(parts) or "0"


def _failure_site(p: dict | None) -> str:
    """The injected failure a prediction names: site, cache, gfp and the VMA being copied."""
    if not p or not p.get("injected"):
        return "no failure injected"
    where = f", VMA {p['vma_index']} at {p['vma_start']}" if p.get("vma_index") is not None else ""
    return f"{p.get('site')} ({p.get('cache')}, {p.get('gfp')}{where})"


LEAK_RULE = ("exact: slab objects in use after the fork's frees settled (shrink + 'objects', "
             "polled through RCU grace periods), and with FAULTS=...,page the page-table pages "
             "(nr_page_table_pages), equal those before it, plus what the model "
             "predicts still pending in kfree_rcu's batches (7.x: a node whose rcu_free sheaf "
             "kmalloc failed, freed when the batches drain 5 s later)")
# what a sweep's end waits beyond the longest kfree_rcu batch drain the model predicts, for the
# grace period and the free work after it (the guest waits 2 s more: run/suites.py settle_ms)
GRACE_MARGIN_MS = 1000
DRAINED_RULE = ("exact: slab objects in use at the end of the sweep (settled) equal those at its "
                "start; the nodes the model predicts pending in kfree_rcu's batches at some k "
                "(7.x) are freed within the sweep end's wait (settle_bound_ms, longer than "
                "KFREE_DRAIN_JIFFIES = 5 s plus a grace period)")
PENDING_RULE = ("bounded: slab objects in use at the end of the sweep (settled) equal those at "
                "its start, give or take the nodes the model predicts pending in kfree_rcu's "
                "batches (each freed 5 s after its kfree_rcu, KFREE_DRAIN_JIFFIES; whether the "
                "sweep's end comes later is timing the model does not follow): inside the "
                "bound `skipped`, outside a mismatch")


def leak_rows(job: ObservedJob, model: str, r: dict, p: dict | None) -> list[dict]:
    """Per fault record (one k): what the failed fork allocated per cache against the
    simulator's trace up to the k-th check, and what is left once everything it allocated
    should be freed again (net 0 in every cache, failed or absorbed)."""
    v = r["values"]
    k = v["k"]
    if "net" not in v:  # recorded before faultsweep measured leaks
        return []
    rows = []
    site = _failure_site(p)
    failed = v.get("fork_result", 0) < 0
    if failed and p is not None and "allocated" in p:
        obs = {c: n for c, n in (v.get("alloc") or {}).items() if n}
        pred = {c: n for c, n in p["allocated"].items() if n}
        bulk = {c: n for c, n in (p.get("allocated_in_bulk") or {}).items()
                if n and not job.run_model.counts_bulk(c)}
        for c, n in sorted(bulk.items()):  # bounded, apart from the exact caches
            rows.append(_bounded_row(job, model, "failed_fork_allocs", f"k={k} {c}", obs.pop(c, 0),
                                     pred.pop(c, 0), n, c, detail=f"k={k}, failure at {site}"))
        diff = [f"{c}: observed {obs.get(c, 0)}, predicted {pred.get(c, 0)}"
                for c in sorted(set(obs) | set(pred)) if obs.get(c, 0) != pred.get(c, 0)]
        rows.append(_row(job, model, "failed_fork_allocs", f"k={k}", _cache_counts(obs),
                         _cache_counts(pred), rule="exact: SLUB_STATS alloc counters over the fork"
                         + _single_object_note(job, p.get("allocated_in_bulk")),
                         detail=f"k={k}, failure at {site}" + (": " + "; ".join(diff) if diff else "")))
    net = v.get("net") or {}
    leaked = {c: n for c, n in net.items() if n > 0}
    late = {c: n for c, n in net.items() if n < 0}
    pending = {c: n for c, n in ((p or {}).get("pending") or {}).items() if n}
    detail = f"k={k}, failure at {site}"
    if leaked:
        detail = (f"LEAK at k={k}: " + ", ".join(f"{n} {c}" for c, n in sorted(leaked.items()))
                  + f" left after the {'failed' if failed else 'absorbed'} fork; failure at {site}")
        if p and p.get("freed_by_teardown") is not None:
            detail += (f"; predicted: error path frees {_cache_counts(p.get('freed_by_error_path'))}, "
                       f"teardown frees {_cache_counts(p.get('freed_by_teardown'))} "
                       f"({p.get('child_vmas_released')} VMAs in {p.get('teardown_range')}, "
                       f"stopping at the {p.get('stops_at')})")
        if not v.get("settled", True):
            detail += f"; still there after {v.get('settle_ms', 0):.0f} ms of polling"
    elif late:
        detail += "; objects of an earlier step were freed during this one: " + _cache_counts(late)
    if pending:
        detail += (f"; predicted pending: {_cache_counts(pending)} until the "
                   f"{p.get('pending_until', 'kfree_rcu batch drain')} ({p.get('reason', '')})")
    rows.append(_row(job, model, "leak_after_fork", f"k={k}", _cache_counts(leaked),
                     _cache_counts(pending), rule=LEAK_RULE, detail=detail))
    return rows


def _pending_over_sweep(preds: list[dict], last_k: int | None) -> dict[str, int]:
    """What the model predicts pending in kfree_rcu's batches, summed over the sweep's ks."""
    out: dict[str, int] = {}
    for p in preds:
        if p["measurement"] != "fault_outcome" or (last_k is not None and p["k"] > last_k):
            continue
        for c, n in (p.get("pending") or {}).items():
            out[c] = out.get(c, 0) + n
    return {c: n for c, n in out.items() if n}


def compare_faults(job: ObservedJob, model: str, preds: list[dict]) -> list[dict]:
    rows = []
    counts = _pred(preds, "counts")
    cc = job.one("check_count")
    if cc:
        split = ""
        if counts.get("page_checks"):
            tables = ", ".join(f"{n} {lv}" for lv, n in (counts.get("page_tables") or {}).items())
            fork_pages = counts.get("fork_page_checks") or 0
            split = (f": predicted {counts.get('slab_checks')} slab checks under dup_mmap and "
                     f"{counts['page_checks'] - fork_pages} page-table checks under copy_page_range ({tables})")
            if fork_pages:  # no stack filter: copy_process()'s thread stack and pgd count too
                split += f", after {fork_pages} page checks of copy_process() (thread stack, pgd)"
        rows.append(_row(job, model, "checks_per_fork", "", cc["value"], counts["checks"],
                         detail="fail-nth checks a successful fork makes under dup_mmap" + split))
        if "net" in cc["values"]:
            left = {c: n for c, n in cc["values"]["net"].items() if n}
            rows.append(_row(job, model, "leak_after_fork", "probe", _cache_counts(left), "0",
                             rule=LEAK_RULE, detail="the probe: one successful fork, its child exited"))
    skipped = ((cc or {}).get("fault_settings") or {}).get("page_skipped")
    if skipped:
        rows.append(_row(job, model, "page_faults", "", "left out", "FAULTS=...,page",
                         verdict="skipped", rule="FAULTS=...,page needs fail_page_alloc's stack "
                         "filter on copy_page_range", detail=skipped))
    pred = {p["k"]: p for p in preds if p["measurement"] == "fault_outcome"}
    for r in sorted(job.by("fault") + job.by("not_reached"), key=lambda r: r["values"]["k"]):
        k = r["values"]["k"]
        p = pred.get(k)
        po = _predicted_outcome(p) if p else "not reached"
        detail = f"{p.get('site')} ({p.get('cache')}, {p.get('gfp')})" if p and p.get("injected") else ""
        detail += fault_detail(r["values"])
        rows.append(_row(job, model, "fault_outcome", f"k={k}", _observed_outcome(r), po, detail=detail))
        if r["measurement"] == "fault":
            rows += leak_rows(job, model, r, p)
        if r["measurement"] == "fault" and r["values"].get("fork_result", 0) < 0:
            rows.append(_row(job, model, "parent_maps_after_failure", f"k={k}",
                             r["values"].get("maps_unchanged"), True,
                             rule="invariant: a failed fork leaves the parent's maps unchanged",
                             detail=str(r["values"].get("maps_diff", ""))))
    end = job.one("sweep_end")
    if end and "net" in end["values"]:
        net = end["values"]["net"]
        detail = (f"over {end['values'].get('failed_forks')} failed and "
                  f"{end['values'].get('absorbed_faults')} absorbed forks"
                  + ("" if end["values"].get("settled", True) else
                     f"; not settled after {end['values'].get('settle_ms', 0):.0f} ms"))
        pending = _pending_over_sweep(preds, end["values"].get("last_k"))
        drain_ms = max((p.get("pending_ms", 0) for p in preds if p.get("pending")), default=0)
        if pending and end["values"].get("settle_bound_ms", 0) >= drain_ms + GRACE_MARGIN_MS:
            # the sweep's end waited longer than the batches take to drain: every pending
            # node is freed by then, and the sweep's net is exact
            rows.append(_row(job, model, "sweep_leak", "", _cache_counts(net), "0",
                             rule=DRAINED_RULE, detail=detail + "; predicted pending at some k, "
                             f"drained by the sweep's end: {_cache_counts(pending)}"))
        elif pending:  # records whose sweep end waited less (made before settle_bound_ms)
            inside = all(0 <= net.get(c, 0) <= pending.get(c, 0) for c in set(net) | set(pending))
            rows.append(_row(job, model, "sweep_leak", "", _cache_counts(net),
                             f"0..{_cache_counts(pending)}", rule=PENDING_RULE,
                             verdict="skipped" if inside else "mismatch",
                             detail=detail + f"; predicted pending in kfree_rcu's batches: "
                                             f"{_cache_counts(pending)}"))
        else:
            rows.append(_row(job, model, "sweep_leak", "", _cache_counts(net), "0",
                             rule="exact: slab objects in use at the end of the sweep (settled) "
                                  "equal those at its start", detail=detail))
    rows += sweep_complete_rows(job, model, end)
    return rows + observer_rows(job, model)


def sweep_complete_rows(job: ObservedJob, model: str, end: dict | None) -> list[dict]:
    """A sweep that --max-k stopped before a k the fork does not reach: an error, unless it
    was the run of a given-up sweep stopped before its first crash (values 'before_crash',
    orchestrator/run/suites.py sweep_before_first_crash), whose crashes are error rows already."""
    if not end or end["values"].get("complete", True):
        return []
    first = end["values"].get("before_crash")
    if first:
        return [_row(job, model, "sweep_complete", "", False, True, verdict="skipped",
                     rule="the sweep must reach a k the fork does not reach",
                     detail=f"given up: the kernel died at k={first} and later steps (the error "
                            f"rows); this run of the sweep stopped at k={first - 1} to record "
                            "the steps before the first crash")]
    return [_row(job, model, "sweep_complete", "", False, True, verdict="error",
                 rule="the sweep must reach a k the fork does not reach",
                 detail=f"--max-k stopped it at {end['values'].get('last_k')}")]


def compare_counts(job: ObservedJob, model: str, preds: list[dict]) -> list[dict]:
    s = job.one("summary")
    if not s:
        return []
    objs = _pred(preds, "counts")
    median = s["values"].get("median") or {}
    rows = []
    for cache in SLAB_CACHES:
        if cache not in median or median[cache].get("alloc") is None:
            continue
        predicted = objs["maple_node_allocated"] if cache == "maple_node" else objs["objects"].get(cache, 0)
        observed = median[cache]["alloc"]
        bulk = 0 if job.run_model.counts_bulk(cache) else (objs.get("allocated_in_bulk") or {}).get(cache, 0)
        if bulk:
            rows.append(_bounded_row(job, model, f"{cache}_allocated_per_fork", "", observed, predicted,
                                     bulk, cache))
            continue
        in_bulk = {cache: (objs.get("allocated_in_bulk") or {}).get(cache, 0)}
        rows.append(_row(job, model, f"{cache}_allocated_per_fork", "", observed, predicted,
                         rule="exact (median of repeats)" + _single_object_note(job, in_bulk)))
    return rows


def _single_object_note(job: ObservedJob, in_bulk: dict | None) -> str:
    """What makes a count with bulk objects exact on a kernel whose counters miss them: the
    bulk caches were debug caches (orchestrator/run/slubdebug.py); "" where nothing had to."""
    rm = job.run_model
    caches = sorted(c for c, n in (in_bulk or {}).items() if n and not rm.bulk_counted
                    and c in rm.single_object_caches)
    if not caches:
        return ""
    return (f"; {', '.join(caches)} booted as a debug cache (slub_debug, recorded in slab_debug): "
            "one object per ___slab_alloc(), each an ALLOC_SLOWPATH, bulk objects included")


BULK_RULE = ("bound: this kernel's SLUB_STATS do not count bulk objects taken from the CPU "
             "free list (mm/slub.c kmem_cache_alloc_bulk() has no stat(ALLOC_FASTPATH); only "
             "objects ___slab_alloc() returns count), so the alloc counters lie between the "
             "allocations without the bulk objects and all of them")


def _bounded_row(job: ObservedJob, model: str, measurement: str, key: str, observed: int, predicted: int,
                 bulk: int, cache: str, detail: str = "") -> dict:
    """A count that includes `bulk` bulk-allocated objects, on a kernel whose counters miss
    some of them: not an exact comparison (`skipped`), but outside the bound a mismatch."""
    inside = predicted - bulk <= observed <= predicted
    return _row(job, model, measurement, key, observed, f"{predicted - bulk}..{predicted}",
                rule=BULK_RULE, verdict="skipped" if inside else "mismatch",
                detail=(detail + "; " if detail else "") + f"{cache}: {bulk} of the {predicted} "
                       "predicted objects come from bulk allocations (mas_alloc_nodes "
                       "-> kmem_cache_alloc_bulk), uncounted unless the CPU free list runs dry")
