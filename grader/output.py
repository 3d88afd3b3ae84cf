"""Writing the grader's outputs (reports, the gradebook and its journal, ``--output``) where the grader
chose, never through a symbolic link and never into a folder other users can write: folders made and
opened before any child runs, entered one at a time without following links, each file written under a
fresh exclusive name and renamed over its final one. Text for stdout is written as stdout's encoding can
take it; what could not be written is kept (``Unwritten``) for the exit code.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath

from grader.errors import OutputError, UsageError

FOLDER_MODE = 0o755  # less the umask: never writable by other users
FILE_MODE = 0o644
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link is in the way (the grader never writes through one)"
    return exc.strerror or str(exc)


def others_can_write(info: os.stat_result) -> bool:
    """Whether a user other than the grader's own (or root) can change what a folder holds: it belongs to
    someone else, or its group or everyone may write in it (the grader's user-private group excepted)."""
    if info.st_uid not in (os.geteuid(), 0) or info.st_mode & stat.S_IWOTH:
        return True
    return bool(info.st_mode & stat.S_IWGRP) and not _private_group(info.st_gid)


def _private_group(gid: int) -> bool:
    """The grader's own user-private group (what systems with umask 002 give each user): its primary group,
    named after its user, with no other member listed."""
    import grp
    import pwd

    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    return gid == os.getegid() and group.gr_name == user and set(group.gr_mem) <= {user}


def _writable_by_others(info: os.stat_result, where: Path | str = "it") -> str:
    return f"other users can write in {where} (mode {stat.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid})"


class OutputFolder:
    """A folder the grader writes outputs into, opened once, before any child runs.

    Below it, folders are made or entered one at a time without following a symbolic link, and each must be
    writable by the grader's own user alone. A file is written under a fresh name (created exclusively, never
    through a link), then renamed over its final name: that replaces a link left there rather than following
    it, and a reader sees the old file or the new one, never half of one.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def make(cls, path: Path, *, private: bool, for_file: Path | None = None) -> OutputFolder:
        """Makes ``path`` where missing (mode 0755, missing parents too) and opens it; ``OutputError`` (naming
        ``for_file``, the file to be written there, if given) if it cannot. ``private`` (``--output-dir``): a
        folder other users can write in, or one they could rename (its own folder writable by all without
        the sticky bit), is refused as a usage error."""
        try:
            _make_folders(path)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise OutputError(for_file or path, reason(exc)) from exc
        folder = cls(path, fd)
        try:
            if private:
                folder._refuse_shared()
        except BaseException:
            folder.close()
            raise
        return folder

    def _refuse_shared(self) -> None:
        info = os.fstat(self._fd)
        if others_can_write(info):
            raise UsageError(
                f"--output-dir {self.path}: {_writable_by_others(info)}: they could replace the reports or plant "
                f"links; choose a folder only you can write (chmod go-w {self.path})"
            )
        above = os.stat("..", dir_fd=self._fd)
        if above.st_mode & stat.S_IWOTH and not above.st_mode & stat.S_ISVTX:
            raise UsageError(
                f"--output-dir {self.path}: any user can rename or replace it (the folder it is in has mode "
                f"{stat.S_IMODE(above.st_mode):04o}, without the sticky bit); choose another place"
            )

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def refuse_shared_below(self, files: Iterable[PurePath]) -> None:
        """Refuses (a usage error) a folder on the way to any of ``files`` that exists already and that other
        users can write in. A link or a missing folder is left to ``write``, which never follows one."""
        usable: dict[PurePath, bool] = {}
        for file in files:
            for depth in range(1, len(file.parts)):
                prefix = PurePath(*file.parts[:depth])
                if prefix not in usable:
                    try:  # the prefix's own parents are real folders: checked at a smaller depth
                        info = os.stat(prefix, dir_fd=self._fd, follow_symlinks=False)
                    except OSError:
                        info = None
                    usable[prefix] = info is not None and stat.S_ISDIR(info.st_mode)
                    if info is not None and usable[prefix] and others_can_write(info):
                        raise UsageError(
                            f"--output-dir {self.path / prefix}: {_writable_by_others(info)}: they could replace "
                            "the reports in it; remove it or chmod go-w it"
                        )
                if not usable[prefix]:
                    break

    def write(self, relative: PurePath, data: bytes) -> Path:
        """Writes ``data`` as ``relative`` below the folder; returns the path written. ``OutputError`` if it
        cannot: a folder on the way that is a link, a file, or writable by other users; a full disk."""
        target = self.path / relative
        opened: list[int] = []
        try:
            folder = self._fd
            for depth, name in enumerate(relative.parts[:-1], start=1):
                folder = _enter(folder, name, self.path.joinpath(*relative.parts[:depth]), target)
                opened.append(folder)
            _replace(folder, relative.name, data)
        except OSError as exc:
            raise OutputError(target, reason(exc)) from exc
        finally:
            for fd in opened:
                os.close(fd)
        return target

    def start_file(self, name: str, data: bytes) -> int:
        """Replaces the file ``name`` with one holding ``data``; returns a descriptor that appends to it."""
        try:
            temp, fd = _fresh_file(self._fd, os.O_APPEND)
            try:
                write_all(fd, data)
                os.replace(temp, name, src_dir_fd=self._fd, dst_dir_fd=self._fd)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=self._fd)
                raise
        except OSError as exc:
            raise OutputError(self.path / name, reason(exc)) from exc
        return fd

    def read_own(self, name: str) -> bytes | None:
        """What the file ``name`` holds, or None when there is none. Only a regular file of the grader's own
        user that no one else can write is read: anything else (a link, another user's file, one others can
        write) could be forged, and is a usage error."""
        where = self.path / name
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self._fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UsageError(f"cannot read {where}: {reason(exc)}") from exc
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or others_can_write(info):
                raise UsageError(
                    f"{where} is not a file only you can write, so it could have been forged: remove it, or "
                    "grade without --resume"
                )
            return handle.read()


def _make_folders(path: Path) -> None:
    """``mkdir -p`` with mode 0755 for every folder it makes (``os.makedirs`` gives the parents 0777)."""
    missing = []
    for folder in [path, *path.parents]:
        if os.path.isdir(folder):
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, FOLDER_MODE)


def _enter(parent: int, name: str, shown_as: Path, target: Path) -> int:
    """Makes (mode 0755) or opens the folder ``name`` in ``parent``, never through a link; refuses one that
    other users can write in."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, FOLDER_MODE, dir_fd=parent)
    try:
        fd = os.open(name, _DIRECTORY, dir_fd=parent)
    except NotADirectoryError:  # what O_DIRECTORY says of a link too: tell the two apart
        if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name) from None
        raise
    info = os.fstat(fd)
    if others_can_write(info):
        os.close(fd)
        raise OutputError(target, _writable_by_others(info, shown_as))
    return fd


