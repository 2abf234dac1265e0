"""Stage 1: kernel trees, kconfig, patches, kernel builds, rootfs, guest programs, the maple tree
oracle (see orchestrator/__init__.py)."""
