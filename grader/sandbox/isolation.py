"""How far a child is isolated, and the command line that isolates it.

Two levels:

- ``bwrap``: the child runs inside bubblewrap with new PID, network, IPC and UTS namespaces, a new
  session, and a root file system that holds only read-only system libraries, the Python environment,
  the compilation cache and its own throwaway working directory. The reference, the exercises, the
  grader's checkout and caches of expected outputs are not mounted. Everything it starts dies with it.
- ``process``: a plain child process (own session, scrubbed environment, resource limits).

On top of either, a grader running as root makes the child drop to an unprivileged uid before any
submission code runs. ``GRADER_ISOLATION`` (``auto``, ``bwrap`` or ``process``) chooses; ``auto`` takes
bwrap when it is installed and works here.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from grader.errors import SandboxError

ISOLATION_ENV = "GRADER_ISOLATION"
SANDBOX_UID = 65534  # nobody
SANDBOX_GID = 65534  # nogroup
MAX_SLOTS = 64  # children at once, each with its own uid below SANDBOX_UID
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
    if drop_to and not all(_world_readable(p) for p in environment_paths()):
        # Without mounts of its own, another user must be able to reach the Python installation.
        note = "runs as root: the Python installation is not readable by an unprivileged user"
        return Isolation("process", None, note=note)
    if not drop_to:
        return Isolation("process", None, note="runs as the grader's own user")
    return Isolation("process", drop_to)


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


def _world_readable(path: Path) -> bool:
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
    kept = []
    for path in sorted(paths, key=lambda p: len(p.parts)):
        if any(path.is_relative_to(d) for d in (*SYSTEM_DIRS, *kept)):
            continue
        kept.append(path)
    return kept
