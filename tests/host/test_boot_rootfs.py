"""The initramfs built from the host's real busybox/sshd/libraries (no VM needed): contents,
reuse of an intact image, rebuild of a damaged one, rebuild when an input changes. Each test
uses a private cache (FORKDIFF_CACHE in tmp_path)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from orchestrator.cache import sha256_file
from orchestrator.prepare.rootfs import build_rootfs


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FORKDIFF_CACHE", str(cache))
    return cache


def _listing(image: Path) -> dict[str, str]:
    out = subprocess.run(["cpio", "-itv", "--quiet"], input=image.read_bytes(),
                         capture_output=True, check=True).stdout.decode()
    entries = {}
    for line in out.splitlines():
        parts = line.split()
        name = parts[parts.index("->") - 1] if "->" in parts else parts[-1]
        entries[name] = parts[0]
    return entries


def test_image_contents_and_keys(private_cache: Path, tmp_path: Path) -> None:
    gbin = tmp_path / "gbin"
    gbin.mkdir()
    (gbin / "probe").write_bytes(b"#!/bin/sh\necho probe\n")
    r = build_rootfs(guest_bin=gbin)
    assert r.path.is_relative_to(private_cache)
    entries = _listing(r.path)
    for must in ("init", "bin/busybox", "bin/sh", "usr/sbin/sshd", "usr/lib/openssh/sftp-server",
                 "lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6",
                 "etc/ssh/ssh_host_ed25519_key", "root/.ssh/authorized_keys", "etc/passwd",
                 "dev/console", "usr/local/bin/probe"):
        assert must in entries, must
    assert entries["etc/ssh/ssh_host_ed25519_key"] == "-rw-------"
    assert entries["root/.ssh"] == "drwx------"
    assert entries["dev/console"].startswith("c")
    assert os.stat(r.client_key).st_mode & 0o777 == 0o600
    # The known_hosts pins exactly the host key baked into the image.
    assert r.known_hosts.read_text().split()[1:3] == r.host_pubkey.split()
    assert r.sha256 == sha256_file(r.path)


def test_reuse_and_rebuild(private_cache: Path, tmp_path: Path) -> None:
    gbin = tmp_path / "gbin"
    gbin.mkdir()
    first = build_rootfs(guest_bin=gbin)
    mtime = first.path.stat().st_mtime_ns
    again = build_rootfs(guest_bin=gbin)
    assert again.path == first.path and again.path.stat().st_mtime_ns == mtime  # reused
    # A truncated image is detected by its content hash and rebuilt identically.
    data = first.path.read_bytes()
    first.path.write_bytes(data[: len(data) // 2])
    repaired = build_rootfs(guest_bin=gbin)
    assert repaired.path == first.path
    assert repaired.path.read_bytes() == data
    # A new guest program changes the inputs: a different image.
    (gbin / "extra").write_bytes(b"#!/bin/sh\necho extra\n")
    changed = build_rootfs(guest_bin=gbin)
    assert changed.path != first.path and changed.sha256 != first.sha256
    assert "usr/local/bin/extra" in _listing(changed.path)
