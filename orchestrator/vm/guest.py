"""A booted guest: QEMU (driven over QMP with qemu.qmp) running a variant's bzImage with our
initramfs, the serial console in a log file watched for crashes during the whole session, and
an SSH session to run commands and copy files.

    with Guest(kernel, rootfs) as g:
        r = g.run("uname -r", timeout=30)    # CommandResult; GuestCrashed / GuestHung

QEMU never outlives the Guest: it is stopped in __exit__ (QMP quit, then SIGKILL), killed by
an atexit hook, converted-to-exception on SIGTERM/SIGHUP, and started with PR_SET_PDEATHSIG so
that it dies with the Python thread that started it even on SIGKILL."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from qemu.qmp.legacy import QEMUMonitorProtocol

from ..cache import cache_path
from ..errors import ForkdiffError
from ..prepare.rootfs import READY_MARKER, Rootfs, build_rootfs
from . import crash, kvm
from .qemu_cmd import QEMU, QemuConfig, free_port, nic_model_for, qemu_argv
from .ssh import CommandResult, SshLost, SshSession, SshTimeout
from .ssh import connect as ssh_connect

if TYPE_CHECKING:
    from ..prepare.kernel import BuiltKernel

__all__ = ["Guest", "GuestCrashed", "GuestHung", "GuestLost", "CommandResult"]

QMP_ACCEPT_TIMEOUT = 20.0
KVM_SILENCE_LIMIT = 20.0  # no console byte this long under KVM: KVM hangs here, use TCG
CRASH_SETTLE = 2.0  # after a crash line, wait this long (or for QEMU to exit) for the report
CONSOLE_TAIL = 40
BOOT_POLL = 0.01  # console poll from /init to the readiness marker: acted on within 10 ms
WATCH_POLL = 0.1  # console poll otherwise (crash watch). Not faster while the kernel boots: in
#                   plain TCG its TSC calibration times QEMU against the host's clock, and a
#                   loaded host already makes it fail now and then (bad MHz, RCU stall reports)
# Console lines that mark the phases of a boot (Guest.boot_phases, make bench-boot).
INIT_LINE = "Run /init"  # the kernel starts the initramfs's /init
BOOT_LANDMARKS = (("kernel first line", "Linux version"), ("init started", INIT_LINE),
                  ("ready marker", READY_MARKER))


class GuestCrashed(ForkdiffError):
    """The guest kernel reported a crash on its console (panic, Oops, BUG, WARNING, ...)."""

    def __init__(self, kind: str, excerpt: str, console_log: Path, line: str):
        super().__init__(f"guest kernel crashed ({kind}): {line.strip()}",
                         "read the console excerpt / log", console_log)
        self.kind = kind
        self.excerpt = excerpt
        self.console_log = console_log
        self.line = line


class _WithTail(ForkdiffError):
    """A guest error whose message names the last console line; `console_tail` holds more."""

    def __init__(self, cause: str, next_step: str = "", log: Path | str | None = None,
                 console_tail: str = ""):
        last = next((ln.strip() for ln in reversed(console_tail.splitlines()) if ln.strip()), "")
        super().__init__(f"{cause}; last console line: {last!r}" if console_tail else cause,
                         next_step, log)
        self.console_tail = console_tail


class GuestHung(_WithTail):
    """A guest command (or the boot) did not finish within its timeout."""


class GuestLost(_WithTail):
    """QEMU exited without a recognised crash report. `qemu_status` is its exit status: >= 0
    when QEMU ended by itself (with -no-reboot, a guest that resets, e.g. on a triple fault,
    makes QEMU exit 0), negative when a signal killed it, None when there was no QEMU."""

    qemu_status: int | None = None


# --- process hygiene --------------------------------------------------------------------------

_LIVE: set[subprocess.Popen[bytes]] = set()
_PR_SET_PDEATHSIG = 1


def _kill_all_live() -> None:
    for proc in list(_LIVE):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
        _LIVE.discard(proc)


atexit.register(_kill_all_live)

_STOPPING = threading.Event()


def stop_all_guests() -> None:
    """Kill every QEMU this process started and refuse to start new ones: how a run whose
    guests live in worker threads stops on SIGINT/SIGTERM (the signal reaches the main thread
    only; the workers then see their guest lost and end)."""
    _STOPPING.set()
    _kill_all_live()


@contextlib.contextmanager
def terminate_raises():
    """In the main thread: SIGTERM/SIGHUP raise (like SIGINT's KeyboardInterrupt) while the
    block runs, so that a run whose guests live in worker threads can stop them."""
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError, OSError):
                old[sig] = signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, handler in old.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)


def _child_setup() -> None:
    """Runs in the QEMU child before exec: die with the parent, own process group."""
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class _Terminated(SystemExit):
    pass


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    raise _Terminated(128 + signum)


# --- console watcher --------------------------------------------------------------------------

class ConsoleWatcher:
    """Tails the console log in a thread: records the readiness marker and the first crash."""

    def __init__(self, path: Path, interval: float = 0.1):
        self.path = path
        self.interval = interval
        self.lines: list[str] = []
        self.ready_line: str | None = None
        self.crash: crash.CrashMatch | None = None
        self.crash_time: float | None = None
        self.bytes_seen = 0
        self.line_times: list[float] = []  # time.monotonic() when each line was first read
        self.ready_event = threading.Event()
        self._faster: tuple[str, float] | None = None
        self._partial = b""
        self._offset = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="forkdiff-console", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def poll_faster_after(self, text: str, interval: float) -> None:
        """Poll every `interval` seconds once a line holding `text` has been read."""
        self._faster = (text, interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self.poll()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):
                self.poll()

    def poll(self) -> None:
        """Read what was appended since the last poll and scan the complete lines."""
        with self._lock:
            try:
                with open(self.path, "rb") as fh:
                    fh.seek(self._offset)
                    data = fh.read()
            except FileNotFoundError:
                return
            if not data:
                return
            self._offset += len(data)
            self.bytes_seen += len(data)
            chunks = (self._partial + data).split(b"\n")
            self._partial = chunks.pop()
            now = time.monotonic()
            for raw in chunks:
                line = raw.decode(errors="replace").rstrip("\r")
                self.lines.append(line)
                self.line_times.append(now)
                if self._faster is not None and self._faster[0] in line:
                    self.interval, self._faster = self._faster[1], None
                if self.ready_line is None and line.startswith(READY_MARKER):
                    self.ready_line = line
                    self.ready_event.set()
                if self.crash is None:
                    pat = crash.match_line(line)
                    if pat is not None:
                        self.crash = crash.CrashMatch(pat.kind, len(self.lines) - 1, line, pat.fatal)
                        self.crash_time = time.monotonic()

    def first_seen(self, landmarks: tuple[tuple[str, str], ...]) -> dict[str, float]:
        """name -> time.monotonic() when a line holding that landmark's text was first read."""
        found: dict[str, float] = {}
        with self._lock:
            for line, seen in zip(self.lines, self.line_times, strict=True):
                for name, text in landmarks:
                    if name not in found and text in line:
                        found[name] = seen
        return found

    def acknowledge(self) -> crash.CrashMatch | None:
        """Forget the recorded crash (and any report lines seen so far); watch on."""
        with self._lock:
            seen, self.crash, self.crash_time = self.crash, None, None
            return seen

    def text(self) -> str:
        with self._lock:
            tail = self._partial.decode(errors="replace")
            return "\n".join(self.lines + ([tail] if tail else []))

    def mark(self) -> int:
        """A position in the console: lines() since it are those printed after this call."""
        self.poll()
        with self._lock:
            return len(self.lines)

    def lines_since(self, mark: int, before_crash: bool = False) -> list[str]:
        """Console lines since `mark`; with before_crash, only those before the recorded crash
        line (a WARNING does not stop the guest: what it printed afterwards is not the cause)."""
        self.poll()
        with self._lock:
            end = self.crash.line_no if before_crash and self.crash is not None else len(self.lines)
            return self.lines[mark:max(mark, end)]

    def tail(self, n: int = CONSOLE_TAIL) -> str:
        with self._lock:
            return "\n".join(self.lines[-n:])


# --- the guest --------------------------------------------------------------------------------

class Guest:
    """A running guest VM; use as a context manager."""

    def __init__(self, kernel: BuiltKernel, rootfs: Rootfs | None = None, *, icount: bool = False,
                 memory_mb: int = 1024, smp: int = 1, log_dir: Path | None = None,
                 boot_timeout: float = 180, extra_append: str = "", accel: str | None = None,
                 extra_args: tuple[str, ...] = ()):
        self.kernel = kernel
        self.extra_args = tuple(extra_args)  # more QEMU arguments (e.g. -plugin: orchestrator.run.insnprofile)
        self.rootfs = rootfs
        self.icount = icount
        self.memory_mb = memory_mb
        self.smp = smp
        self.boot_timeout = boot_timeout
        self.extra_append = extra_append
        self.forced_accel = accel  # "kvm" / "tcg" to skip the probe (tests, debugging)
        if log_dir is None:
            log_dir = Path(tempfile.mkdtemp(prefix=f"{time.strftime('%Y%m%d-%H%M%S')}-{kernel.variant}-{kernel.profile}-",
                                            dir=cache_path("logs", "vm")))
        self.log_dir = Path(log_dir)
        self.console_log = self.log_dir / "console.log"
        self.qemu_log = self.log_dir / "qemu.log"
        self.boot_seconds = 0.0
        # seconds after the boot began (QEMU started, ...): see _boot() and BOOT_LANDMARKS
        self.boot_phases: dict[str, float] = {}
        self.qemu_mode = ""
        self.ssh_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.qmp: QEMUMonitorProtocol | None = None
        self.watcher: ConsoleWatcher | None = None
        self.ssh: SshSession | None = None
        self.tolerated: list[crash.CrashMatch | None] = []  # reports check(tolerate=) let pass
        self._sockdir: str | None = None
        self._old_handlers: dict[int, object] = {}

    # -- context manager --

    def __enter__(self) -> Guest:
        self._install_signal_handlers()
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError, OSError):
                self._old_handlers[sig] = signal.signal(sig, _raise_terminated)

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)  # type: ignore[arg-type]
        self._old_handlers.clear()

    # -- boot --

    def start(self) -> None:
        if _STOPPING.is_set():
            raise ForkdiffError("the run is stopping: no new guest is started", "")
        if self.rootfs is None:
            self.rootfs = build_rootfs()
        if not Path(self.kernel.bzimage).is_file():
            raise ForkdiffError(f"kernel image {self.kernel.bzimage} is missing",
                                f"run 'forkdiff kernel build --variant {self.kernel.variant} "
                                f"--profile {self.kernel.profile}'")
        if shutil.which(QEMU) is None:
            raise ForkdiffError(f"{QEMU} is not installed", "run 'make setup' (qemu-system-x86)")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        accel = self._choose_accel()
        try:
            self._boot(accel)
        except _KvmSilent:
            kvm.mark_unusable(f"a guest printed nothing for {KVM_SILENCE_LIMIT:.0f} s under KVM")
            self._teardown()
            self._boot("tcg")

    def _choose_accel(self) -> str:
        if self.icount:
            return "tcg"
        if self.forced_accel:
            return self.forced_accel
        return "kvm" if kvm.probe(Path(self.kernel.bzimage)).usable else "tcg"

    def _nic_model(self) -> str:
        try:
            return nic_model_for(Path(self.kernel.config).read_text())
        except (OSError, AttributeError):
            return "virtio-net-pci"

    def _boot(self, accel: str) -> None:
        assert self.rootfs is not None
        t0 = time.monotonic()
        self.boot_phases = {}
        for _attempt in range(3):
            self._sockdir = tempfile.mkdtemp(prefix="forkdiff-qmp-")
            qmp_path = Path(self._sockdir) / "qmp.sock"
            self.ssh_port = free_port()
            cfg = QemuConfig(bzimage=Path(self.kernel.bzimage), initrd=self.rootfs.path,
                             console_log=self.console_log, qmp_socket=qmp_path,
                             ssh_port=self.ssh_port, accel=accel, icount=self.icount,
                             memory_mb=self.memory_mb, smp=self.smp, nic_model=self._nic_model(),
                             extra_append=self.extra_append, extra_args=self.extra_args)
            self.qemu_mode = cfg.mode
            self.console_log.write_bytes(b"")
            self.qmp = QEMUMonitorProtocol(str(qmp_path), server=True)
            argv = qemu_argv(cfg)
            (self.log_dir / "qemu.cmdline").write_text(" ".join(argv) + "\n")
            self.boot_phases["qemu started"] = time.monotonic() - t0
            with open(self.qemu_log, "wb") as qlog:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qlog,
                                             stderr=subprocess.STDOUT, preexec_fn=_child_setup)
            _LIVE.add(self.proc)
            try:
                self.qmp.accept(timeout=QMP_ACCEPT_TIMEOUT)
                self.boot_phases["qmp connected"] = time.monotonic() - t0
                break
            except Exception as exc:
                hung = self.proc.poll() is None  # still running but never connected to QMP
                msg = self._qemu_stderr()
                self._teardown()
                if "hostfwd" in msg or "Could not set up host forwarding" in msg:
                    continue  # the port was taken between free_port() and QEMU: try another
                if accel == "kvm" and hung:
                    raise _KvmSilent() from exc
                raise ForkdiffError(f"QEMU did not start: {msg.strip().splitlines()[-1] if msg.strip() else exc}",
                                    "read the QEMU log", self.qemu_log) from exc
        else:
            raise ForkdiffError("QEMU could not forward a free port three times",
                                "retry; check what listens on 127.0.0.1", self.qemu_log)
        if self.watcher is not None:  # a boot before this one (KVM fell back to TCG)
            self.watcher.stop()
        self.watcher = ConsoleWatcher(self.console_log, interval=WATCH_POLL)
        self.watcher.poll_faster_after(INIT_LINE, BOOT_POLL)
        self.watcher.start()
        deadline = t0 + self.boot_timeout
        while not self.watcher.ready_event.wait(WATCH_POLL):  # returns as soon as it is set
            self.check()
            now = time.monotonic()
            if accel == "kvm" and self.watcher.bytes_seen == 0 and now - t0 > KVM_SILENCE_LIMIT:
                raise _KvmSilent()
            if now > deadline:
                raise GuestHung(f"guest did not boot within {self.boot_timeout:g} s ({self.qemu_mode})",
                                "read the console log; raise boot_timeout under TCG", self.console_log,
                                self.watcher.tail())
        self.check()
        self.watcher.interval = WATCH_POLL
        try:
            self.ssh = ssh_connect(self.ssh_port, self.rootfs.client_key, self.rootfs.known_hosts,
                                   deadline=deadline, check=self.check)
        except SshTimeout as exc:
            raise GuestHung(exc.cause, exc.next_step, self.console_log, self.watcher.tail()) from exc
        self.boot_seconds = time.monotonic() - t0
        self.boot_phases.update(self._console_phases(t0))
        self.boot_phases["ssh connected"] = self.boot_seconds

    def _console_phases(self, t0: float) -> dict[str, float]:
        """When (seconds after t0, as the watcher first read them) the console showed the
        boot's landmarks: the kernel's first line, /init started, the readiness marker."""
        assert self.watcher is not None
        return {phase: seen - t0 for phase, seen in self.watcher.first_seen(BOOT_LANDMARKS).items()}

    def _qemu_stderr(self) -> str:
        with contextlib.suppress(OSError):
            return self.qemu_log.read_text(errors="replace")
        return ""

    # -- health --

    def qemu_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self, tolerate: frozenset[str] = frozenset()) -> None:
        """Raise GuestCrashed if the console shows a crash, GuestLost if QEMU is gone. A
        non-fatal report of a kind in `tolerate` (one a command provokes on purpose, e.g. the
        "kmemleak: N new suspected memory leaks" line of our own kmemleak scan) is
        acknowledged instead, and kept in `tolerated`."""
        w = self.watcher
        if w is not None:
            w.poll()
            if w.crash is not None and w.crash.kind in tolerate and not w.crash.fatal:
                self.tolerated.append(w.acknowledge())
            if w.crash is not None:
                self._raise_crash()
        if self.proc is not None and self.proc.poll() is not None:
            if w is not None:
                w.poll()
                if w.crash is not None:
                    self._raise_crash()
            lost = GuestLost(f"QEMU exited with status {self.proc.returncode}",
                             "read the console and QEMU logs", self.console_log,
                             w.tail() if w else "")
            lost.qemu_status = self.proc.returncode
            raise lost

    def _raise_crash(self) -> None:
        w = self.watcher
        assert w is not None and w.crash is not None
        # Let the rest of the report reach the log: until QEMU exits or CRASH_SETTLE passes.
        settle_until = (w.crash_time or time.monotonic()) + CRASH_SETTLE
        while self.qemu_alive() and time.monotonic() < settle_until:
            time.sleep(0.1)
        w.poll()
        text = w.text()
        m = w.crash
        raise GuestCrashed(m.kind, crash.excerpt(text, m.line_no), self.console_log, m.line)

    def clear_crash(self) -> crash.CrashMatch | None:
        """After a GuestCrashed for a non-fatal report (e.g. a WARNING) on a guest that is still
        running, accept it and continue: later runs raise only for new reports."""
        if self.watcher is None:
            return None
        self.watcher.poll()
        m = self.watcher.crash
        if m is not None and (m.fatal or not self.qemu_alive()):
            raise ForkdiffError(f"cannot continue after a fatal guest crash ({m.kind})",
                                "boot a new Guest", self.console_log)
        return self.watcher.acknowledge()

    # -- commands --

    def run(self, cmd: str, timeout: float = 60, stdin: bytes | None = None,
            tolerate: frozenset[str] = frozenset()) -> CommandResult:
        """Run a shell command in the guest. GuestCrashed as soon as the console shows a crash
        (except non-fatal reports of a kind in `tolerate`, see check()), GuestHung after
        `timeout` seconds, GuestLost if QEMU or SSH goes away."""
        self.check()
        if self.ssh is None:
            raise GuestLost("the guest is not booted", "use Guest as a context manager")
        try:
            result = self.ssh.run(cmd, timeout, check=lambda: self.check(tolerate), stdin=stdin)
        except SshTimeout as exc:
            raise GuestHung(exc.cause, exc.next_step, self.console_log) from exc
        except SshLost as exc:
            self._lost_or_hung(exc)
        self.check(tolerate)
        return result

    def put(self, local: Path | str, remote: str, mode: int = 0o644, timeout: float = 60) -> None:
        self.check()
        if self.ssh is None:
            raise GuestLost("the guest is not booted", "use Guest as a context manager")
        try:
            self.ssh.put(Path(local), remote, mode, timeout=timeout)
        except SshLost as exc:
            self._lost_or_hung(exc)

    def _lost_or_hung(self, exc: SshLost) -> None:
        """SSH broke: GuestCrashed if the console shows why, GuestLost if QEMU exited, else
        GuestHung: QEMU runs but the guest does not answer (e.g. QEMU stopped by SIGSTOP)."""
        self._settle_after_loss()
        self.check()
        raise GuestHung(f"the guest stopped answering: {exc.cause}", exc.next_step,
                        self.console_log, self.watcher.tail() if self.watcher else "") from exc

    def _settle_after_loss(self) -> None:
        """A broken connection is usually a dying guest: give QEMU a moment to exit."""
        end = time.monotonic() + CRASH_SETTLE
        while self.qemu_alive() and time.monotonic() < end:
            if self.watcher is not None:
                self.watcher.poll()
                if self.watcher.crash is not None:
                    return
            time.sleep(0.1)

    def qmp_status(self) -> str:
        """QMP query-status: "running", "paused", "shutdown", ..."""
        if self.qmp is None:
            return "none"
        return str(self.qmp.cmd("query-status")["status"])  # type: ignore[index]

    # -- shutdown --

    def close(self) -> None:
        """Stop QEMU (QMP quit, then SIGKILL) and release everything."""
        try:
            if self.ssh is not None:
                self.ssh.close()
                self.ssh = None
            self._teardown()
            if self.watcher is not None:
                self.watcher.stop()
        finally:
            self._restore_signal_handlers()

    def _teardown(self) -> None:
        proc, qmp = self.proc, self.qmp
        self.proc, self.qmp = None, None
        if qmp is not None:
            if proc is not None and proc.poll() is None:
                # No orderly power-off: the guest's only disk is the initramfs, nothing to flush.
                with contextlib.suppress(Exception):
                    qmp.settimeout(2)
                    qmp.cmd("quit")
            with contextlib.suppress(Exception):
                qmp.close()
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            _LIVE.discard(proc)
        if self._sockdir is not None:
            shutil.rmtree(self._sockdir, ignore_errors=True)
            self._sockdir = None


class _KvmSilent(Exception):
    """Internal: KVM accepted the VM but the guest never printed a byte."""
