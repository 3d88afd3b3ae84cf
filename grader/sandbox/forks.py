"""The fork server: children that start with jax and flax imported already.

A child of a batch or a watch pays first for an interpreter and ``import jax, flax.linen``, which is most of
what a grading of a small exercise costs. A fork server imports them once, then forks each child from
itself (``harness.py --fork-server``): the child continues as a fresh one would, with its own session,
pipes, working directory, environment, limits, uid and lifeline, and no submission code ever runs in
the server. Nothing is computed in the server before a fork (a fork after XLA has started its threads
deadlocks).

The child is forked through an intermediate process that exits at once, so that it is handed to the
grader, which is a subreaper: the grader supervises it, kills its group and collects its status as it
does a child it started itself.

Under bubblewrap each child still gets a sandbox of its own: the grader starts bwrap with the child's
mounts and namespaces around a process that only holds them (``HOLDER``), and hands the server
descriptors of those namespaces (each checked against what bwrap reported making) with the request. The
intermediate joins them all (its root becomes the sandbox's root) and drops what privileges bwrap drops,
so the child is born inside the sandbox's PID namespace; it closes every descriptor it does not need,
checks that each namespace is the sandbox's, and only then goes on as a fresh child in that sandbox
would. Where joining fails, no child is born and the grader starts a fresh one. Killing the sandbox's
init ends it, as for a child bwrap started. A grader that is not root forks into sandboxes only where
the interpreter's file is out of the child's reach (``exe_out_of_reach``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from typing import IO

from grader.errors import SandboxError
from grader.sandbox.isolation import Isolation, UidLease, remove_tree
from grader.sandbox.start import (
    ChildJob,
    SpawnedChild,
    become_subreaper,
    child_environment,
    end_sandbox,
    make_run_dir,
    read_sandbox_info,
    sandbox_command,
    take_lease,
)

CHILD_FDS = 5  # what a request hands over: job, channel, lifeline, stdout, stderr (the harness's, pinned by a test)
LOG_FILE = "server.log"  # the server's stderr, in its run folder
ANSWER_WAIT_S = 10.0  # a fork takes milliseconds; a server that does not answer in this time is broken
# What holds a sandbox open for a forked child: it says it runs (every mount is in place by then), then
# waits for its standard input to close (the grader ended the sandbox, or died).
HOLDER = ["-I", "-S", "-c", "import os; os.write(1, b'r'); os.read(0, 1)"]
# The sandbox's namespaces a child joins; where the grader is not root, also the user namespace that owns
# them ("owner", joined first) and the one the sandbox's processes live in ("user", joined last).
NAMESPACES = ("pid", "mnt", "net", "ipc", "uts", "cgroup")
NS_GET_USERNS = 0xB701  # ioctl: the user namespace that owns a namespace


class ForkedChild:
    """A child forked by the server, as supervision sees it (what it needs of a ``subprocess.Popen``)."""

    def __init__(self, pid: int, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self.pid = pid
        self.stdout: IO[bytes] | None = stdout
        self.stderr: IO[bytes] | None = stderr
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        """Collects the child's status (it is the grader's own child, handed over as an orphan). ``timeout`` is
        there for the shape of ``Popen.wait`` only: supervision waits for a child it knows has exited."""
        if self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:  # collected elsewhere: its status is lost
                self.returncode = -9
        return self.returncode


class ForkServer:
    """One server for the children of one exercise: jobs like ``template`` (the same preloads, environment
    and warm-up), at the process level or each in a bubblewrap sandbox of its own. Thread-safe: a batch's
    slots share it. ``close()`` ends it. The server itself only imports, with the grader's privileges."""

    def __init__(self, template: ChildJob, isolation: Isolation, *, start_timeout_s: float) -> None:
        # Before the server exists, so that its descendants know a subreaper is above them: each child it
        # forks is handed to the grader. Without one (not Linux), children start fresh.
        if not become_subreaper():
            raise SandboxError("a fork server needs the grader to be a subreaper (Linux)")
        if isolation.level == "bwrap" and not exe_out_of_reach():
            raise SandboxError("a forked child could change the interpreter's file (its /proc/self/exe)")
        self.isolation = isolation
        self.template = template
        self._lock = threading.Lock()
        self.run_dir, harness, workdir = make_run_dir(template, with_harness=True)
        self.log = ""  # the tail of what the server wrote on stderr, once it has ended
        log_path = os.path.join(self.run_dir, LOG_FILE)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with open(log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-I", harness, "--fork-server", str(theirs.fileno()), ",".join(template.preload)],
                    cwd=workdir,
                    env=child_environment(workdir, template.env),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    pass_fds=(theirs.fileno(),),
                    start_new_session=True,
                    umask=0o022,
                )
        except OSError as exc:
            ours.close()
            remove_tree(self.run_dir)
            raise SandboxError(f"cannot start the fork server: {exc}") from exc
        finally:
            theirs.close()
        self._control = ours
        if self._answer(start_timeout_s) != b"ready\n":
            self.close()  # it has exited (or is killed) by now: its log is whole
            raise SandboxError(f"the fork server did not start: {self.log}")

    def fits(self, job: ChildJob) -> bool:
        """Whether a child for ``job`` may come from this server: what the server imported and warms up with."""
        keys = ("preload", "env", "warmup_source", "warmup_calls")
        return all(getattr(job, key) == getattr(self.template, key) for key in keys)

    def spawn(self, job: ChildJob, isolation: Isolation) -> SpawnedChild:
        """A child for ``job``, forked from the server, with a uid of its own where children drop privileges."""
        if not self.fits(job):
            raise SandboxError("this fork server was started for other jobs")
        iso, lease = take_lease(isolation)
        try:
            return self._fork(job, iso, lease)
        except BaseException:
            if lease is not None:
                lease.release()
            raise

    def _fork(self, job: ChildJob, iso: Isolation, lease: UidLease | None) -> SpawnedChild:
        sandboxed = iso.level == "bwrap"
        run_dir, harness, workdir = make_run_dir(job, with_harness=sandboxed)
        holder: subprocess.Popen | None = None
        init: int | None = None
        namespaces: dict[str, int] = {}
        ours: list[int] = []  # the grader's ends of the child's pipes
        try:
            if iso.drop_to:
                os.chown(workdir, *iso.drop_to)
            request: dict = {"cwd": workdir, "env": child_environment(workdir, job.env)}
            if sandboxed:
                holder, init, info = _start_sandbox(iso, job, run_dir)
                namespaces, request["expect"] = _open_namespaces(init, info)
                request["harness"] = os.path.dirname(harness)  # the warm-up, inside the sandbox
            request["namespaces"] = list(namespaces)
            pipes = [os.pipe() for _ in range(CHILD_FDS)]  # job, channel, lifeline, stdout, stderr
            theirs = [pipes[0][0], pipes[1][1], pipes[2][0], pipes[3][1], pipes[4][1]]
            ours = [pipes[0][1], pipes[1][0], pipes[2][1], pipes[3][0], pipes[4][0]]
            try:
                with self._lock:
                    socket.send_fds(self._control, [json.dumps(request).encode()], [*theirs, *namespaces.values()])
                    answer = self._answer(ANSWER_WAIT_S)
            except OSError as exc:
                answer = str(exc).encode()
            finally:
                for fd in [*theirs, *namespaces.values()]:
                    os.close(fd)
                namespaces = {}
            pid = int(answer) if answer.strip().isdigit() else -1
            if pid <= 0:
                raise SandboxError(f"the fork server could not start a child: {answer[:200]!r}")
            job_write, channel_read, life_write, out_read, err_read = ours
            proc = ForkedChild(pid, os.fdopen(out_read, "rb"), os.fdopen(err_read, "rb"))
            return SpawnedChild(
                proc, iso, run_dir, job_write, channel_read, init, life_write, lease, holder=holder, template=job
            )
        except BaseException as exc:
            for fd in [*ours, *namespaces.values()]:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if holder is not None:
                end_sandbox(holder, init)
            remove_tree(run_dir)
            if isinstance(exc, OSError):
                raise SandboxError(f"the fork server could not start a child: {exc}") from exc
            raise

    def _answer(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self._control], [], [], timeout)
        return self._control.recv(64) if ready else b""

    def close(self) -> None:
        """Ends the server (it exits when its socket closes; killed if it does not) and removes its folders.
        Children it forked live on, each to the end of its own grading."""
        with self._lock, contextlib.suppress(OSError):  # not while a request waits for its answer
            self._control.close()
        try:
            self.proc.wait(timeout=ANSWER_WAIT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log = _tail(os.path.join(self.run_dir, LOG_FILE))
        remove_tree(self.run_dir)


def _start_sandbox(iso: Isolation, job: ChildJob, run_dir: str) -> tuple[subprocess.Popen, int, dict]:
    """Starts bwrap with a child's sandbox for ``job`` around the holder; returns it, the sandbox's init and
    bwrap's word on the sandbox, once every mount is in place."""
    info_read, info_write = os.pipe()
    try:
        holder = subprocess.Popen(
            sandbox_command(iso, job, [sys.executable, *HOLDER], run_dir=run_dir, info_fd=info_write),
            cwd=run_dir,
            env=child_environment(run_dir, {}),  # what the interpreter needs (LD_LIBRARY_PATH), as a child's
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            pass_fds=(info_write,),
            start_new_session=True,
        )
    except OSError as exc:
        os.close(info_read)
        raise SandboxError(f"cannot start a sandbox: {exc}") from exc
    finally:
        os.close(info_write)
    info = read_sandbox_info(info_read)
    os.close(info_read)
    init = None if info is None else int(info["child-pid"])
    assert holder.stdout is not None
    ready, _, _ = select.select([holder.stdout], [], [], ANSWER_WAIT_S)
    if info is None or init is None or not ready or holder.stdout.read(1) != b"r":
        end_sandbox(holder, init)
        raise SandboxError("the sandbox for a forked child did not start")
    return holder, init, info


def _open_namespaces(init: int, info: dict) -> tuple[dict[str, int], dict[str, int]]:
    """Descriptors of the namespaces of the sandbox whose init is ``init``, by the name the harness knows
    them by, and the inode of each (what the intermediate and the child check they joined). Each must be
    the one bwrap said it made (``info``): an init that died, its pid taken by another process, is refused."""
    opened: dict[str, int] = {}
    try:
        for name in NAMESPACES:
            opened[name] = os.open(f"/proc/{init}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            made = info.get(f"{name}-namespace")
            if made is not None and os.fstat(opened[name]).st_ino != made:
                raise SandboxError(f"the sandbox's {name} namespace is not the one bwrap made")
        opened["user"] = os.open(f"/proc/{init}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        if os.fstat(opened["user"]).st_ino == os.stat("/proc/self/ns/user").st_ino:
            os.close(opened.pop("user"))  # the grader is root: bwrap made no user namespace
        else:
            opened = {"owner": fcntl.ioctl(opened["pid"], NS_GET_USERNS), **opened}
        expect = {name: os.fstat(fd).st_ino for name, fd in opened.items() if name != "owner"}
    except BaseException as exc:
        for fd in opened.values():
            os.close(fd)
        if isinstance(exc, OSError):
            raise SandboxError(f"cannot open the namespaces of a sandbox: {exc}") from exc
        raise
    return opened, expect


def exe_out_of_reach() -> bool:
    """Whether a child forked into a sandbox cannot change the interpreter's file. Joining a mount namespace
    leaves ``/proc/self/exe`` on the file the server was started from, outside the sandbox's read-only
    mounts: where the grader is root the child drops to a uid that does not own it; where the grader is
    not, the child keeps its user, and the file must be neither that user's nor writable by it (a
    virtual environment's link to a system Python is fine; a pyenv of the user's is not)."""
    uid = os.geteuid()
    if uid == 0:
        return True
    try:
        info = os.stat(sys.executable)
    except OSError:
        return False
    group_writes = info.st_mode & 0o020 and info.st_gid in {os.getegid(), *os.getgroups()}
    return info.st_uid != uid and not info.st_mode & 0o002 and not group_writes


def _tail(path: str) -> str:
    """The last line the server wrote (an exception's type and message), or that it wrote none."""
    try:
        with open(path, "rb") as log:
            lines = log.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return "its log is gone"
    return lines[-1][:300] if lines else "it exited without a word"
