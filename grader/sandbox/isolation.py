"""How far a child is isolated, and the command line that isolates it.

Two levels:

- ``bwrap``: the child runs inside bubblewrap with new PID, network, IPC and UTS namespaces, a new
  session, and a root file system that holds only read-only system libraries, the Python environment,
  the compilation cache and its own throwaway working directory. The reference, the exercises, the
  grader's checkout and caches of expected outputs are not mounted. Everything it starts dies with it.
- ``process``: a plain child process (own session, scrubbed environment, resource limits).

On top of either, a grader running as root makes the child drop to an unprivileged uid before any
submission code runs: a uid leased for that child alone (see ``UidLease``), whose every process is killed
when the child is done. ``GRADER_ISOLATION`` (``auto``, ``bwrap`` or ``process``) chooses; ``auto`` takes
bwrap when it is installed and works here.

A submission never runs as root. Where the Python environment is not reachable by another user (a pyenv
or virtual environment under ``/root``), a ``process`` child opens just those folders to itself in a
mount namespace of its own before it drops privileges; where the kernel refuses that, the grader stops
with a fault that says how to fix the set-up, unless ``GRADER_ALLOW_ROOT_CHILD=1`` says otherwise (and
every report then says the submission ran as root).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from grader.errors import SandboxError

ISOLATION_ENV = "GRADER_ISOLATION"
ALLOW_ROOT_ENV = "GRADER_ALLOW_ROOT_CHILD"
# Children's uids: 65533 downwards, ids Debian reserves and never assigns (not 65534, nobody, whose
# processes on a real machine are not the grader's to kill).
SANDBOX_UID = 65533
SANDBOX_GID = 65534  # nogroup
MAX_SLOTS = 64  # children at once, each with its own uid at or below SANDBOX_UID
HARNESS = Path(__file__).with_name("harness.py")
ROOT_FIX = (
    "install the grader in a Python environment that other users can read (for example a virtual environment "
    "made from /usr/bin/python3 under /opt), or install bubblewrap; to run submissions as root anyway, set "
    f"{ALLOW_ROOT_ENV}=1"
)
TMPFS_BYTES = 64 * 1024 * 1024
SYSTEM_DIRS = ("/usr",)
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime")
GPU_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia0", "/dev/dri")


@dataclass(frozen=True)
class Isolation:
    level: Literal["bwrap", "process"]
    drop_to: tuple[int, int] | None  # (uid, gid) the child switches to, when the grader is root
    bwrap: str | None = None
    note: str = ""  # a weakness to state in the report
    # Folders of the Python environment the unprivileged uid cannot reach: the child opens them to itself
    # in a mount namespace of its own before dropping privileges (process level as root).
    reach: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        parts = (
            ["bubblewrap: new pid, net, ipc and uts namespaces, read-only mounts of the Python environment only"]
            if self.level == "bwrap"
            else ["own process and session, scrubbed environment, resource limits"]
        )
        if self.drop_to:
            parts.append(f"uid {self.drop_to[0]}")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)


@functools.cache
def _bwrap_works(bwrap: str, root: bool) -> bool:
    """Whether bubblewrap can make a sandbox here (it may be installed but refused by the kernel)."""
    try:
        result = subprocess.run(
            [bwrap, *_namespace_flags(root), "--ro-bind", "/", "/", "--", "/bin/true"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _namespace_flags(root: bool) -> list[str]:
    # As root, no user namespace: the child must stay able to change its real uid (see drop_to).
    flags = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    return flags if root else ["--unshare-user", *flags]


def choose_isolation(requested: str | None = None) -> Isolation:
    """The isolation to use: as asked (``requested`` or ``$GRADER_ISOLATION``), else the strongest available."""
    wanted = (requested or os.environ.get(ISOLATION_ENV) or "auto").lower()
    if wanted not in ("auto", "bwrap", "process"):
        raise SandboxError(f"{ISOLATION_ENV}={wanted!r}: choose auto, bwrap or process")
    root = os.geteuid() == 0 if hasattr(os, "geteuid") else False
    drop_to = (SANDBOX_UID, SANDBOX_GID) if root else None
    bwrap = shutil.which("bwrap")
    if wanted != "process" and bwrap and sys.platform.startswith("linux") and _bwrap_works(bwrap, root):
        return Isolation("bwrap", drop_to, bwrap)
    if wanted == "bwrap":
        raise SandboxError("bubblewrap (bwrap) was asked for but is not installed or does not work here")
    if not drop_to:
        return Isolation("process", None, note="runs as the grader's own user")
    unreachable = tuple(str(p) for p in environment_paths() if not world_readable(p))
    if not unreachable:
        return Isolation("process", drop_to)
    if _can_open_up(unreachable):
        note = "the Python environment opened to the sandbox user in a mount namespace of its own"
        return Isolation("process", drop_to, note=note, reach=unreachable)
    if os.environ.get(ALLOW_ROOT_ENV) == "1":
        note = f"RUNS AS ROOT ({ALLOW_ROOT_ENV}=1): the submission can read and change anything the grader can"
        return Isolation("process", None, note=note)
    raise SandboxError(
        f"refusing to run a submission as root: the Python environment ({', '.join(unreachable)}) is not readable "
        f"by an unprivileged user and this kernel refuses a mount namespace to open it up; {ROOT_FIX}"
    )


@functools.cache
def _can_open_up(paths: tuple[str, ...]) -> bool:
    """Whether a child can open ``paths`` to an unprivileged uid in a mount namespace of its own (a dry run
    of what the harness does before dropping privileges: it must end able to read the interpreter)."""
    probe = [sys.executable, "-I", str(HARNESS), "--probe-reach", str(SANDBOX_UID), str(SANDBOX_GID), *paths]
    try:
        result = subprocess.run(probe, capture_output=True, timeout=30, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def for_slot(iso: Isolation, slot: int) -> Isolation:
    """The isolation of the ``slot``-th of several children alive at the same time (a batch).

    Where children drop to an unprivileged user, each slot gets a uid of its own (65534, 65533, ...: the
    range Debian reserves and never assigns), so that children alive together cannot signal one another,
    trace one another, read one another's working folders, or spend one another's process allowance.
    """
    if not iso.drop_to or slot == 0:
        return iso
    if not 0 < slot < MAX_SLOTS:
        raise ValueError(f"slot {slot} is out of range (at most {MAX_SLOTS} children at once)")
    return dataclasses.replace(iso, drop_to=(SANDBOX_UID - slot, SANDBOX_GID))


class UidLease:
    """A uid held by one child alone, on this machine, for as long as the child lives.

    Leases are ``flock``s on files in a folder only root can write, so two graders (or two threads of one)
    never hand out the same uid. Taking a lease, and giving it back, kills every process of that uid until
    none is left and removes what it left in ``/tmp`` and ``/dev/shm``: a daemon that a submission started,
    even one whose grader was killed, is gone before the uid serves another submission.
    """

    def __init__(self, uid: int, handle: int) -> None:
        self.uid = uid
        self._handle = handle

    @classmethod
    def take(cls, first: int = SANDBOX_UID) -> UidLease:
        folder = _lease_folder()
        for uid in [*range(first, SANDBOX_UID - MAX_SLOTS, -1), *range(SANDBOX_UID, first, -1)]:
            handle = os.open(folder / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(handle)
                continue
            lease = cls(uid, handle)
            clear_uid(uid)
            return lease
        raise SandboxError(f"no free sandbox uid: {MAX_SLOTS} children are running already")

    def release(self) -> None:
        if self._handle < 0:
            return
        try:
            clear_uid(self.uid)
        finally:
            os.close(self._handle)  # closing drops the flock
            self._handle = -1


def _lease_folder() -> Path:
    """One folder for the whole machine, whatever ``TMPDIR`` says (two graders with other temporary folders
    must still see each other's leases): ``/run/jax-grader-uids`` where it can be made, else
    ``/tmp/jax-grader-uids-<euid>``. Made by this user, mode 0700; anything else there is refused."""
    folder = Path("/run/jax-grader-uids")
    if not os.path.isdir("/run") or not os.access("/run", os.W_OK | os.X_OK):
        folder = Path("/tmp") / f"jax-grader-uids-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise SandboxError(f"{folder} is not a private folder of the grader's user: remove it and try again")
    return folder


def clear_uid(uid: int, *, rounds: int = 100) -> None:
    """Kills every process of ``uid`` until none is left (a daemon that keeps forking is caught in a later
    round: SIGKILL stops it where it stands), reaps those orphaned to this process, then removes the
    files and folders ``uid`` owns at the top of ``/tmp`` and ``/dev/shm``."""
    me = os.getpid()
    for _ in range(rounds):
        found = _processes_of(uid)
        if not found:
            break
        for pid, parent in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            if parent == me:
                with contextlib.suppress(OSError):
                    os.waitpid(pid, 0)
        time.sleep(0.01)
    for folder in ("/tmp", "/dev/shm", tempfile.gettempdir()):
        _remove_owned(folder, uid)


def _processes_of(uid: int) -> list[tuple[int, int]]:
    """(pid, parent pid) of every live process of ``uid`` (zombies excepted: they are already dead)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and fields[0] not in (b"Z", b"X"):
            found.append((int(entry.name), int(fields[1])))
    return found


def _remove_owned(folder: str, uid: int) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            info = entry.stat(follow_symlinks=False)
            if info.st_uid != uid:
                continue
            if stat.S_ISDIR(info.st_mode):
                remove_tree(entry.path)
            else:
                os.unlink(entry.path)  # a link is removed, never followed


def remove_tree(path: str) -> None:
    """Removes a tree that a child made, however deep and whatever permissions it set, never following a
    symbolic link: in this process where it is small (a run folder goes in a millisecond), else with chmod
    and rm, which walk without recursion limits, stay on one file system and are given a minute."""
    with contextlib.suppress(OSError):
        _remove_small_tree(path)
        return
    for command in (["chmod", "-R", "u+rwX", "--", path], ["rm", "-rf", "--one-file-system", "--", path]):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(command, capture_output=True, timeout=60, check=False)
    if os.path.lexists(path):
        with contextlib.suppress(OSError, RecursionError):
            shutil.rmtree(path)  # without coreutils, best effort (no chmod: it would follow a link)


SMALL_TREE_DEPTH, SMALL_TREE_ENTRIES = 16, 4096  # what remove_tree removes in-process
_OPEN_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def _remove_small_tree(path: str) -> None:
    """Removes ``path`` by file descriptor, never through a link, where it is a small tree on one file
    system (at most ``SMALL_TREE_DEPTH`` folders deep, ``SMALL_TREE_ENTRIES`` entries: as many descriptors
    and as much time as that takes, whatever a child left). Raises OSError, having removed what it could,
    where it is not, or where anything refuses."""
    top = os.open(path, _OPEN_FOLDER)
    try:
        _empty_folder(top, os.fstat(top).st_dev, SMALL_TREE_DEPTH, SMALL_TREE_ENTRIES)
    finally:
        os.close(top)
    os.rmdir(path)


def _empty_folder(folder: int, device: int, depth: int, budget: int) -> int:
    """Empties the open folder ``folder``; returns what is left of the entry budget."""
    with os.scandir(folder) as listing:
        entries = list(listing)
    for entry in entries:
        budget -= 1
        if budget < 0:
            raise OSError(errno.E2BIG, "more entries than a small tree has")
        if not entry.is_dir(follow_symlinks=False):
            os.unlink(entry.name, dir_fd=folder)
            continue
        if depth == 0:
            raise OSError(errno.E2BIG, "deeper than a small tree")
        inner = os.open(entry.name, _OPEN_FOLDER, dir_fd=folder)
        try:
            if os.fstat(inner).st_dev != device:
                raise OSError(errno.EXDEV, "another file system is mounted inside")
            budget = _empty_folder(inner, device, depth - 1, budget)
        finally:
            os.close(inner)
        os.rmdir(entry.name, dir_fd=folder)
    return budget


def clear_orphaned_sandboxes() -> list[int]:
    """Kills what a killed grader left of its bwrap sandboxes: a sandbox's init whose own bwrap parent is
    gone (``--die-with-parent`` ends the outer bwrap with the grader, but not always the init it started,
    which then waits on with the sandbox's mounts). A live grader's sandbox init always has its bwrap as
    parent, so only orphans match. Returns the pids killed."""
    killed = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.geteuid():
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
            if not argv[0].endswith(b"bwrap") or not any(b"grader-run-" in arg for arg in argv):
                continue
            with open(f"/proc/{entry.name}/status", "rb") as handle:
                status = dict(line.split(b":", 1) for line in handle.read().splitlines() if b":" in line)
            if status.get(b"NSpid", b"").split()[-1:] != [b"1"]:
                continue  # the outer bwrap, not a sandbox's init
            with open(f"/proc/{int(status[b'PPid'])}/cmdline", "rb") as handle:
                parent = handle.read().split(b"\0")[0]
        except (OSError, ValueError, KeyError):
            continue
        if not parent.endswith(b"bwrap"):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


def world_readable(path: Path) -> bool:
    """Whether any user can reach ``path`` (every folder on the way searchable, the folder itself readable)."""
    try:
        if not all(os.stat(parent).st_mode & 0o001 for parent in [*path.parents, path]):
            return False
        return bool(os.stat(path).st_mode & 0o004)
    except OSError:
        return False


def _ancestors(path: Path) -> list[Path]:
    return [p for p in reversed(path.parents) if str(p) != "/"]


def bwrap_command(
    iso: Isolation, argv: list[str], *, run_dir: str, readable: list[Path], hidden: list[Path], info_fd: int
) -> list[str]:
    """The bubblewrap command line that runs ``argv`` with only ``readable`` (read-only) and ``run_dir`` mounted:
    its ``harness`` folder read-only, its ``work`` folder writable and the working directory.

    ``hidden`` are folders inside ``readable`` ones that must not be seen (covered with an empty tmpfs).
    """
    assert iso.bwrap is not None
    # --info-fd tells the pid of the sandbox's init: killing it ends every process in the namespace.
    cmd = [iso.bwrap, *_namespace_flags(iso.drop_to is not None), "--die-with-parent", "--new-session"]
    cmd += ["--info-fd", str(info_fd)]
    for folder in SYSTEM_DIRS:
        cmd += ["--ro-bind", folder, folder]
    for link in SYSTEM_LINKS:
        if os.path.islink(link):
            cmd += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            cmd += ["--ro-bind", link, link]
    for file in SYSTEM_FILES:
        cmd += ["--ro-bind-try", file, file]
    # /tmp is memory: bounded, so that files there cannot eat the machine's RAM.
    cmd += ["--proc", "/proc", "--dev", "/dev", "--perms", "01777", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]
    for device in GPU_DEVICES:
        cmd += ["--dev-bind-try", device, device]
    made: set[Path] = {Path("/tmp")}
    workdir, harness_dir = os.path.join(run_dir, "work"), os.path.join(run_dir, "harness")
    for target in [*readable, Path(harness_dir), Path(workdir)]:  # run_dir itself made searchable too
        for parent in _ancestors(target):
            if parent not in made and not any(parent.is_relative_to(d) for d in SYSTEM_DIRS):
                cmd += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
    for path in readable:
        cmd += ["--ro-bind", str(path), str(path)]
    for path in hidden:
        cmd += ["--tmpfs", str(path)]
    cmd += ["--ro-bind", harness_dir, harness_dir, "--bind", workdir, workdir, "--chdir", workdir, "--", *argv]
    return cmd


def environment_paths() -> list[Path]:
    """The Python environment a child needs to read: the interpreter's prefixes and library folders."""
    paths = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent}
    for entry in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if entry and os.path.isdir(entry):
            paths.add(Path(entry).resolve())
    # Keep only the outermost folders, and none that the system mounts already cover.
    kept: list[Path] = []
    for path in sorted(paths, key=lambda p: len(p.parts)):
        if any(path.is_relative_to(d) for d in SYSTEM_DIRS) or any(path.is_relative_to(d) for d in kept):
            continue
        kept.append(path)
    return kept
