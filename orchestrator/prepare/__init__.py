"""The build stage's work: kernel trees, kconfig, patches, kernel builds, rootfs, guest programs, the maple tree
oracle (see orchestrator/__init__.py)."""
