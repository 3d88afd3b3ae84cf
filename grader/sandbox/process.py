"""Starting a child that runs ``harness.py``, feeding it a job, and supervising it to the end.

The child gets a throwaway working directory, a scrubbed environment, resource limits (applied by the
harness before anything else runs), its own session and process group, and two dedicated pipes: the job
in, frames out. Deadlines are per phase (start, import, each case), and every way a child can end is
turned into a ``ChildRun`` with a named ending, never an exception or a wait without end.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from grader.errors import SandboxError
from grader.sandbox.isolation import (
    HARNESS,
    Isolation,
    UidLease,
    bwrap_command,
    choose_isolation,
    clear_orphaned_sandboxes,
    environment_paths,
    remove_tree,
    world_readable,
)
from grader.sandbox.outcome import ChildRun, Ending
from grader.sandbox.protocol import (
    Done,
    FrameReader,
    Hello,
    Imported,
    ProtocolError,
    Result,
    WireLimits,
    parse_message,
)

HARNESS_FAULT_STATUS = 70
STRAY_OUTPUT_BYTES = 64 * 1024
POLL_S = 0.25
EXIT_GRACE_S = 0.5
REAP_WAIT_S = 5.0
INFO_WAIT_S = 10.0
NPROC_HEADROOM = 512  # threads count too, and XLA starts one pool per core
PR_SET_CHILD_SUBREAPER = 36
WARMUP_FILE, WARMUP_CALLS = "warmup.py", "warmup.json"  # names the harness looks for
CHANNEL_BYTES = 256 * 1024 * 1024
# Environment variables a child inherits: locale and the ones that choose JAX's backend and devices.
INHERITED_PREFIXES = ("JAX_", "XLA_", "CUDA_", "NVIDIA_", "TPU_", "ROCR_", "HIP_")
INHERITED_NAMES = ("LANG", "LC_ALL", "LD_LIBRARY_PATH", "PATH")


class ChildProcess(Protocol):
    """What supervision needs of a child: a ``subprocess.Popen``, or a ``ForkedChild`` from the fork server."""

    pid: int
    returncode: int | None
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None

    def wait(self, timeout: float | None = None) -> int: ...


class Cancel(Protocol):
    """What stops a run early once set: a ``threading.Event``, or anything else that can say it is set."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class ChildLimits:
    import_timeout_s: float
    case_timeout_s: float
    memory_mb: int
    capture_bytes: int
    max_output_elements: int
    file_size_mb: int = 64

    def total_timeout_s(self, n_cases: int) -> float:
        """The most a whole run may take: two import phases, every case, and a margin to finish."""
        return 2 * self.import_timeout_s + n_cases * self.case_timeout_s + 5.0


@dataclass(frozen=True)
class ChildJob:
    source: str
    filename: str
    entry_point: str
    cases: list[dict]
    preload: list[str] = field(default_factory=list)
    hidden_paths: list[str] = field(default_factory=list)  # off sys.path, and not mounted under bwrap
    env: dict[str, str] = field(default_factory=dict)
    readable: list[str] = field(default_factory=list)  # more folders to mount read-only under bwrap
    # For a child started ahead: trusted code that compiles what the cases will use, and its calls (arrays
    # zeroed). It runs before the job, so before any submission code.
    warmup_source: str | None = None
    warmup_calls: list[dict] = field(default_factory=list)


def child_environment(workdir: str, extra: dict[str, str]) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name.startswith(INHERITED_PREFIXES) or name in INHERITED_NAMES
    }
    env.update(
        HOME=workdir,
        TMPDIR=workdir,
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONIOENCODING="utf-8",
        MALLOC_ARENA_MAX="1",
        NO_COLOR="1",
    )
    env.setdefault("PATH", os.defpath)
    env.update(extra)
    return env


