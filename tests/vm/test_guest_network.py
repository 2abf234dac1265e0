"""The guest network is restricted (QEMU user net with restrict=on): from inside the real
guest, a TCP connection to a listener on the host's loopback (reachable as 10.0.2.2 in
QEMU's user network without the restriction) fails, and the listener sees nothing.
Control, checked by hand when this test was written: the same guest command with restrict=off
on the same kernel prints rc=0 and the listener receives "hello"."""

from __future__ import annotations

import socket
import threading

import pytest

from orchestrator.vm import Guest

pytestmark = pytest.mark.vm


def test_guest_cannot_reach_the_host(guest: Guest) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    accepted: list[tuple] = []
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, addr = srv.accept()
            except OSError:
                continue
            accepted.append(addr)
            conn.close()

    t = threading.Thread(target=accept_loop, daemon=True)
    t.start()
    try:
        # The command itself works (a bad address would also fail): nc exists and runs.
        assert guest.run("busybox nc --help 2>&1 | head -1", timeout=30).status == 0
        r = guest.run(f"echo hello | busybox nc -w 3 10.0.2.2 {port}; echo rc=$?", timeout=60)
        assert "rc=0" not in r.stdout, r.stdout + r.stderr
        r2 = guest.run("echo x | busybox nc -w 3 10.0.2.3 53; echo rc=$?", timeout=60)
        assert "rc=0" not in r2.stdout, r2.stdout + r2.stderr
    finally:
        stop.set()
        t.join(timeout=5)
        srv.close()
    assert accepted == []
