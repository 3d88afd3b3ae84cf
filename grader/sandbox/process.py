"""Feeding a started child (``start.py``) its job and supervising it to the end.

The child gets resource limits (applied by the harness before anything else runs) and two dedicated pipes:
the job in, frames out. Deadlines are per phase (start, import, each case), and every way a child can end
is turned into a ``ChildRun`` with a named ending, never an exception or a wait without end.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from grader.sandbox.isolation import Isolation, world_readable
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
from grader.sandbox.start import REAP_WAIT_S, ChildJob, ChildProcess, SpawnedChild, kill_group, spawn_child

HARNESS_FAULT_STATUS = 70
STRAY_OUTPUT_BYTES = 64 * 1024
POLL_S = 0.25
EXIT_GRACE_S = 0.5
NPROC_HEADROOM = 512  # threads count too, and XLA starts one pool per core
CHANNEL_BYTES = 256 * 1024 * 1024


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
        kill_group(self.proc)

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
        kill_group(self.proc)  # what is left of the group; the exited child keeps the group's id reserved
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
    """Whether the child exited within ``timeout`` seconds (None: however long it takes), without reaping
    it. A pidfd wakes this the moment it exits; where there is none (an old kernel), it polls."""
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(pid)
        try:
            try:  # through the pidfd, which names this process even if ``pid`` was reaped and reused since
                if os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return True
            except ChildProcessError:
                return True  # not a child of this process (any more): nothing to wait for
            with selectors.DefaultSelector() as selector:
                selector.register(pidfd, selectors.EVENT_READ)
                selector.select(timeout)
        finally:
            os.close(pidfd)
        return _has_exited(pid)
    deadline = None if timeout is None else time.monotonic() + timeout
    while not _has_exited(pid):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


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


def _process_limit(uid: int) -> int:
    """Room for this many more processes (and threads) of the child's user than it runs now."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                count += entry.stat().st_uid == uid
    return count + NPROC_HEADROOM


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
            kill_group(proc)
            proc.wait()
        os.close(child.channel_read)
        writer.join(timeout=1.0)
        child.end()


def _signal_through_bwrap(run: ChildRun) -> ChildRun:
    """bubblewrap reports a child killed by signal N as exit status 128 + N: read it back as the signal."""
    code = run.returncode
    if run.ending == "exited" and code is not None and 128 < code <= 128 + 64:
        run.signal = code - 128
        run.ending, run.detail = "crashed", f"killed by {_signal_name(run.signal)}"
    return run