class _Supervisor:
    """Reads a running child's three pipes until it ends, enforcing the deadline of each phase."""

    def __init__(
        self,
        proc: ChildProcess,
        channel: int,
        job: ChildJob,
        limits: ChildLimits,
        cancel: Cancel | None,
        sandbox_init: int | None = None,
    ) -> None:
        self.proc = proc
        self.cancel = cancel
        self.sandbox_init = sandbox_init
        self.channel = channel
        self.limits = limits
        self.case_ids = [case["id"] for case in job.cases]
        self.run = ChildRun()
        self.reader = FrameReader()
        self.wire_limits = WireLimits(
            max_elements=limits.max_output_elements,
            capture_bytes=limits.capture_bytes,
            file_bytes=limits.file_size_mb * 1024 * 1024,
        )
        self.channel_bytes = 0
        self.done = False
        self.started = time.monotonic()
        self.phase_started = self.started
        self.total_deadline = self.started + limits.total_timeout_s(len(self.case_ids))

    def _phase_limit(self) -> float:
        if self.run.phase in ("start", "import"):
            return self.limits.import_timeout_s
        return self.limits.case_timeout_s

    def _advance(self, message: Hello | Imported | Result | Done) -> None:
        run = self.run
        if isinstance(message, Hello) and run.hello is None:
            run.hello, run.phase = message, "import"
        elif isinstance(message, Imported) and run.hello is not None and run.imported is None:
            run.imported = message
            run.phase = f"case:{self.case_ids[0]}" if message.entry_point_found and self.case_ids else "finish"
        elif isinstance(message, Result) and run.current_case == message.case:
            run.results.append(message)
            index = len(run.results)
            if index < len(self.case_ids) and self._out_of_memory(message):
                # Every case would allocate again up to the limit (a minute or more each): the phase stays
                # the case that ran out, and the cases after it are not run.
                raise _Stop("memory-limit", "it ran out of memory (MemoryError), and the cases after it were not run")
            run.phase = f"case:{self.case_ids[index]}" if index < len(self.case_ids) else "finish"
        elif isinstance(message, Done) and (run.phase == "finish" or (run.hello and run.hello.preload_error)):
            self.done = True
        else:
            raise ProtocolError(f"unexpected {message.type!r} message during phase {run.phase!r}")
        self.phase_started = time.monotonic()

    @staticmethod
    def _out_of_memory(result: Result) -> bool:
        return result.error is not None and result.error.type == "MemoryError"

    def _on_channel(self, data: bytes) -> None:
        self.channel_bytes += len(data)
        if self.channel_bytes > CHANNEL_BYTES:
            raise _Stop("output-limit", f"the child sent more than {CHANNEL_BYTES} bytes of results")
        for frame in self.reader.feed(data):
            self._advance(parse_message(frame, limits=self.wire_limits))

    def _on_stream(self, name: str, data: bytes) -> None:
        kept = getattr(self.run, name)
        if len(kept) < STRAY_OUTPUT_BYTES:
            setattr(self.run, name, kept + data[: STRAY_OUTPUT_BYTES - len(kept)])

    def supervise(self) -> ChildRun:
        selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        selector.register(self.channel, selectors.EVENT_READ, "channel")
        selector.register(self.proc.stdout, selectors.EVENT_READ, "stray_stdout")
        selector.register(self.proc.stderr, selectors.EVENT_READ, "stray_stderr")
        try:
            self._loop(selector)
        except _Stop as stop:
            self._kill()
            self.run.ending, self.run.detail = stop.ending, stop.detail
        except ProtocolError as exc:
            self._kill()
            self.run.ending, self.run.detail = "protocol-error", str(exc)
        finally:
            selector.close()
            self._reap()
        return self.run

    def _loop(self, selector: selectors.BaseSelector) -> None:
        channel_open = True
        exited_at: float | None = None
        while channel_open and not self.done:
            now = time.monotonic()
            if exited_at is None and _has_exited(self.proc.pid):
                exited_at = now
            if exited_at is not None and now - exited_at > EXIT_GRACE_S:
                return  # the child is gone; something it started may still hold the channel open
            deadline = min(self.phase_started + self._phase_limit(), self.total_deadline)
            if self.cancel is not None and self.cancel.is_set():
                raise _Stop("cancelled", "grading was cancelled")
            if now >= deadline:
                limit = self._phase_limit() if deadline < self.total_deadline else self.total_deadline - self.started
                raise _Stop("timeout", f"no answer within {limit:g} s")
            for key, _ in selector.select(timeout=min(deadline - now, POLL_S)):
                fd = key.fd
                data = os.read(fd, 1 << 16)
                if not data:
                    selector.unregister(fd)
                    channel_open = channel_open and key.data != "channel"
                elif key.data == "channel":
                    self._on_channel(data)
                else:
                    self._on_stream(key.data, data)

    def _kill(self) -> None:
        if self.sandbox_init is not None and not _has_exited(self.proc.pid):
            # Killing the namespace's init kills everything in it; bwrap then exits by itself. (Only while
            # bwrap runs: after it exits, the init's pid may belong to another process.)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.sandbox_init, signal.SIGKILL)
            if _wait_for_exit(self.proc.pid, REAP_WAIT_S):
                return
        _kill_group(self.proc)

    def _reap(self) -> None:
        """Waits for the child, kills what is left of its process group, then collects its status.

        The group is killed while the child is exited but not yet reaped, so its id cannot have been
        given to another process in between.
        """
        run = self.run
        if not _wait_for_exit(self.proc.pid, REAP_WAIT_S):
            self._kill()
            if run.ending == "completed" and not self.done:
                run.ending, run.detail = "protocol-error", "the child closed its result channel and kept running"
            _wait_for_exit(self.proc.pid, None)
        _kill_group(self.proc)  # what is left of the group; the exited child keeps the group's id reserved
        run.returncode = self.proc.wait()
        self._drain_streams()
        run.elapsed_s = time.monotonic() - self.started
        if run.returncode < 0:
            run.signal = -run.returncode
        if run.ending != "completed" or self.done:
            return
        if run.returncode == HARNESS_FAULT_STATUS:
            run.ending, run.detail = "harness-error", "the harness failed"
        elif run.signal is not None:
            run.ending, run.detail = "crashed", f"killed by {_signal_name(run.signal)}"
        else:
            run.ending, run.detail = "exited", f"the process exited with status {run.returncode}"

    def _drain_streams(self) -> None:
        for name, stream in (("stray_stdout", self.proc.stdout), ("stray_stderr", self.proc.stderr)):
            if stream is None:
                continue
            os.set_blocking(stream.fileno(), False)
            try:
                data = stream.read(STRAY_OUTPUT_BYTES) or b""
            except OSError:
                data = b""
            self._on_stream(name, data)
            stream.close()


