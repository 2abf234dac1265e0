"""The guest's initramfs: busybox-static, OpenSSH's sshd and sftp-server with the shared
libraries they need (taken from the host's Debian packages), an /init that mounts the virtual
file systems, configures eth0 for QEMU user networking, starts sshd (key auth only, host key
baked in) and prints a readiness marker, plus every guest program in guest/bin.

Keys are ed25519, generated once per cache under cache/keys/. The image lives in
cache/rootfs/<inputs digest>/ and is rebuilt only when an input changes; on reuse its content
hash is checked (a truncated or edited image is rebuilt).

The image is an uncompressed newc archive: QEMU copies it into guest memory with fw_cfg DMA,
and the kernel then only unpacks it into tmpfs. A gzip image (8.7 MB instead of 20 MB) made
the guest kernel inflate it under TCG first: 0.2 s of QEMU CPU time on every boot."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import resources
from ..cache import atomic_write, cache_path, locked, mark_used, sha256_file, sha256_text
from ..errors import ForkdiffError
from . import guestbin

FORMAT_VERSION = "6"  # bump when the layout or the init script changes meaning
READY_MARKER = "FORKDIFF-READY"
GUEST_IP = "10.0.2.15"
GUEST_GW = "10.0.2.2"
GUEST_BIN_IN_IMAGE = "/usr/local/bin"
KNOWN_HOSTS_ALIAS = "forkdiff-guest"

BUSYBOX = Path("/bin/busybox")
SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
# NSS modules glibc may dlopen for "files" lookups (built into libc since 2.34; kept if present).
NSS_LIBS = (Path("/lib/x86_64-linux-gnu/libnss_files.so.2"),)
DEFAULT_GUEST_BIN = resources.guest_bin_dir()

INIT_SCRIPT = f"""#!/bin/sh
# forkdiff guest init (PID 1). Never exits: PID 1 exiting panics the kernel.
export PATH={GUEST_BIN_IN_IMAGE}:/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/sshd
chmod 755 /run/sshd
hostname forkdiff
ip link set lo up
ip link set eth0 up || echo "forkdiff-init: no eth0 (NIC driver missing from the kernel?)"
ip addr add {GUEST_IP}/24 dev eth0
ip route add default via {GUEST_GW}
/usr/sbin/sshd -e -f /etc/ssh/sshd_config || echo "forkdiff-init: sshd failed to start"
# sshd forks into the background before it binds port 22, and writes its pid file once bound:
# the marker means "sshd listens" (up to 10 s of guest time, then it is printed anyway).
n=0
while [ ! -s /run/sshd.pid ] && [ $n -lt 5000 ]; do usleep 2000; n=$((n + 1)); done
echo "{READY_MARKER} $(uname -r)"
while true; do sleep 3600; done
"""

SSHD_CONFIG = """# forkdiff guest sshd: key auth only, root by key only, no PAM.
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
StrictModes yes
MaxSessions 32
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
"""

PASSWD = """root:x:0:0:root:/root:/bin/sh
sshd:x:100:65534:sshd privsep:/run/sshd:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
tty:x:5:
nogroup:x:65534:
"""
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files\n"
HOSTS = "127.0.0.1 localhost\n10.0.2.15 forkdiff\n"


@dataclass(frozen=True)
class Rootfs:
    path: Path  # the newc cpio image (uncompressed)
    sha256: str  # of the image file
    client_key: Path  # private ed25519 key (0600) for root@guest
    host_pubkey: str  # "ssh-ed25519 AAAA..." baked into the image
    known_hosts: Path  # known_hosts holding only the guest's host key (alias forkdiff-guest)


# --- keys -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Keys:
    host_key: Path
    client_key: Path
    known_hosts: Path

    @property
    def host_pubkey(self) -> str:
        return " ".join(Path(f"{self.host_key}.pub").read_text().split()[:2])

    @property
    def client_pubkey(self) -> str:
        return " ".join(Path(f"{self.client_key}.pub").read_text().split()[:2])


def _keygen(path: Path, comment: str) -> None:
    if path.exists() and Path(f"{path}.pub").exists():
        return
    for p in (path, Path(f"{path}.pub")):
        p.unlink(missing_ok=True)
    try:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                        "-f", str(path)], check=True, capture_output=True, timeout=60)
    except FileNotFoundError as exc:
        raise ForkdiffError("ssh-keygen is not installed", "run 'make setup' (openssh-client)") from exc
    except subprocess.CalledProcessError as exc:
        raise ForkdiffError(f"ssh-keygen failed for {path}: {exc.stderr.decode(errors='replace').strip()}",
                            "check that the cache folder is writable") from exc


def ensure_keys() -> Keys:
    """The per-cache ed25519 keys (generated on first use, private keys 0600)."""
    folder = cache_path("keys")
    os.chmod(folder, 0o700)
    with locked("keys"):
        host = folder / "ssh_host_ed25519_key"
        client = folder / "client_ed25519"
        _keygen(host, "forkdiff-guest-host")
        _keygen(client, "forkdiff-client")
        for p in (host, client):
            os.chmod(p, 0o600)
        keys = Keys(host, client, folder / "known_hosts")
        line = f"{KNOWN_HOSTS_ALIAS} {keys.host_pubkey}\n"
        if not keys.known_hosts.exists() or keys.known_hosts.read_text() != line:
            atomic_write(keys.known_hosts, line)
    return keys


# --- cpio -------------------------------------------------------------------------------------

class CpioWriter:
    """Minimal newc ("070701") archive writer: every entry owned by root, mtime 0."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1
        self.names: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
               nlink: int = 1) -> None:
        name = name.lstrip("/")
        if name in self.names:
            return
        self.names.add(name)
        raw_name = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(raw_name), 0)
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self.buf.write(raw_name)
        self._pad()
        self.buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def dir(self, name: str, perm: int = 0o755) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            self._entry(sub, 0o040000 | (perm if i == len(parts) else 0o755), nlink=2)

    def _parent(self, name: str) -> None:
        parent = os.path.dirname(name.strip("/"))
        if parent:
            self.dir(parent)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._parent(name)
        self._entry(name, 0o100000 | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._parent(name)
        self._entry(name, 0o120777, target.encode())

    def chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._parent(name)
        self._entry(name, 0o020000 | perm, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0, nlink=1)
        self.buf.write(b"\0" * (-self.buf.tell() % 512))
        return self.buf.getvalue()


# --- inputs -----------------------------------------------------------------------------------

def _require(path: Path, package: str) -> Path:
    if not path.is_file():
        raise ForkdiffError(f"{path} is missing on this host", f"run 'make setup' (installs {package})")
    return path


def shared_libraries(binary: Path) -> list[Path]:
    """The shared libraries `binary` loads, as ldd names them (dynamic loader included)."""
    try:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ForkdiffError(f"ldd {binary} failed: {exc}", "run 'make setup' (build-essential)") from exc
    libs = []
    for line in out.stdout.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.append(Path(m.group(1)))
        elif "not found" in line:
            raise ForkdiffError(f"{binary} needs a library that is missing: {line.strip()}",
                                "run 'make setup' to reinstall openssh-server")
    return libs


def busybox_applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True, timeout=30)
    return [a for a in out.stdout.split() if a and not a.endswith("/busybox")]


