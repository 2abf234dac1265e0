"""Two whole `make vm-test` runs at once (SUITES=maps,counts, both variants) on one shared cache,
one of them interrupted with Ctrl-C (SIGINT to its process group, as a terminal sends it)
and then resumed with RESUME=1. For real: make, the CLI, kernels from the locked cache,
QEMU, sshd.

Checks: the two runs' guests ran at the same time on different SSH ports and wrote to
different folders; the interrupted run left no QEMU and only whole records; the resumed run
gives the same verdicts and the same report summary as the run that was never interrupted;
neither results folder holds anything of the cache's private keys (the client key and the
guest's host key: armoured lines or the raw, hex or base64 seed), a scan shown first to catch
each key planted in a folder."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.analysis.compare import compare_dir
from orchestrator.prepare.rootfs import ensure_keys

REPO = Path(__file__).resolve().parents[2]


def _env(out: Path, resume: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    # maps, then counts: maps alone ends about 0.4 s after its guests boot on an idle host,
    # too soon to interrupt it reliably once both runs have guests; the counts suite (15 forks
    # per scenario, slab counters read around each) keeps the run going a while longer
    env.update(SUITES="maps,counts", OUT=str(out))
    if resume:
        env["RESUME"] = "1"
    return env


def _make_vm_test(out: Path, resume: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(["make", "-s", "-C", str(REPO), "vm-test"], env=_env(out, resume),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _qemus_under(pid: int) -> dict[int, int]:
    """QEMU processes in the session of `pid` -> their forwarded SSH port."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != pid and os.getpgid(int(entry.name)) != pid:
                # QEMU has a session of its own (setsid): find it through its parent chain.
                ppid = int(re.search(r"PPid:\t(\d+)", (entry / "status").read_text()).group(1))
                if not _descends(ppid, pid):
                    continue
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, AttributeError):
            continue
        if cmd and cmd[0].endswith(b"qemu-system-x86_64"):
            m = re.search(rb"hostfwd=tcp:127\.0\.0\.1:(\d+)-", b" ".join(cmd))
            found[int(entry.name)] = int(m.group(1)) if m else 0
    return found


