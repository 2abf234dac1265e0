"""SSH into the guest with paramiko: only to 127.0.0.1, host key pinned (a known_hosts holding
only the guest's key; anything else is refused), key auth only, bounded timeouts everywhere.
Nothing is timed across SSH."""

from __future__ import annotations

import contextlib
import select
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from ..errors import ForkdiffError

HOST = "127.0.0.1"  # the only address we ever connect to (QEMU hostfwd on loopback)
USER = "root"
POLL_SECONDS = 0.2
CONNECT_RETRY = 0.1  # between connection attempts while the guest's sshd is not up yet


@dataclass(frozen=True)
class CommandResult:
    status: int
    stdout: str
    stderr: str


class SshTimeout(ForkdiffError):
    """A command did not finish within its timeout."""


class SshLost(ForkdiffError):
    """The connection broke (guest gone, sshd killed, ...)."""


def pinned_host_keys(known_hosts: Path, port: int) -> paramiko.HostKeys:
    """The keys of `known_hosts`, re-registered under the name paramiko looks up for
    127.0.0.1:port. The file is ours: every key in it is a key of our guest."""
    try:
        source = paramiko.HostKeys(str(known_hosts))
    except (OSError, paramiko.SSHException) as exc:
        raise ForkdiffError(f"cannot read known_hosts {known_hosts}: {exc}",
                            "run 'forkdiff rootfs build' to regenerate the keys") from exc
    name = f"[{HOST}]:{port}" if port != 22 else HOST
    pinned = paramiko.HostKeys()
    for entry in source.values():
        for keytype, key in entry.items():
            pinned.add(name, keytype, key)
    if not pinned.keys():
        raise ForkdiffError(f"known_hosts {known_hosts} holds no key",
                            "run 'forkdiff rootfs build' to regenerate the keys")
    return pinned


class SshSession:
    """One authenticated connection to the guest."""

    def __init__(self, client: paramiko.SSHClient, port: int):
        self.client = client
        self.port = port
        self.connect_attempts = 1  # how many connections connect() tried to get this one

    @property
    def transport(self) -> paramiko.Transport:
        t = self.client.get_transport()
        if t is None or not t.is_active():
            raise SshLost(f"SSH connection to {HOST}:{self.port} is closed",
                          "the guest may have crashed: read the console log")
        return t

    def peer(self) -> tuple[str, int]:
        host, port = self.transport.getpeername()[:2]
        return str(host), int(port)

    def run(self, cmd: str, timeout: float, check: Callable[[], None] | None = None,
            stdin: bytes | None = None) -> CommandResult:
        """Run `cmd` with /bin/sh in the guest. Every POLL_SECONDS `check()` is called (it may
        raise, e.g. when the console shows a crash). SshTimeout after `timeout` seconds."""
        try:
            chan = self.transport.open_session(timeout=10)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshLost(f"cannot open an SSH channel: {exc}",
                          "the guest may have crashed: read the console log") from exc
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        try:
            chan.exec_command(cmd)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            while True:
                select.select([chan], [], [], POLL_SECONDS)
                while chan.recv_ready():
                    out += chan.recv(1 << 16)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(1 << 16)
                # Done when the exit status is in AND the channel's EOF: stderr can arrive
                # after the exit status, so the status alone is not the end of the output.
                if (chan.exit_status_ready() and (chan.eof_received or chan.closed)
                        and not chan.recv_ready() and not chan.recv_stderr_ready()):
                    break
                if chan.closed:
                    raise SshLost(f"SSH channel closed before '{cmd}' finished",
                                  "the guest may have crashed: read the console log")
                if check is not None:
                    check()
                if time.monotonic() > deadline:
                    raise SshTimeout(f"guest command did not finish within {timeout:g} s: {cmd}",
                                     "raise the timeout, or read the console log for a hang")
            status = chan.recv_exit_status()
            if status == -1:  # paramiko's "the connection closed without an exit status"
                raise SshLost(f"SSH connection closed before '{cmd}' reported an exit status",
                              "the guest may have crashed or reset: read the console log")
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshLost(f"SSH connection lost while running '{cmd}': {exc}",
                          "the guest may have crashed: read the console log") from exc
        finally:
            chan.close()
        return CommandResult(status, out.decode(errors="replace"), err.decode(errors="replace"))

    def put(self, local: Path, remote: str, mode: int = 0o644, timeout: float = 60) -> None:
        """Copy a host file into the guest with SFTP and chmod it."""
        local = Path(local)
        if not local.is_file():
            raise ForkdiffError(f"cannot copy {local} into the guest: no such file",
                                "check the path (build it first?)")
        try:
            sftp = self.client.open_sftp()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshLost(f"cannot open SFTP: {exc}", "read the console log") from exc
        try:
            sftp.get_channel().settimeout(timeout)
            sftp.put(str(local), remote)
            sftp.chmod(remote, stat.S_IMODE(mode))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshLost(f"SFTP copy of {local} to {remote} failed: {exc}",
                          "read the console log") from exc
        finally:
            sftp.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


def connect_once(port: int, client_key: Path, known_hosts: Path, timeout: float = 10) -> SshSession:
    """One connection attempt. paramiko.BadHostKeyException if the guest's key is not the
    pinned one; other paramiko/OS errors if sshd is not ready."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    hk = client.get_host_keys()
    for name, entry in pinned_host_keys(known_hosts, port).items():
        for keytype, key in entry.items():
            hk.add(name, keytype, key)
    pkey = paramiko.Ed25519Key.from_private_key_file(str(client_key))
    try:
        client.connect(HOST, port=port, username=USER, pkey=pkey, look_for_keys=False,
                       allow_agent=False, timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout, channel_timeout=timeout)
    except BaseException:
        client.close()
        raise
    return SshSession(client, port)


def connect(port: int, client_key: Path, known_hosts: Path, deadline: float,
            check: Callable[[], None] | None = None) -> SshSession:
    """Retry until sshd answers or `deadline` (time.monotonic()) passes. A wrong host key or a
    refused login is never retried. `check()` is called between attempts (it may raise)."""
    last: Exception | None = None
    attempts = 0
    while True:
        if check is not None:
            check()
        attempts += 1
        try:
            session = connect_once(port, client_key, known_hosts,
                                   timeout=max(1.0, min(10.0, deadline - time.monotonic())))
            session.connect_attempts = attempts
            return session
        except (paramiko.BadHostKeyException, paramiko.AuthenticationException) as exc:
            raise ForkdiffError(f"SSH to the guest refused: {type(exc).__name__}: {exc}",
                                "rebuild the rootfs ('forkdiff rootfs build'): keys and image disagree") from exc
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise ForkdiffError(f"SSH to the guest refused: unknown host key ({exc})",
                                    "rebuild the rootfs: keys and image disagree") from exc
            last = exc
        except (OSError, EOFError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise SshTimeout(f"sshd in the guest did not answer on {HOST}:{port}: {last}",
                             "read the console log (did sshd start? is the NIC driver built in?)")
        time.sleep(CONNECT_RETRY)
