"""forkdiff orchestrator, one package per stage of a run:

    build/     kernel trees (paths, debian: packages, the facts read from their source), kconfig
               profiles, patches, kernel builds, the guest rootfs and programs, kernel bundles,
               the maple tree oracle
    vm/        QEMU guests: the command line, KVM probe, boot, SSH, console crash reports, the
               pool that shares a boot between suites, the Guest protocol
    suite_defs/ the suites, one object each: program, kernel profile, scenarios, final record,
               the jobs it plans, the rules that compare it (by name)
    run/       a vm-test: the suites' jobs on the guests, fault-injection set-up, kmemleak,
               observations on disk, shards, merge, the Dask executor
    analysis/  observations against the simulator's predictions: rules per suite, kernel-only
               checks, spawn timings and cost model, verdicts, report, summary, KCIDB export

The top level holds what every stage uses (cache, errors, resources: where the data folders
are) and the command line (cli.py, commands/)."""