def _descends(pid: int, ancestor: int) -> bool:
    for _ in range(20):
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        try:
            pid = int(re.search(r"PPid:\t(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
        except (OSError, AttributeError):
            return False
    return False


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _verdicts(out: Path) -> list[tuple]:
    df = compare_dir(out)
    cols = ["suite", "variant", "scenario", "measurement", "key", "observed", "predicted", "verdict"]
    return sorted(map(tuple, df[cols].astype(str).to_numpy().tolist()))


def _summary_table(out: Path) -> list[str]:
    """The report's summary table: verdict counts per axis, suite and variant (report.md)."""
    lines = (out / "report.md").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| axis | suite | variant |"))
    table = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            if ln.strip():
                break
            continue
        table.append(ln)
    assert len(table) > 2
    return table


def _ed25519_seed(blob: bytes) -> bytes:
    """The 32-byte private seed of an unencrypted OpenSSH ed25519 private key blob."""
    magic = b"openssh-key-v1\0"
    assert blob.startswith(magic)
    pos = len(magic)

    def string() -> bytes:
        nonlocal pos
        n = struct.unpack_from(">I", blob, pos)[0]
        pos += 4 + n
        return blob[pos - n:pos]

    cipher, _kdf, _kdfopts = string(), string(), string()
    assert cipher == b"none", "the cache's keys have no passphrase"
    pos += 4  # number of keys (1)
    string()  # public key
    priv = string()
    pos = 8  # inside the private section: two check words, then the key type
    blob = priv
    assert string() == b"ssh-ed25519"
    string()  # public key
    return string()[:32]  # seed || public key


def _key_secrets(key: Path) -> list[bytes]:
    """What a leak of the private key `key` would leave in a file: its armoured body lines
    (all but the first, which every unencrypted OpenSSH ed25519 key shares), and its private
    seed raw, in hex and in base64."""
    lines = [ln for ln in key.read_text().splitlines() if ln and "PRIVATE KEY" not in ln]
    seed = _ed25519_seed(base64.b64decode("".join(lines)))
    return [ln.encode() for ln in lines[1:]] + [seed, seed.hex().encode(),
                                                base64.b64encode(seed).rstrip(b"=")]


def _no_secrets(out: Path, secrets: list[bytes]) -> None:
    files = [f for f in out.rglob("*") if f.is_file()]
    assert files, f"nothing to scan in {out}"
    for f in files:
        data = f.read_bytes()
        assert b"PRIVATE KEY" not in data, f"{f} holds a private key"
        leaked = [i for i, s in enumerate(secrets) if s in data]
        if leaked:  # not `assert s not in data`: pytest would print the key material
            pytest.fail(f"{f} holds key material (secrets {leaked})")


def _secrets_of_the_cache_keys(tmp: Path) -> list[bytes]:
    """The cache's client and host private keys (those the runs use), each checked to be
    caught by _no_secrets when planted in a folder the way a log could carry it."""
    keys = ensure_keys()
    secrets = []
    for key in (keys.client_key, keys.host_key):
        mine = _key_secrets(key)
        seed = mine[-3]
        body = "\n".join(ln for ln in key.read_text().splitlines() if "PRIVATE KEY" not in ln)
        for i, planted in enumerate((body.encode(), b"x" + seed + b"y",
                                     b"seed=" + seed.hex().encode())):
            folder = tmp / f"planted-{key.name}-{i}"
            folder.mkdir()
            (folder / "console.log").write_bytes(b"boot\n" + planted + b"\n")
            with pytest.raises(pytest.fail.Exception, match="key material"):
                _no_secrets(folder, mine)
        secrets += mine
    return secrets


def test_secret_scan_catches_the_cache_keys(tmp_path: Path) -> None:
    assert len(_secrets_of_the_cache_keys(tmp_path)) >= 2 * 4


def test_two_runs_at_once_one_interrupted_and_resumed(tmp_path: Path) -> None:
    clean, cut = tmp_path / "clean", tmp_path / "interrupted"
    p_clean = _make_vm_test(clean)
    p_cut = _make_vm_test(cut)
    obs = cut / "observations.jsonl"
    ports: dict[str, set[int]] = {"clean": set(), "cut": set()}
    overlap = False
    cut_qemus: set[int] = set()
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and p_cut.poll() is None:
        q_clean, q_cut = _qemus_under(p_clean.pid), _qemus_under(p_cut.pid)
        ports["clean"] |= set(q_clean.values())
        ports["cut"] |= set(q_cut.values())
        cut_qemus |= set(q_cut)
        overlap |= bool(q_clean and q_cut)
        if obs.exists() and len(obs.read_text().splitlines()) >= 8 and overlap:
            break
        time.sleep(0.2)
    assert p_cut.poll() is None, "the run ended before it could be interrupted:\n" + p_cut.communicate()[0]
    os.killpg(p_cut.pid, signal.SIGINT)
    cut_out = p_cut.communicate(timeout=120)[0]
    assert p_cut.returncode != 0, cut_out
    time.sleep(1)
    assert cut_qemus and not [q for q in cut_qemus if _alive(q)], "QEMU outlived the interrupted run"
    lines = obs.read_text().splitlines()
    assert lines and all(json.loads(line)["key"] for line in lines)  # whole records only
    done_before = len(lines)

    clean_out = p_clean.communicate(timeout=900)[0]
    assert p_clean.returncode == 0, clean_out
    assert "PASS" in clean_out
    assert overlap, "the two runs never had guests at the same time"
    assert ports["clean"] and ports["cut"] and not (ports["clean"] & ports["cut"]), ports

    p_resume = _make_vm_test(cut, resume=True)
    resume_out = p_resume.communicate(timeout=900)[0]
    assert p_resume.returncode == 0, resume_out
    after = obs.read_text().splitlines()
    assert after[:done_before] == lines  # kept as written, only appended to
    recs = [json.loads(line) for line in after]
    assert len({r["key"] for r in recs}) == len(recs) and len(recs) > done_before

    assert _verdicts(cut) == _verdicts(clean)
    assert _summary_table(cut) == _summary_table(clean)

    secrets = _secrets_of_the_cache_keys(tmp_path)
    _no_secrets(clean, secrets)
    _no_secrets(cut, secrets)
