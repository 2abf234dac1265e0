"""Guests a run shares between its suites: the booted guest of a (kernel, virtual time or not,
memory, extra kernel parameters) is reused by the next suite that asks for the same, so that
the maps, faults and counts suites, which all use the faults-profile kernel, boot it once per
run instead of once each (spawn, on the same kernel, asks for a fresh guest) (twice with KMEMLEAK=1: the faults suite's guest boots kmemleak=on).
A guest that crashed or hung is dropped and the next get() boots a fresh one. One pool per
thread: a pool is not shared between threads."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..prepare.kernel import BuiltKernel
    from ..prepare.rootfs import Rootfs


class GuestPool:
    def __init__(self) -> None:
        self._live: dict[tuple, object] = {}

    def get(self, kernel: BuiltKernel, rootfs: Rootfs, *, icount: bool, memory_mb: int,
            extra_append: str = "", extra_args: tuple[str, ...] = (),
            fresh: bool = False) -> tuple[object, bool]:
        """(guest, freshly booted?) for this kernel and settings. A pool runs one guest at a
        time: asking for another kernel or other settings stops the running one first; fresh
        boots a new guest even when one with these settings is running (a suite whose
        measurements depend on the guest's history: spawn)."""
        from .guest import Guest

        key = (str(kernel.bzimage), kernel.variant, kernel.profile, icount, memory_mb, extra_append,
               tuple(extra_args))
        g = self._live.get(key)
        if g is not None and not fresh and getattr(g, "proc", None) is not None and g.proc.poll() is None:
            return g, False
        self.close()
        g = Guest(kernel, rootfs, icount=icount, memory_mb=memory_mb, extra_append=extra_append,
                  extra_args=tuple(extra_args))
        g.__enter__()
        self._live[key] = g
        return g, True

    def drop(self, guest: object) -> None:
        """Stop a guest (after a crash or hang, or at the end of the run)."""
        for key, g in list(self._live.items()):
            if g is guest:
                del self._live[key]
        guest.__exit__(None, None, None)

    def close(self) -> None:
        for g in list(self._live.values()):
            self.drop(g)

    def __enter__(self) -> GuestPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