def guest_programs(guest_bin: Path | None = None) -> list[Path]:
    """Guest programs to bake in; corrupt ones are rebuilt first (orchestrator.prepare.guestbin)."""
    return guestbin.programs(DEFAULT_GUEST_BIN if guest_bin is None else guest_bin)


def _image_files(keys: Keys, guest_bin: Path | None) -> dict[str, tuple[Path | bytes, int]]:
    """Every regular file of the image: path in image -> (host file or bytes, permissions)."""
    files: dict[str, tuple[Path | bytes, int]] = {
        "bin/busybox": (_require(BUSYBOX, "busybox-static"), 0o755),
        "usr/sbin/sshd": (_require(SSHD, "openssh-server"), 0o755),
        "usr/lib/openssh/sftp-server": (_require(SFTP_SERVER, "openssh-sftp-server"), 0o755),
        "init": (INIT_SCRIPT.encode(), 0o755),
        "etc/ssh/sshd_config": (SSHD_CONFIG.encode(), 0o644),
        "etc/ssh/ssh_host_ed25519_key": (keys.host_key, 0o600),
        "etc/ssh/ssh_host_ed25519_key.pub": (Path(f"{keys.host_key}.pub"), 0o644),
        "root/.ssh/authorized_keys": ((keys.client_pubkey + "\n").encode(), 0o600),
        "etc/passwd": (PASSWD.encode(), 0o644),
        "etc/group": (GROUP.encode(), 0o644),
        "etc/nsswitch.conf": (NSSWITCH.encode(), 0o644),
        "etc/hosts": (HOSTS.encode(), 0o644),
        "etc/hostname": (b"forkdiff\n", 0o644),
    }
    for binary in (SSHD, SFTP_SERVER):
        for lib in shared_libraries(binary):
            files.setdefault(str(lib).lstrip("/"), (lib, 0o755))
    for lib in NSS_LIBS:
        if lib.exists():
            files.setdefault(str(lib).lstrip("/"), (lib, 0o755))
    for prog in guest_programs(guest_bin):
        files[f"{GUEST_BIN_IN_IMAGE.lstrip('/')}/{prog.name}"] = (prog, 0o755)
    return files


