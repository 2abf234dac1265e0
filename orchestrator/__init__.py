"""forkdiff orchestrator. conductor.py runs `forkdiff vm-test` as plan -> build -> execute ->
finish (docs/architecture.md); one package per stage:

    conduct/   the conductor's stages: the plan (the tree resolved once, the kernels), the build
               stage, the executors (threads, a shard, Dask), the finish; a series/bisect step
    prepare/   kernel trees (paths, debian: packages, the facts read from their source), kconfig
               profiles, patches, kernel builds, the guest rootfs and programs, kernel bundles,
               the maple tree oracle
    vm/        QEMU guests: the command line, KVM probe, boot, SSH, console crash reports, the
               pool that shares a boot between suites, the Guest protocol
    run/       the suites: their jobs on the guests, fault-injection set-up, kmemleak, the
               calibration layouts, shards, merge
    analysis/  observations against the simulator's predictions: rules per suite, kernel-only
               checks, spawn timings and cost model, report, summary, KCIDB export
    results/   the results folder every stage reads and writes: run.json (RunMeta), the
               observation records, the verdict table, provenance

The top level holds what every stage uses (cache, errors, resources: where the data folders
are) and the command line (cli.py, cli_env.py: the environment knobs, commands/)."""
