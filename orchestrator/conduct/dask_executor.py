"""`forkdiff vm-test --executor dask[:ADDRESS]`: DaskExecutor runs the run's jobs (orchestrator.run.shards)
on Dask distributed. Without an address a LocalCluster on this machine: JOBS= workers (default: one
per variant, at most one per CPU), one thread each. With one, the scheduler at ADDRESS, whose
workers were started with `--resources qemu=1` (dask-ssh / SSHCluster, dask-jobqueue,
dask-kubernetes) and share the kernel cache or imported it (`forkdiff kernel import`).

Each task runs one shard of the job list (as `--shard i/n` would, n = the cluster's QEMU
slots) into a scratch folder on its worker, and returns the records and the worker's guest
binaries and QEMU version. Every task holds the `qemu` resource (one guest per worker slot);
Dask runs a lost worker's task again on another worker, and a task that raised is retried. This process writes the records
into the run's observations.jsonl as tasks finish, after checking that each worker ran the
same guest binaries and QEMU as this machine recorded (the checks forkdiff merge makes)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ..cache import atomic_write
from ..errors import ForkdiffError
from ..prepare import kernel_records
from ..results.meta import RunMeta
from ..results.observations import FILENAME, read_records
from ..run import sweep_parts
from ..run.shards import assign, shard_cost
from .execute import Execution, task_options, variant_suites
from .options import Progress

RETRIES = 2  # a task that raised runs again this many times (a lost worker's task is rescheduled by Dask)


def run_task(opts, names: list[str], kvm_ok: bool) -> dict:
    """In a worker: run the named jobs of the run into a scratch folder; return the records."""
    from ..results import provenance
    from ..run.suites import load_scenarios

    scratch = Path(tempfile.mkdtemp(prefix="forkdiff-dask-"))
    try:
        o = task_options(opts, scratch)
        say = Progress()
        scenarios = load_scenarios(o.scenarios) if o.scenarios else None
        keep = set(names)
        variants = list(dict.fromkeys(n.split("|")[1] for n in names))
        errors, t0 = 0, time.monotonic()
        for v in variants:
            for res, _seconds in variant_suites(o, v, scenarios, say, lambda: kvm_ok, keep).values():
                errors += len(res.errors)
        meta = RunMeta()
        provenance.record(scratch, meta)
        kernels = {f.name: f.read_text() for f in sorted((scratch / kernel_records.FOLDER).glob("*.json"))}
        return {"records": read_records(scratch / FILENAME), "errors": errors, "kernels": kernels,
                "guest": meta.guest_binaries, "qemu": meta.qemu_version,
                "worker": f"{socket.gethostname()}:{os.getpid()}", "seconds": time.monotonic() - t0}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _client(opts, say):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ForkdiffError("--executor dask needs Dask distributed, which is not installed",
                            "pip install 'forkdiff[dask]' (or: pip install distributed)") from None
    address = opts.executor.partition(":")[2]
    if address:
        try:
            return Client(address, timeout="30s"), None
        except OSError as err:
            raise ForkdiffError(f"cannot reach the Dask scheduler at {address}: {err}",
                                "start it (dask scheduler) and workers with --resources qemu=1") from None
    workers = max(1, opts.jobs or min(2, os.cpu_count() or 1))
    say("dask", f"LocalCluster: {workers} workers, 1 thread and 1 QEMU slot each")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           resources={"qemu": 1}, dashboard_address=None)
    return Client(cluster), cluster


def _slots(client) -> int:
    info = client.scheduler_info()["workers"].values()
    slots = sum(int(w.get("resources", {}).get("qemu", 0)) for w in info)
    if slots < 1:
        raise ForkdiffError("no Dask worker offers the qemu resource",
                            "start workers with --resources qemu=1 (one per QEMU the host can run)")
    return slots


def _result(fut) -> dict:
    """A task's result; its failure as one ForkdiffError (the records of the tasks done so far
    are in observations.jsonl already)."""
    try:
        return fut.result()
    except ForkdiffError:
        raise
    except Exception as err:  # raised in the worker or by Dask itself
        text = " ".join(str(err).split())[:400]
        raise ForkdiffError(f"Dask task {fut.key} failed: {type(err).__name__}: {text}",
                            "the scheduler and every worker need this forkdiff installed (same "
                            "version); see the worker's log") from None


def _kernels(out: Path, got: dict) -> None:
    """The task's kernel records (orchestrator.prepare.kernel_records) into the run's folder; a worker
    that booted another build of a kernel than an earlier task is refused."""
    from ..run.merge import same_kernel

    for name, text in got.get("kernels", {}).items():
        path = out / kernel_records.FOLDER / name
        if path.is_file():
            if not same_kernel(json.loads(path.read_text()), json.loads(text)):
                raise ForkdiffError(f"Dask worker {got['worker']} booted another build of {name} "
                                    "than an earlier task", "give every worker the same kernels "
                                    "(a shared cache, or 'forkdiff kernel import')")
            continue
        atomic_write(path, text)
        path.chmod(0o644)


def _append(out: Path, records: list[dict]) -> None:
    data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
    fd = os.open(out / FILENAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class DaskExecutor:
    """The run's jobs on a Dask cluster (a LocalCluster, or the scheduler at EXECUTOR=dask:ADDRESS)."""

    def execute(self, ex: Execution, keep: set[str] | None = None) -> int:
        from ..vm import guest as vm

        with vm.terminate_raises():  # SIGTERM/SIGHUP too stop the cluster and its guests
            return run_dask(ex.opts, keep, ex.meta, ex.say, ex.units)


