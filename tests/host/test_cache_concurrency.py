"""Several `forkdiff rootfs build` processes started at once on one fresh cache (for real:
the CLI, ssh-keygen, busybox, the guest programs): the cache locks make them agree on one set
of keys and one image, whose baked-in keys are the cache's keys and whose recorded hash is
its content's."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path


def _newc_files(cpio: bytes) -> dict[str, bytes]:
    """name -> content of the regular files and symlinks in a newc cpio archive."""
    files, off = {}, 0
    while off + 110 <= len(cpio):
        hdr = cpio[off:off + 110]
        assert hdr[:6] == b"070701", "not a newc archive"
        namesize, filesize = int(hdr[94:102], 16), int(hdr[54:62], 16)
        name = cpio[off + 110:off + 110 + namesize - 1].decode()
        off = (off + 110 + namesize + 3) & ~3
        if name == "TRAILER!!!":
            break
        files[name] = cpio[off:off + filesize]
        off = (off + filesize + 3) & ~3
    return files


def test_concurrent_cold_builds_agree(tmp_path: Path) -> None:
    env = dict(os.environ, FORKDIFF_CACHE=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-m", "orchestrator", "rootfs", "build"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e for _, e in outs]
    paths = {o.strip().splitlines()[-1] for o, _ in outs}
    assert len(paths) == 1
    image = Path(paths.pop())
    data = image.read_bytes()
    assert (image.parent / "initramfs.sha256").read_text().strip() == hashlib.sha256(data).hexdigest()
    files = _newc_files(data)
    keys = tmp_path / "cache" / "keys"
    client_pub = " ".join((keys / "client_ed25519.pub").read_text().split()[:2])
    host_priv = (keys / "ssh_host_ed25519_key").read_bytes()
    authorized = [n for n in files if n.endswith("authorized_keys")]
    assert authorized and client_pub in files[authorized[0]].decode()
    host_keys = [n for n in files if n.endswith("ssh_host_ed25519_key")]
    assert host_keys and files[host_keys[0]] == host_priv
    host_pub = " ".join((keys / "ssh_host_ed25519_key.pub").read_text().split()[:2])
    assert host_pub in (keys / "known_hosts").read_text()
    assert (tmp_path / "cache" / "rootfs" / "latest").resolve() == image.parent.resolve()
