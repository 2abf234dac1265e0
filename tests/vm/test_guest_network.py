"""The guest network is restricted (QEMU user net with restrict=on): from inside the real
guest, a TCP connection to a listener on the host's loopback (reachable as 10.0.2.2 in
QEMU's user network without the restriction) fails, and the listener sees nothing.

Positive controls, so that the negative result means something: the host listener does record
a connection made to it from the host, and the very same guest command (busybox nc -w 3 ADDR
PORT) prints rc=0 and delivers "hello" when what it connects to is reachable, a listener on the
guest's own eth0 address. (Checked by hand when this test was written: with restrict=off the
guest command reaches the host listener too.)"""

from __future__ import annotations

import socket
import threading
import time

from orchestrator.prepare.rootfs import GUEST_IP
from orchestrator.vm.guest import Guest


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
        # Control: the listener records a connection that does reach it (from the host).
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        deadline = time.monotonic() + 10
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(accepted) == 1, "the host listener records connections"
        accepted.clear()
        # Control: the guest command connects and delivers when the address is reachable.
        ok = guest.run(f"busybox nc -l -p 7777 > /tmp/nc-got </dev/null 2>&1 & sleep 1; "
                       f"echo hello | busybox nc -w 3 {GUEST_IP} 7777; echo rc=$?; "
                       "sleep 1; cat /tmp/nc-got", timeout=60)
        assert ok.stdout.split() == ["rc=0", "hello"], ok.stdout + ok.stderr
        # The same command towards the host's listener and the user net's DNS fails.
        r = guest.run(f"echo hello | busybox nc -w 3 10.0.2.2 {port}; echo rc=$?", timeout=60)
        assert "rc=0" not in r.stdout, r.stdout + r.stderr
        r2 = guest.run("echo x | busybox nc -w 3 10.0.2.3 53; echo rc=$?", timeout=60)
        assert "rc=0" not in r2.stdout, r2.stdout + r2.stderr
    finally:
        stop.set()
        t.join(timeout=5)
        srv.close()
    assert accepted == []
