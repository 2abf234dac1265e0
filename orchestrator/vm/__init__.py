"""QEMU guests, SSH, console crash reports, the guest pool (see orchestrator/__init__.py)."""