def _content(src: Path | bytes) -> bytes:
    return src if isinstance(src, bytes) else src.read_bytes()


def inputs_digest(files: dict[str, tuple[Path | bytes, int]], applets: list[str]) -> str:
    parts: list[str | bytes] = [f"format {FORMAT_VERSION}", " ".join(applets)]
    for name in sorted(files):
        src, perm = files[name]
        digest = sha256_file(src) if isinstance(src, Path) else sha256_text(src)
        parts.append(f"{name} {perm:o} {digest}")
    return sha256_text(*parts)


def _render(files: dict[str, tuple[Path | bytes, int]], applets: list[str]) -> bytes:
    w = CpioWriter()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "etc/ssh", "proc", "sys",
              "dev", "run", "var/empty", "var/log", "lib64", "lib/x86_64-linux-gnu"):
        w.dir(d)
    w.dir("root", 0o700)
    w.dir("root/.ssh", 0o700)
    w.dir("tmp", 0o1777)
    w.chardev("dev/console", 5, 1)
    w.chardev("dev/null", 1, 3, 0o666)
    for name in sorted(files):
        src, perm = files[name]
        w.file(name, _content(src), perm)
    for applet in applets:
        if applet.lstrip("/") not in files:
            w.symlink(applet, "/bin/busybox")
    return w.finish()


def build_rootfs(guest_bin: Path | None = None, force: bool = False) -> Rootfs:
    """The initramfs for the current inputs, built if missing, changed or damaged."""
    keys = ensure_keys()
    files = _image_files(keys, guest_bin)
    applets = busybox_applets()
    digest = inputs_digest(files, applets)
    folder = cache_path("rootfs", digest[:16])
    image = folder / "initramfs.cpio"
    recorded = folder / "initramfs.sha256"
    with locked(f"rootfs-{digest[:16]}"):
        ok = (not force and image.is_file() and recorded.is_file()
              and recorded.read_text().strip() == sha256_file(image))
        if not ok:
            data = _render(files, applets)
            atomic_write(image, data)
            atomic_write(recorded, hashlib.sha256(data).hexdigest() + "\n")
        sha = recorded.read_text().strip()
        mark_used(folder)
    latest = cache_path("rootfs") / "latest"
    tmp_link = latest.with_name(f".latest.{os.getpid()}.tmp")  # own name: runs may race here
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(folder.name)
    os.replace(tmp_link, latest)
    return Rootfs(path=image, sha256=sha, client_key=keys.client_key,
                  host_pubkey=keys.host_pubkey, known_hosts=keys.known_hosts)