def _fresh_file(folder: int, flags: int = 0) -> tuple[str, int]:
    """A new file of a name no one else can have chosen, created exclusively (never through a link)."""
    temp = f".grader-{secrets.token_hex(8)}.tmp"
    flags |= os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return temp, os.open(temp, flags, FILE_MODE, dir_fd=folder)


def _replace(folder: int, name: str, data: bytes) -> None:
    temp, fd = _fresh_file(folder)
    try:
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=folder)
        raise


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def encoded(text: str) -> bytes:
    """A text output's bytes: UTF-8, and a lone surrogate (an undecodable file name) as a backslash escape."""
    return text.encode("utf-8", "backslashreplace")


def write_file(path: Path, text: str, folder: OutputFolder | None = None) -> Path:
    """Writes ``text`` to ``path`` as ``OutputFolder.write`` does, in ``folder`` (``path``'s own, opened
    already) or in ``path``'s folder, made and opened now. Raises ``OutputError``."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(OutputFolder.make(path.parent, private=False, for_file=path))
        return folder.write(PurePath(path.name), encoded(text))


def write_stdout(text: str, escaped: Callable[[str, str], str]) -> None:
    """Writes ``text`` to stdout. Where stdout's encoding cannot take all of it (PYTHONIOENCODING=ascii,
    LANG=C), ``escaped(text, encoding)`` is written instead: never a UnicodeEncodeError."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        text = escaped(text, encoding)
    except LookupError:
        pass
    sys.stdout.write(text)
    sys.stdout.flush()


STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def append_step_summary(markdown: str) -> None:
    """Appends ``markdown`` to the job summary of GitHub Actions (the file ``$GITHUB_STEP_SUMMARY`` names),
    when there is one. The file is the runner's, not an output of the grader: one that cannot be written is
    passed over."""
    summary = os.environ.get(STEP_SUMMARY_ENV)
    if summary:
        with contextlib.suppress(OSError), open(summary, "a", encoding="utf-8") as out:
            out.write(markdown)


class Unwritten:
    """The outputs that could not be written, by file, from any thread: the last failure of each file whose
    last write failed (a file written at a later try is dropped)."""

    def __init__(self) -> None:
        self._failures: dict[str, OutputError] = {}
        self._lock = threading.Lock()

    def attempt(self, write: Callable[[], Path]) -> Path:
        """Runs ``write``, keeping the ``OutputError`` it raises (and raising it again)."""
        try:
            written = write()
        except OutputError as exc:
            self.add(exc)
            raise
        with self._lock:
            self._failures.pop(str(written), None)
        return written

    def add(self, failure: OutputError) -> None:
        with self._lock:
            self._failures[failure.path] = failure

    def failures(self) -> list[OutputError]:
        with self._lock:
            return list(self._failures.values())