def run_dask(opts, keep: set[str] | None, meta: RunMeta, say, plan) -> int:
    """Run the run's jobs (a shard's, when `keep` is given) on Dask; `plan(opts)` lists them
    (long sweeps split into up to one k-range per QEMU slot). Returns the number of errors."""
    if opts.resume:
        raise ForkdiffError("--resume is not supported with --executor dask",
                            "rerun into a fresh folder, or resume without --executor")
    client, cluster = _client(opts, say)
    t0 = time.monotonic()
    errors = 0
    try:
        from distributed import as_completed

        slots = _slots(client)
        # tasks run with shard=None: they must split sweeps as the plan did
        opts = replace(opts, split_n=opts.parts if opts.shard else slots)
        todo = [u for u in plan(opts) if keep is None or u.name in keep]
        parts = [p for p in assign(todo, slots) if p]
        kvm_ok = meta.kvm == "usable"
        say("dask", f"{len(todo)} jobs in {len(parts)} tasks on {slots} QEMU slot(s) at {client.scheduler.address}")
        futures = [client.submit(run_task, opts, [u.name for u in p], kvm_ok, resources={"qemu": 1},
                                 retries=RETRIES, pure=False, priority=int(shard_cost(p)),
                                 key=f"forkdiff-{opts.out.name}-{i}-of-{len(parts)}")
                   for i, p in enumerate(parts, 1)]
        for fut in as_completed(futures):
            got = _result(fut)
            for what, mine, theirs in (("guest binaries", meta.guest_binaries, got["guest"]),
                                       ("QEMU version", meta.qemu_version, got["qemu"])):
                if mine != theirs:
                    raise ForkdiffError(f"Dask worker {got['worker']} ran other {what} than this "
                                        f"machine: {json.dumps(theirs)[:300]}",
                                        f"give every worker the same {what} (same forkdiff, same image)")
            _kernels(opts.out, got)
            _append(opts.out, got["records"])
            errors += got["errors"]
            say("dask", f"{fut.key} on {got['worker']}: {len(got['records'])} records, "
                        f"{got['errors']} errors in {got['seconds']:.0f} s")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if not opts.shard:  # a whole run: the parts of split sweeps are all here
        records = sweep_parts.join(read_records(opts.out / FILENAME))
        atomic_write(opts.out / FILENAME, "".join(json.dumps(r, separators=(",", ":")) + "\n"
                                                   for r in records))
    meta.suites_wall_s = round(time.monotonic() - t0, 1)
    meta.executor = f"dask ({opts.executor.partition(':')[2] or 'LocalCluster'}), {len(parts)} tasks"
    return errors