class _Stop(Exception):
    def __init__(self, ending: Ending, detail: str) -> None:
        super().__init__(detail)
        self.ending: Ending = ending
        self.detail = detail


def _has_exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (its process group id stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _wait_for_exit(pid: int, timeout: float | None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    while not _has_exited(pid):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _kill_group(proc: ChildProcess) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _write_job(fd: int, payload: bytes) -> None:
    try:
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(payload)
    except OSError:
        pass  # the child went away before reading its job; its ending says why


def _child_command(
    iso: Isolation, job: ChildJob, harness: str, run_dir: str, fds: tuple[int, int, int], info_fd: int
) -> list[str]:
    argv = [sys.executable, "-I", harness, str(fds[0]), str(fds[1]), ",".join(job.preload), str(fds[2])]
    if iso.level == "process":
        return argv
    return sandbox_command(iso, job, argv, run_dir=run_dir, info_fd=info_fd)


def sandbox_command(iso: Isolation, job: ChildJob, argv: list[str], *, run_dir: str, info_fd: int) -> list[str]:
    """The bubblewrap command line that runs ``argv`` in the sandbox of a child for ``job``: the Python
    environment and the job's readable folders read-only (its hidden folders covered), ``run_dir``'s work
    folder writable."""
    readable = [*environment_paths(), *(Path(p) for p in job.readable if os.path.isdir(p))]
    hidden = [
        Path(p)
        for p in job.hidden_paths
        if os.path.isdir(p) and any(Path(p).resolve().is_relative_to(r) for r in readable)
    ]
    return bwrap_command(iso, argv, run_dir=run_dir, readable=readable, hidden=hidden, info_fd=info_fd)


def _process_limit(uid: int) -> int:
    """Room for this many more processes (and threads) of the child's user than it runs now."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                count += entry.stat().st_uid == uid
    return count + NPROC_HEADROOM


@dataclass
class SpawnedChild:
    """A child started ahead of its job: its interpreter and preloads are warm, no submission code has run.

    ``run_child(job, ..., spawned=child)`` hands it the job. A spawned child serves one job only.
    """

    proc: ChildProcess
    isolation: Isolation
    run_dir: str  # holds harness/ (the grader's) and work/ (the child's working directory)
    job_write: int
    channel_read: int
    sandbox_init: int | None
    # The write end of the child's lifeline: while the grader holds it open, the child lives; when the
    # grader exits, however it dies, the child reads end-of-file and kills everything of its uid.
    lifeline: int = -1
    lease: UidLease | None = None  # the uid the child runs as, its own while it lives
    used: bool = False
    # A child forked into a sandbox (see ``forks.py``): the bwrap process that holds the sandbox, whose
    # init is ``sandbox_init``. Killing that init ends everything in the sandbox, the child too.
    holder: subprocess.Popen | None = None

    def discard(self) -> None:
        """Ends a child that will get no job."""
        _kill_group(self.proc)
        self.proc.wait()
        for fd in (self.job_write, self.channel_read):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.end()

    def end(self) -> None:
        """Cuts the lifeline, kills every process of the child's uid and gives the uid back, removes the
        child's folders."""
        if self.lifeline >= 0:
            with contextlib.suppress(OSError):
                os.close(self.lifeline)
            self.lifeline = -1
        if self.holder is not None:
            end_sandbox(self.holder, self.sandbox_init)
            self.holder = None
        if self.lease is not None:
            self.lease.release()
            self.lease = None
        remove_tree(self.run_dir)


def end_sandbox(holder: subprocess.Popen, init: int | None) -> None:
    """Ends a sandbox held by ``holder`` (a bwrap process): kills its init while bwrap still runs (after,
    the pid may be another process's), which kills everything inside, then collects bwrap."""
    if holder.poll() is None and init is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(init, signal.SIGKILL)
    for stream in (holder.stdin, holder.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        holder.wait(timeout=REAP_WAIT_S)
    except subprocess.TimeoutExpired:
        holder.kill()
        holder.wait()


def spawn_child(job: ChildJob, isolation: Isolation | None = None) -> SpawnedChild:
    """Starts a child for jobs like ``job`` (same preloads, environment and mounts), before the job exists."""
    iso = isolation or choose_isolation()
    if iso.level == "bwrap":
        clear_orphaned_sandboxes()  # what a killed grader left behind
    iso, lease = take_lease(iso)
    try:
        return _spawn(job, iso, lease)
    except BaseException:
        if lease is not None:
            lease.release()
        raise


def take_lease(iso: Isolation) -> tuple[Isolation, UidLease | None]:
    """Where children drop privileges: a uid of the child's own (the isolation then names it), held until
    the child ends."""
    if not iso.drop_to:
        return iso, None
    lease = UidLease.take(iso.drop_to[0])
    return dataclasses.replace(iso, drop_to=(lease.uid, iso.drop_to[1])), lease


def make_run_dir(job: ChildJob, *, with_harness: bool) -> tuple[str, str, str]:
    """A child's folders: ``<run>/harness`` (the harness and warm-up, written by the grader and never
    writable by the child; they run before it drops privileges) and ``<run>/work``, its working directory,
    its own. Returns the run folder, the harness's path (empty without one) and the working directory."""
    run_dir = tempfile.mkdtemp(prefix="grader-run-")
    os.chmod(run_dir, 0o755)
    workdir = os.path.join(run_dir, "work")
    os.mkdir(workdir, 0o700)
    if not with_harness:
        return run_dir, "", workdir
    bin_dir = os.path.join(run_dir, "harness")
    os.mkdir(bin_dir, 0o755)
    # The child runs its own copy of the harness, so its argv names no folder of the grader.
    harness = shutil.copy(HARNESS, os.path.join(bin_dir, "harness.py"))
    if job.warmup_source:
        Path(bin_dir, WARMUP_FILE).write_text(job.warmup_source, encoding="utf-8")
        Path(bin_dir, WARMUP_CALLS).write_text(json.dumps(job.warmup_calls), encoding="utf-8")
    return run_dir, harness, workdir


def _spawn(job: ChildJob, iso: Isolation, lease: UidLease | None) -> SpawnedChild:
    run_dir, harness, workdir = make_run_dir(job, with_harness=True)
    if iso.drop_to:
        os.chown(workdir, *iso.drop_to)
        if iso.level == "process":  # under bwrap the PID namespace takes care of daemons
            become_subreaper()
    job_read, job_write = os.pipe()
    channel_read, channel_write = os.pipe()
    info_read, info_write = os.pipe()
    life_read, life_write = os.pipe()
    try:
        proc = subprocess.Popen(
            _child_command(iso, job, harness, run_dir, (job_read, channel_write, life_read), info_write),
            cwd=workdir,
            env=child_environment(workdir, job.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(job_read, channel_write, info_write, life_read),
            start_new_session=True,
            umask=0o022,  # nothing a child writes (the trusted compilation cache included) is others' to change
        )
    except OSError as exc:
        remove_tree(run_dir)
        for fd in (job_read, job_write, channel_read, channel_write, info_read, info_write, life_read, life_write):
            os.close(fd)
        raise SandboxError(f"cannot start the child process: {exc}") from exc
    for fd in (job_read, channel_write, info_write, life_read):
        os.close(fd)
    info = read_sandbox_info(info_read) if iso.level == "bwrap" else None
    sandbox_init = int(info["child-pid"]) if info else None
    os.close(info_read)
    return SpawnedChild(proc, iso, run_dir, job_write, channel_read, sandbox_init, life_write, lease)


def _job_payload(job: ChildJob, limits: ChildLimits, iso: Isolation) -> bytes:
    return json.dumps(
        {
            "source": job.source,
            "filename": job.filename,
            "module_name": "submission",
            "entry_point": job.entry_point,
            "hidden_paths": job.hidden_paths,
            "capture_limit": limits.capture_bytes,
            "max_output_elements": limits.max_output_elements,
            "import_timeout_s": limits.import_timeout_s,
            "case_timeout_s": limits.case_timeout_s,
            "drop_to": iso.drop_to,
            "reach": _reach(iso, job),
            "rlimits": {
                "RLIMIT_NPROC": _process_limit(iso.drop_to[0] if iso.drop_to else os.getuid()),
                "RLIMIT_DATA": limits.memory_mb * 1024 * 1024,
                "RLIMIT_FSIZE": limits.file_size_mb * 1024 * 1024,
                "RLIMIT_CORE": 0,
                # XLA computes on every core: CPU seconds can run ahead of wall seconds.
                "RLIMIT_CPU": int(limits.total_timeout_s(len(job.cases)) * (os.cpu_count() or 1)) + 1,
            },
            "cases": job.cases,
        }
    ).encode("utf-8")


def _reach(iso: Isolation, job: ChildJob) -> list[str]:
    """The folders the child opens to itself before dropping privileges (process level as root): the
    Python environment's closed ones, and the job's readable folders (the trusted compilation cache) that
    lie under a closed folder, where a mount namespace is known to work here."""
    if iso.level != "process" or not iso.reach:
        return list(iso.reach)
    extra = [p for p in job.readable if os.path.isdir(p) and not world_readable(Path(p))]
    return [*iso.reach, *extra]


def run_child(
    job: ChildJob,
    limits: ChildLimits,
    *,
    isolation: Isolation | None = None,
    cancel: Cancel | None = None,
    spawned: SpawnedChild | None = None,
) -> ChildRun:
    """Runs the harness on ``job`` in a fresh, isolated child process and returns what it reported.

    ``spawned``: a child started earlier for jobs like this one (see ``spawn_child``); else one starts now.
    Setting ``cancel`` stops the child at the next check (within half a second).
    """
    child = spawned or spawn_child(job, isolation)
    child.used = True
    iso, proc = child.isolation, child.proc
    writer = threading.Thread(target=_write_job, args=(child.job_write, _job_payload(job, limits, iso)), daemon=True)
    writer.start()
    try:
        run = _Supervisor(proc, child.channel_read, job, limits, cancel, child.sandbox_init).supervise()
        # A child forked into a sandbox is the grader's own: its status needs no reading back.
        return _signal_through_bwrap(run) if iso.level == "bwrap" and child.holder is None else run
    finally:
        if proc.returncode is None:  # only when supervision itself failed
            _kill_group(proc)
            proc.wait()
        os.close(child.channel_read)
        writer.join(timeout=1.0)
        child.end()


def read_sandbox_info(fd: int) -> dict | None:
    """What bwrap writes on its info pipe: the pid of the sandbox's init (``child-pid``) and the inode of
    each namespace it made (``mnt-namespace`` ...)."""
    data = b""
    deadline = time.monotonic() + INFO_WAIT_S
    while b"}" not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            break
        data += chunk
    try:
        info = json.loads(data[: data.index(b"}") + 1])
        int(info["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None
    return info if isinstance(info, dict) else None


def _signal_through_bwrap(run: ChildRun) -> ChildRun:
    """bubblewrap reports a child killed by signal N as exit status 128 + N: read it back as the signal."""
    code = run.returncode
    if run.ending == "exited" and code is not None and 128 < code <= 128 + 64:
        run.signal = code - 128
        run.ending, run.detail = "crashed", f"killed by {_signal_name(run.signal)}"
    return run


def become_subreaper() -> bool:
    """Makes orphans of the grader's children its own (Linux), so that a daemon cannot slip away. Whether
    it could."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
