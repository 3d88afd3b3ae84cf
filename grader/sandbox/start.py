"""Starting a child that runs ``harness.py``, before its job exists: its run folder (the harness, its own
working directory), its command line (plain, or inside bubblewrap), its scrubbed environment, its session
and process group, and its pipes. ``process.py`` then feeds it the job and supervises it to the end.

Nothing here imports numpy or pydantic, so that ``grader grade`` can start a child (``pipeline.headstart``)
before it imports the grading pipeline: the child's imports of jax and flax run while the grader's do.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
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
)

REAP_WAIT_S = 5.0
INFO_WAIT_S = 10.0
PR_SET_CHILD_SUBREAPER = 36
WARMUP_FILE, WARMUP_CALLS = "warmup.py", "warmup.json"  # names the harness looks for
# Environment variables a child inherits: locale and the ones that choose JAX's backend and devices.
INHERITED_PREFIXES = ("JAX_", "XLA_", "CUDA_", "NVIDIA_", "TPU_", "ROCR_", "HIP_")
INHERITED_NAMES = ("LANG", "LC_ALL", "LD_LIBRARY_PATH", "PATH")
# What a child is made of before its job arrives: its job must agree on these (``SpawnedChild.fits``).
SPAWN_KEYS = ("preload", "env", "readable", "hidden_paths")


class ChildProcess(Protocol):
    """What supervision needs of a child: a ``subprocess.Popen``, or a ``ForkedChild`` from the fork server."""

    pid: int
    returncode: int | None
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None

    def wait(self, timeout: float | None = None) -> int: ...


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


def kill_group(proc: ChildProcess) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


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
    template: ChildJob | None = None  # the job it was started for (its job's source and cases came later)

    def fits(self, job: ChildJob, isolation: Isolation) -> bool:
        """Whether this child was started for jobs like ``job`` at the level of ``isolation``: sandboxed as
        asked (never more weakly), with the same preloads, environment and mounts (a child started from a
        guess, ``pipeline.headstart``, may not be)."""
        if self.template is None or self.isolation.level != isolation.level:
            return False
        return all(getattr(self.template, k) == getattr(job, k) for k in SPAWN_KEYS)

    def discard(self) -> None:
        """Ends a child that will get no job; it counts as used up. Does nothing to a child used already
        (its run ended it) or discarded already."""
        if self.used:
            return
        self.used = True
        kill_group(self.proc)
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
    fds: list[int] = []
    proc: subprocess.Popen | None = None
    try:  # whatever stops it (an error, Ctrl-C while bwrap reports), nothing is left: process, pipes, folder
        if iso.drop_to:
            os.chown(workdir, *iso.drop_to)
            if iso.level == "process":  # under bwrap the PID namespace takes care of daemons
                become_subreaper()
        for _ in range(4):
            fds.extend(os.pipe())
        job_read, job_write, channel_read, channel_write, info_read, info_write, life_read, life_write = fds
        theirs = (job_read, channel_write, info_write, life_read)
        try:
            proc = subprocess.Popen(
                _child_command(iso, job, harness, run_dir, (job_read, channel_write, life_read), info_write),
                cwd=workdir,
                env=child_environment(workdir, job.env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=theirs,
                start_new_session=True,
                umask=0o022,  # nothing a child writes (the trusted compilation cache included) is others' to change
            )
        except OSError as exc:
            raise SandboxError(f"cannot start the child process: {exc}") from exc
        for fd in theirs:
            os.close(fd)
            fds.remove(fd)
        info = read_sandbox_info(info_read) if iso.level == "bwrap" else None
        sandbox_init = int(info["child-pid"]) if info else None
        os.close(info_read)
        fds.remove(info_read)
    except BaseException:
        if proc is not None:
            kill_group(proc)
            proc.wait()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        remove_tree(run_dir)
        raise
    return SpawnedChild(proc, iso, run_dir, job_write, channel_read, sandbox_init, life_write, lease, template=job)


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
