"""Guests a run shares between its suites: one booted guest per (kernel, virtual time or not,
memory), so that the maps, faults and counts suites, which all use the faults-profile kernel,
boot it once per run instead of once each. A guest that crashed or hung is dropped and the next
get() boots a fresh one. One pool per thread: a pool is not shared between threads."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .kernel import BuiltKernel
    from .rootfs import Rootfs


class GuestPool:
    def __init__(self) -> None:
        self._live: dict[tuple, object] = {}

    def get(self, kernel: BuiltKernel, rootfs: Rootfs, *, icount: bool,
            memory_mb: int) -> tuple[object, bool]:
        """(guest, freshly booted?) for this kernel and settings."""
        from .vm import Guest

        key = (str(kernel.bzimage), kernel.variant, kernel.profile, icount, memory_mb)
        g = self._live.get(key)
        if g is not None and getattr(g, "proc", None) is not None and g.proc.poll() is None:
            return g, False
        if g is not None:
            self.drop(g)
        g = Guest(kernel, rootfs, icount=icount, memory_mb=memory_mb)
        g.__enter__()
        self._live[key] = g
        return g, True

    def drop(self, guest: object) -> None:
        """Stop a guest (after a crash or hang, or at the end of the run)."""
        for key, g in list(self._live.items()):
            if g is guest:
                del self._live[key]
        guest.__exit__(None, None, None)

    def close(self, keep_profile: str | None = None) -> None:
        """Stop every guest (but those of `keep_profile`'s kernels)."""
        for key, g in list(self._live.items()):
            if key[2] != keep_profile:
                self.drop(g)

    def __enter__(self) -> GuestPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
