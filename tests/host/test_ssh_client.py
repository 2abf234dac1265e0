"""Unit tests of orchestrator.vm.ssh against an in-process paramiko SSH server on 127.0.0.1.
The server is a FAKE (paramiko.ServerInterface, commands interpreted by the test), not the
guest's OpenSSH: these tests cover our client code only (pinning, timeouts, exit status,
abort callback). The real sshd in the guest is covered by tests/vm."""

from __future__ import annotations

import base64
import socket
import subprocess
import threading
import time
from pathlib import Path

import paramiko
import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.vm import ssh

# The fake server's transport threads see the client hang up abruptly (on purpose).
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


class _Server(paramiko.ServerInterface):
    def __init__(self, client_pub: paramiko.PKey):
        self.client_pub = client_pub
        self.command: bytes = b""
        self.event = threading.Event()

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == "root" and key.get_base64() == self.client_pub.get_base64()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.command = command
        self.event.set()
        return True


class FakeSshd:
    """Accepts connections on 127.0.0.1:<port>; 'echo X' -> stdout X, status 0;
    'fail' -> stderr 'bad', status 3; 'sleep' -> never answers."""

    def __init__(self, host_key: Path, client_pub: Path):
        self.host_key = paramiko.Ed25519Key.from_private_key_file(str(host_key))
        self.client_pub = paramiko.Ed25519Key(data=base64.b64decode(client_pub.read_text().split()[1]))
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.transports: list[paramiko.Transport] = []
        self.peers: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                return
            self.peers.append(addr[0])
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        t = paramiko.Transport(conn)
        self.transports.append(t)
        t.add_server_key(self.host_key)
        server = _Server(self.client_pub)
        try:
            t.start_server(server=server)
        except (paramiko.SSHException, EOFError):
            return
        while t.is_active():
            chan = t.accept(timeout=1)
            if chan is None:
                continue
            server.event.wait(5)
            server.event.clear()
            cmd = server.command.decode()
            if cmd.startswith("echo "):
                chan.sendall(cmd[5:].encode() + b"\n")
                chan.send_exit_status(0)
            elif cmd == "fail":
                chan.sendall_stderr(b"bad\n")
                chan.send_exit_status(3)
            elif cmd == "sleep":
                continue  # never answers
            chan.close()

    def close(self) -> None:
        self.sock.close()
        for t in self.transports:
            t.close()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    host = _keygen(d / "host")
    other = _keygen(d / "other")
    client = _keygen(d / "client")
    kh = d / "known_hosts"
    kh.write_text("forkdiff-guest " + " ".join(Path(f"{host}.pub").read_text().split()[:2]) + "\n")
    wrong = d / "known_hosts_wrong"
    wrong.write_text("forkdiff-guest " + " ".join(Path(f"{other}.pub").read_text().split()[:2]) + "\n")
    return {"host": host, "client": client, "kh": kh, "wrong": wrong}


@pytest.fixture
def server(keys: dict[str, Path]):
    s = FakeSshd(keys["host"], Path(f"{keys['client']}.pub"))
    yield s
    s.close()


def test_pinned_keys_are_registered_for_the_port(keys: dict[str, Path]) -> None:
    hk = ssh.pinned_host_keys(keys["kh"], 2222)
    assert list(hk.keys()) == ["[127.0.0.1]:2222"]
    expected = Path(f"{keys['host']}.pub").read_text().split()[1]
    assert hk.lookup("[127.0.0.1]:2222")["ssh-ed25519"].get_base64() == expected


def test_empty_known_hosts_is_a_user_error(tmp_path: Path) -> None:
    empty = tmp_path / "kh"
    empty.write_text("")
    with pytest.raises(ForkdiffError, match="holds no key"):
        ssh.pinned_host_keys(empty, 2222)


def test_run_returns_status_stdout_stderr(server: FakeSshd, keys: dict[str, Path]) -> None:
    sess = ssh.connect(server.port, keys["client"], keys["kh"], deadline=time.monotonic() + 20)
    try:
        assert sess.peer()[0] == "127.0.0.1"
        assert sess.run("echo hello", timeout=10) == ssh.CommandResult(0, "hello\n", "")
        assert sess.run("fail", timeout=10) == ssh.CommandResult(3, "", "bad\n")
    finally:
        sess.close()
    assert server.peers and set(server.peers) == {"127.0.0.1"}


def test_command_timeout_raises(server: FakeSshd, keys: dict[str, Path]) -> None:
    sess = ssh.connect(server.port, keys["client"], keys["kh"], deadline=time.monotonic() + 20)
    try:
        t0 = time.monotonic()
        with pytest.raises(ssh.SshTimeout):
            sess.run("sleep", timeout=1.0)
        print(f"timeout raised after {time.monotonic() - t0:.2f} s")
    finally:
        sess.close()


def test_check_callback_aborts_a_running_command(server: FakeSshd, keys: dict[str, Path]) -> None:
    class Boom(Exception):
        pass

    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) >= 3:
            raise Boom()

    sess = ssh.connect(server.port, keys["client"], keys["kh"], deadline=time.monotonic() + 20)
    try:
        with pytest.raises(Boom):
            sess.run("sleep", timeout=60, check=check)
    finally:
        sess.close()
    assert len(calls) == 3


def test_changed_host_key_is_refused(server: FakeSshd, keys: dict[str, Path]) -> None:
    with pytest.raises(paramiko.BadHostKeyException):
        ssh.connect_once(server.port, keys["client"], keys["wrong"], timeout=10)
    with pytest.raises(ForkdiffError, match="refused"):
        ssh.connect(server.port, keys["client"], keys["wrong"], deadline=time.monotonic() + 20)


def test_nothing_listening_times_out(keys: dict[str, Path]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    with pytest.raises(ssh.SshTimeout):
        ssh.connect(port, keys["client"], keys["kh"], deadline=time.monotonic() + 1.0)
