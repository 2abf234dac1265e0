"""SSH keys (orchestrator/rootfs.ensure_keys) in a private cache: real ssh-keygen; private keys
0600 in a 0700 folder, even when something loosened them; nothing secret in the repository."""

import stat
import subprocess
from pathlib import Path

from orchestrator.prepare.rootfs import ensure_keys


def test_private_keys_are_0600_in_a_0700_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    keys = ensure_keys()
    for p in (keys.host_key, keys.client_key):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        assert "PRIVATE KEY" in p.read_text()
    assert stat.S_IMODE(keys.host_key.parent.stat().st_mode) == 0o700
    keys.client_key.chmod(0o644)
    again = ensure_keys()
    assert again.client_key == keys.client_key
    assert stat.S_IMODE(again.client_key.stat().st_mode) == 0o600
    # the known_hosts pins exactly the generated host key
    assert keys.known_hosts.read_text().split()[1:] == keys.host_pubkey.split()


def test_no_private_key_is_tracked_in_the_repository():
    root = Path(__file__).parents[2]
    files = subprocess.run(["git", "-C", str(root), "ls-files"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert files, "the test runs in a git checkout"
    marker = b"PRIVATE" + b" KEY-----"  # spelt in two parts so this file does not match itself
    for f in files:
        p = root / f
        if p.is_file() and p.stat().st_size < 2_000_000:
            assert marker not in p.read_bytes(), f
