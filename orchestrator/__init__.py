"""forkdiff orchestrator: kernel builds, rootfs, QEMU/QMP, SSH, suites, compare, report, CLI."""
