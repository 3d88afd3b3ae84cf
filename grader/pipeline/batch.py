"""Grading many submissions at once: a class's folder, a glob, a list of files.

paths -> submission files (``collect_submissions``) -> a pool of worker threads, one per slot, each
grading one file at a time with ``grade_file`` in a fresh isolated child -> ``BatchEntry`` per file ->
``BatchReport``.

Speed comes from work shared safely: each slot starts the child for its next submission while the
current one is graded (forked from a fork server that imported jax and flax once; no submission code
run yet); the reference and its variants run once per batch (the cache, with one run per entry however
many threads ask); compiled code comes from the trusted compilation cache. Isolation is per submission:
every submission gets a child and sandbox of its own, and where children drop privileges no two
children alive at once share a uid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import queue
import secrets
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from grader.errors import GraderError, OutputError, UsageError
from grader.exercise.spec import Exercise, discover_exercises
from grader.output import OutputFolder, reason, write_all
from grader.pipeline.environment import grader_version
from grader.pipeline.grading import (
    ChildStarter,
    GradeOptions,
    grade_file,
    named_exercise,
    resolve_exercise,
    sanitize,
)
from grader.pipeline.reference import TrustedRunner
from grader.pipeline.source import Source, read_source
from grader.report.codes import Code
from grader.report.schema import BatchEntry, BatchReport, Report
from grader.sandbox.isolation import MAX_SLOTS, Isolation, choose_isolation, for_slot, remove_tree
from grader.sandbox.start import SpawnedChild

GLOB_CHARACTERS = frozenset("*?[")
SKIPPED_FOLDERS = frozenset({"__pycache__", "node_modules"})
MAX_JOBS = MAX_SLOTS // 2  # each worker takes two uids in turn
# Verdicts another submission's load could cause (no cgroup bounds CPU or memory per submission).
LOAD_SENSITIVE = frozenset({Code.TIMEOUT, Code.CRASHED, Code.MEMORY_LIMIT})


@dataclasses.dataclass(frozen=True)
class Collected:
    """The submission files found, and those among them reached through a symbolic link."""

    files: list[Path]
    linked: frozenset[Path] = frozenset()


def collect_submissions(patterns: Iterable[str]) -> Collected:
    """The submission files the paths name: files as given, folders searched for ``*.py`` (hidden folders
    and ``__pycache__`` left out), and glob patterns the shell did not expand (``**`` included).

    Each file is listed once, in the order given (a folder's and a glob's files sorted). A path that names
    nothing, or a folder or pattern without Python files, is a usage error. A file that is a symbolic
    link, or lies below a linked folder inside the folder or pattern given, is listed in ``linked``: a
    batch does not grade it (it could stand for another learner's file, or the reference).
    """
    found: list[Path] = []
    linked: set[Path] = set()
    seen: set[str] = set()
    for pattern in patterns:
        path = Path(pattern)
        root = path
        if path.is_dir():
            candidates = _python_files(path)
        elif path.is_file():
            candidates, root = [path], path.parent
        elif GLOB_CHARACTERS & set(pattern):
            import glob

            candidates = []
            for match in sorted(glob.glob(pattern, recursive=True)):
                candidates += _python_files(Path(match)) if os.path.isdir(match) else [Path(match)]
            root = _literal_prefix(path)
        elif path.exists():
            raise UsageError(f"{pattern}: not a regular file or folder")
        else:
            raise UsageError(f"{pattern}: no such file or folder")
        if not candidates:
            raise UsageError(f"{pattern}: no Python files found")
        for candidate in candidates:
            key = os.path.normpath(os.path.abspath(candidate))
            if key not in seen:
                seen.add(key)
                found.append(candidate)
                if not _in_place(candidate, root):
                    linked.add(candidate)
    return Collected(found, frozenset(linked))


def _literal_prefix(pattern: Path) -> Path:
    """The folder part of a glob pattern before its first wildcard: ``class`` for ``class/*/x.py``."""
    parts = []
    for part in pattern.parts[:-1]:
        if GLOB_CHARACTERS & set(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _in_place(file: Path, root: Path) -> bool:
    """Whether ``file`` is where it appears to be below ``root``: no symbolic link on the way, itself none."""
    relative = os.path.relpath(os.path.abspath(file), os.path.abspath(root))
    return os.path.realpath(file) == os.path.join(os.path.realpath(root), relative)


def _python_files(folder: Path) -> list[Path]:
    """The ``*.py`` files under a folder, sorted; symbolic links to folders are not followed."""
    files = []
    for parent, folders, names in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith(".") and f not in SKIPPED_FOLDERS)
        files += [Path(parent, name) for name in names if name.endswith(".py") and not name.startswith(".")]
    return sorted(files)


def report_names(paths: list[Path]) -> dict[Path, Path]:
    """For each submission, a relative path that names its report in ``--output-dir``: the path below the
    folder all submissions share, so ``alice/solution.py`` and ``bob/solution.py`` stay apart."""
    absolute = [Path(os.path.abspath(p)) for p in paths]
    if not absolute:
        return {}
    common = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    return {path: full.relative_to(common) for path, full in zip(paths, absolute, strict=True)}


def shown(text: str) -> str:
    """Text from a file name or an error, safe to print, write as CSV, XML or JSON: control characters
    (line breaks too) escaped, undecodable bytes of a file name as ``\\udcXX``."""
    return sanitize(text).replace("\n", "\\n").replace("\t", "\\t")


def entry_from_report(path: Path, report: Report, report_file: str | None, *, resumed: bool = False) -> BatchEntry:
    main = report.diagnoses[0].code if report.diagnoses else None
    return BatchEntry(
        path=shown(str(path)),
        status=report.status,
        score=report.score,
        max_score=report.max_score,
        diagnosis=main,
        message=report.message,
        duration_s=report.duration_s,
        report_file=shown(report_file) if report_file else None,
        report=report,
        resumed=resumed,
    )


def default_jobs() -> int:
    """One slot per core the grader may use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_JOBS))


@dataclasses.dataclass
class BatchEvents:
    """What a front end hears while a batch runs (from worker threads: the callbacks must be thread-safe).

    An exception a callback raises is kept in ``failures`` (for the front end to report once the batch is
    done), never raised into the worker: a display that fails must not fail the gradings after it.
    """

    finished: Callable[[BatchEntry], None] = lambda _entry: None
    save: Callable[[Path, Report], str | None] | None = None  # writes a report, returns the file written
    # Every entry finished so far, in the paths' order, after each one (one call at a time): the gradebook.
    recorded: Callable[[list[BatchEntry]], None] = lambda _entries: None
    failures: list[Exception] = dataclasses.field(default_factory=list)


class JournalEntry(BaseModel):
    """A finished submission as the journal beside the gradebook keeps it: its entry, and what ``--resume``
    checks before keeping it instead of grading it again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entry: BatchEntry
    exercise_digest: str | None = None  # ``exercise_digest`` of the exercise it was graded against
    alone: bool = False  # graded with nothing else running: a timeout or crash is its own, not a neighbour's


class _Slot:
    """One worker: grades a submission at a time, with the child for the next one started meanwhile."""

    def __init__(
        self, batch: _Batch, isolations: tuple[Isolation, Isolation], *, ahead: bool = True, alone: bool = False
    ) -> None:
        self.batch = batch
        self.ahead = ahead  # start the next submission's child during this one (not when grading alone)
        self.alone = alone  # no other slot grades meanwhile: its verdicts stand (see grade_batch)
        # Two uids (where children drop privileges), taken in turn: the child started ahead never shares
        # a uid with the submission running meanwhile, which could otherwise signal or trace it.
        self.isolations = isolations
        self.turn = 0
        self.spare: tuple[str, SpawnedChild] | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.batch.cancel.is_set():
                try:
                    index, path = self.batch.todo.get_nowait()
                except queue.Empty:
                    return
                started = time.monotonic()
                try:
                    finished = self._grade(path, started)
                except Exception as exc:  # noqa: BLE001 - a bug in the grader must not stop the others
                    message = f"internal error: {type(exc).__name__}: {exc}"
                    problem = _problem(path, "fault", message, started, max_score=self.batch.max_score())
                    finished = JournalEntry(entry=problem)
                if finished is not None:
                    self.batch.record(index, finished)
        finally:
            self._discard_spare()
            self.done.set()

    def _child_for(self, exercise: Exercise) -> SpawnedChild:
        if self.spare is not None and self.spare[0] == exercise.id:
            child, self.spare = self.spare[1], None
            return child
        self._discard_spare()
        return self._spawn(exercise)

    def _spawn(self, exercise: Exercise) -> SpawnedChild:
        child = self.batch.starter.spawn(exercise, self.isolations[self.turn])
        self.turn = 1 - self.turn  # only once the child exists: its uid is now the one in use
        return child

    def _start_spare(self, exercise: Exercise) -> None:
        """Starts the child for this slot's next submission; a failure only costs that head start."""
        if not self.ahead or self.batch.todo.empty() or self.batch.cancel.is_set():
            return
        try:
            self.spare = (exercise.id, self._spawn(exercise))
        except GraderError:
            self.spare = None

    def _discard_spare(self) -> None:
        if self.spare is not None:
            self.spare[1].discard()
            self.spare = None

    def _grade(self, path: Path, started: float) -> JournalEntry | None:
        """The entry for one submission (as the journal keeps it), or None when the batch was stopped before it
        finished."""
        batch = self.batch
        if path in batch.linked:
            message = "a symbolic link (or below a linked folder): a batch grades only files where they lie"
            return JournalEntry(entry=_problem(path, "skipped", message, started))
        child: SpawnedChild | None = None
        digest = None
        exercise: Exercise | None = None
        try:
            source = read_source(path)
            exercise = resolve_exercise(source, batch.exercise_id, batch.exercises)
            digest = batch.digest(exercise)
            if batch.earlier is not None:
                kept = batch.earlier.kept(shown(str(path)), source, exercise.id, digest, batch.options.seed)
                if kept is not None and kept.entry.report is not None:  # graded before: not again
                    return kept.model_copy(update={"entry": self._finish(path, kept.entry.report, resumed=True)})
            if source.problem is None:  # a file that does not parse runs no child at all
                child = self._child_for(exercise)
                self._start_spare(exercise)
            report = grade_file(
                path, exercise_id=exercise.id, options=batch.options, spawned=child, cancel=batch.cancel
            )
        except UsageError as exc:
            return JournalEntry(entry=_problem(path, "skipped", str(exc), started))
        except GraderError as exc:
            if batch.cancel.is_set():
                return None  # the reference's run was stopped by the cancel: not a finished grading
            max_score = batch.max_score(exercise)
            return JournalEntry(entry=_problem(path, "fault", str(exc), started, max_score=max_score))
        finally:
            if child is not None and not child.used:
                child.discard()
        if batch.cancel.is_set():
            return None  # stopped part-way: not a finished grading
        return JournalEntry(entry=self._finish(path, report), exercise_digest=digest, alone=self.alone)

    def _finish(self, path: Path, report: Report, *, resumed: bool = False) -> BatchEntry:
        """The entry for a graded submission, its report written to ``--output-dir`` (or why it could not be)."""
        report_file, problem = None, None
        if self.batch.events.save is not None:
            try:
                report_file = self.batch.events.save(path, report)
            except Exception as exc:  # noqa: BLE001 - the grading stands; the entry says what failed
                problem = exc
        entry = entry_from_report(path, report, report_file, resumed=resumed)
        if problem is not None:
            entry = entry.model_copy(update={"message": shown(f"{entry.message} (report not written: {problem})")})
        return entry


def _problem(path: Path, status: str, message: str, started: float, *, max_score: float = 0.0) -> BatchEntry:
    """An entry without a report. A fault keeps the exercise's max score where it is known, so that a
    gradebook's percentages (score over max_score) stay right for it."""
    return BatchEntry(
        path=shown(str(path)),
        status=status,  # type: ignore[arg-type]
        message=shown(message),
        max_score=max_score,
        duration_s=round(time.monotonic() - started, 3),
    )


class _Batch:
    def __init__(
        self,
        paths: list[Path],
        exercise_id: str | None,
        options: GradeOptions,
        events: BatchEvents,
        cancel: threading.Event,
        linked: frozenset[Path],
        journal: Journal | None = None,
        earlier: Earlier | None = None,
    ) -> None:
        self.paths = paths
        self.linked = linked
        self.journal = journal
        self.earlier = earlier
        self._digests: dict[str, str | None] = {}
        self.exercise_id = exercise_id
        self.options = options
        self.events = events
        self.cancel = cancel
        self.exercises = discover_exercises(options.exercise_roots)
        if exercise_id is not None:
            named_exercise(exercise_id, self.exercises)  # an unknown one is a usage error before any grading
        self.todo: queue.Queue[tuple[int, Path]] = queue.Queue()
        self.queue(range(len(paths)))
        self.entries: dict[int, BatchEntry] = {}
        self._lock = threading.Lock()
        # The slots' children, forked from a server where they can be; no warm-up: the cores are busy.
        self.starter = ChildStarter(options, warm_up=False)

    def queue(self, indices: Iterable[int]) -> None:
        for index in indices:
            self.todo.put((index, self.paths[index]))

    def max_score(self, exercise: Exercise | None = None) -> float:
        """What the exercise's cases are worth with this batch's seed (the one named by --exercise when
        ``exercise`` is not known); 0 when neither is known or the cases cannot be built."""
        from grader.exercise.cases import build_cases

        if exercise is None and self.exercise_id is not None:
            exercise = self.exercises.get(self.exercise_id)
        if exercise is None:
            return 0.0
        try:
            return float(sum(case.weight for case in build_cases(exercise, self.options.seed)))
        except Exception:  # noqa: BLE001 - a fault's entry is made whatever else fails
            return 0.0

    def digest(self, exercise: Exercise) -> str | None:
        if exercise.id not in self._digests:
            self._digests[exercise.id] = exercise_digest(exercise)
        return self._digests[exercise.id]

    def record(self, index: int, finished: JournalEntry) -> None:
        """Keeps a finished submission: in the batch, the journal and the gradebook so far (one submission at
        a time, so that the files on disk only ever grow), then on the display."""
        entry = finished.entry
        with self._lock:
            self.entries[index] = entry
            if self.journal is not None and not entry.resumed:  # a resumed one is in the journal already
                self.journal.append(finished)
            self._call(self.events.recorded, [self.entries[i] for i in sorted(self.entries)])
        self._call(self.events.finished, entry)

    def _call(self, callback: Callable[..., None], arg: object) -> None:
        try:
            callback(arg)
        except Exception as exc:  # noqa: BLE001 - a front end's failure must not fail the gradings after it
            self.events.failures.append(exc)


def grade_batch(
    paths: list[Path],
    *,
    exercise_id: str | None = None,
    options: GradeOptions | None = None,
    jobs: int | None = None,
    events: BatchEvents | None = None,
    cancel: threading.Event | None = None,
    linked: Iterable[Path] = (),
    journal: Journal | None = None,
    earlier: Earlier | None = None,
) -> BatchReport:
    """Grades every file, ``jobs`` at a time, and returns the batch report.

    Setting ``cancel`` (Ctrl-C in the CLI) stops the batch: gradings under way end, none start, and the
    report lists the finished ones with ``interrupted`` set. A problem with one submission (unreadable,
    hostile, a fault of the grader on it) becomes that submission's entry and never stops the others.
    Submissions that ran out of time or memory, or crashed, while others ran beside them are graded
    again on their own at the end, so that a neighbour's load cannot decide their verdict. ``linked``:
    files reached through symbolic links (see ``collect_submissions``), listed as skipped.

    ``journal``: where each finished entry is appended as it finishes. ``earlier``: an earlier run's
    journal (``--resume``); a submission it holds with the same file, exercise, seed and grader version is
    kept as it was graded (``resumed``), not graded again. Before anything starts, the temporary folders
    that killed graders left are removed (``remove_stale_folders``).
    """
    # One runner for the batch: the reference and its variants run once, whatever the number of submissions.
    options = dataclasses.replace(options or GradeOptions(), trusted=TrustedRunner())
    cancel = cancel or threading.Event()
    jobs = max(1, min(jobs or default_jobs(), MAX_JOBS, len(paths) or 1))
    started = time.monotonic()
    remove_stale_folders()
    scratch_folder = tempfile.TemporaryDirectory(prefix=f"grader-batch-{os.getpid()}-")
    with scratch_folder as scratch, _held_lock(os.path.join(scratch, BATCH_LOCK)):
        if options.cache_dir is None:
            # No cache of the user's is read or written; one for this batch alone still runs the
            # reference and its variants once, not once per submission.
            options = dataclasses.replace(options, cache_dir=Path(scratch))
        iso = choose_isolation(options.isolation)
        batch = _Batch(
            paths, exercise_id, options, events or BatchEvents(), cancel, frozenset(linked), journal, earlier
        )
        try:
            slots = [
                _Slot(batch, (for_slot(iso, 2 * n), for_slot(iso, 2 * n + 1)), alone=jobs == 1) for n in range(jobs)
            ]
            _run_slots(batch, slots)
            again = [i for i, e in sorted(batch.entries.items()) if _load_sensitive(e) and not e.resumed]
            if jobs > 1 and again and not cancel.is_set():
                batch.queue(again)
                _run_slots(batch, [_Slot(batch, (for_slot(iso, 0), for_slot(iso, 1)), ahead=False, alone=True)])
        except KeyboardInterrupt:
            raise BatchInterrupted(_report(batch, iso, jobs, started)) from None
        finally:
            batch.starter.close()
    return _report(batch, iso, jobs, started)


def _load_sensitive(entry: BatchEntry) -> bool:
    """A verdict another submission's load could have caused: a timeout, crash or memory limit anywhere in
    the report, or a fault of the grader (a child that could not start in time)."""
    if entry.status == "fault":
        return True
    return entry.report is not None and any(d.code in LOAD_SENSITIVE for d in entry.report.diagnoses)


def _run_slots(batch: _Batch, slots: list[_Slot]) -> None:
    """Runs the slots' workers until the queue is empty; on Ctrl-C, stops them and waits for them to
    remove their children before raising. (Events, not ``Thread.join``: a join that Ctrl-C interrupts can
    leave a thread looking finished while it still runs.)"""
    running: list[_Slot] = []
    try:
        for number, slot in enumerate(slots):
            thread = threading.Thread(target=slot.run, name=f"grader-slot-{number}", daemon=True)
            running.append(slot)  # before start: a Ctrl-C between the two must still wait for it
            try:
                thread.start()
            except BaseException:
                slot.done.set()
                raise
        for slot in running:
            while not slot.done.wait(timeout=0.2):
                pass
    except KeyboardInterrupt:
        batch.cancel.set()  # children under way stop within half a second
        for slot in running:
            while True:
                try:
                    if slot.done.wait(timeout=0.2):
                        break
                except KeyboardInterrupt:
                    continue  # a second Ctrl-C (or a CI runner's SIGTERM after SIGINT): still stopping
        raise


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a batch, carrying the report of what finished."""

    def __init__(self, report: BatchReport) -> None:
        super().__init__()
        self.report = report


def _report(batch: _Batch, iso: Isolation, jobs: int, started: float) -> BatchReport:
    interrupted = batch.cancel.is_set()
    entries = []
    for index, path in enumerate(batch.paths):
        if index in batch.entries:
            entries.append(batch.entries[index])
        elif not interrupted:  # never expected: a worker that stopped without an entry for it
            message = "not graded: the grader stopped before it"
            entries.append(_problem(path, "fault", message, started, max_score=batch.max_score()))
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.status] = counts.get(entry.status, 0) + 1
    return BatchReport(
        total=len(batch.paths),
        counts=counts,  # type: ignore[arg-type]
        interrupted=interrupted,
        isolation=iso.level,
        jobs=jobs,
        duration_s=round(time.monotonic() - started, 3),
        submissions=entries,
    )


JOURNAL_SUFFIX = ".journal"


# --- the journal: every finished submission, kept as it finishes ------------------------------------


def exercise_digest(exercise: Exercise) -> str | None:
    """The exercise as it grades, hashed: its folder's spec, catalog and code files, and its reference (None
    when one cannot be read: such an exercise is never resumed)."""
    digest = hashlib.sha256(exercise.spec.model_dump_json().encode())
    try:
        folders = {exercise.folder, exercise.catalog_folder or exercise.folder}
        for file in sorted(f for folder in folders for f in folder.iterdir() if f.suffix in (".toml", ".py")):
            digest.update(f"\n{file.name}\n".encode() + file.read_bytes())
        digest.update(b"\nreference\n" + exercise.reference_path.read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Earlier:
    """What an earlier run's journal holds: the latest line of each submission, by its path as shown."""

    lines: dict[str, JournalEntry]

    @classmethod
    def read(cls, folder: OutputFolder, name: str) -> Earlier:
        """The journal ``name`` in ``folder`` (none: nothing earlier). A line that does not validate (one cut
        short by a kill) is skipped."""
        lines: dict[str, JournalEntry] = {}
        for raw in (folder.read_own(name) or b"").splitlines():
            try:
                line = JournalEntry.model_validate_json(raw)
            except ValidationError:
                continue
            lines[line.entry.path] = line
        return cls(lines)

    def kept(
        self, path: str, source: Source, exercise_id: str, digest: str | None, seed: int | None
    ) -> JournalEntry | None:
        """The line for ``path`` when its grade still holds: the same file (sha256), exercise (id and digest),
        seed and grader version, a verdict of the submission's own (no timeout or crash while others ran
        beside it), graded (not skipped, not a fault). Marked ``resumed``."""
        line = self.lines.get(path)
        report = line.entry.report if line is not None else None
        if line is None or report is None or digest is None:
            return None
        same = (
            report.submission.sha256 == source.sha256
            and report.exercise.id == exercise_id
            and line.exercise_digest == digest
            and report.seed == seed
            and report.environment.grader == grader_version()
        )
        if not same or (_load_sensitive(line.entry) and not line.alone):
            return None
        return line.model_copy(update={"entry": line.entry.model_copy(update={"resumed": True})})


class Journal:
    """``<gradebook>.journal``: a JSON line per finished submission, appended as each finishes, so that a
    batch that is killed (kill -9, out of memory) loses none that finished, and ``--resume`` can keep them.

    It starts with the earlier run's lines when resuming; after a write fails, it stops (``failure``)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path
        self.failure: OutputError | None = None
        self._lock = threading.Lock()

    @classmethod
    def start(cls, folder: OutputFolder, name: str, earlier: Earlier | None = None) -> Journal:
        kept = b"".join(line.model_dump_json().encode() + b"\n" for line in (earlier.lines if earlier else {}).values())
        return cls(folder.start_file(name, kept), folder.path / name)

    def append(self, line: JournalEntry) -> None:
        data = line.model_dump_json().encode() + b"\n"
        with self._lock:
            if self._fd < 0:
                return
            try:
                write_all(self._fd, data)
            except OSError as exc:
                self.failure = OutputError(self.path, reason(exc))
                self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# --- what killed graders left behind -----------------------------------------------------------------

BATCH_LOCK = ".grader-batch.lock"  # held (flock) by the batch whose scratch folder it is in, while it runs


@contextlib.contextmanager
def _held_lock(path: str) -> Iterator[None]:
    """Holds the lock ``path`` while the batch runs; it is locked before it has its name, so that no one ever
    finds it free while its batch lives (the kernel drops the lock however the process ends)."""
    temp = f"{path}.{secrets.token_hex(8)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(temp, path)
        yield
    finally:
        os.close(fd)


STALE_GRACE_S = 2.0  # a child's folder made this long before the batch started, at least, may be stale


def remove_stale_folders(folder: str | None = None) -> list[str]:
    """Removes the temporary folders that graders of this user left when they were killed (kill -9, out of
    memory) and returns them: only folders this user owns, and of those, ``grader-batch-*`` whose lock no
    process holds, and children's ``grader-run-*`` last changed well before this process started that no live process
    works in or names on its command line. Another grader's folders under way are left alone."""
    base = os.path.realpath(folder or tempfile.gettempdir())
    started = _process_started()
    batches, runs = [], []
    with contextlib.suppress(OSError), os.scandir(base) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                    continue
                if entry.name.startswith("grader-batch-"):
                    batches.append(entry.path)
                elif entry.name.startswith("grader-run-") and info.st_mtime < started - STALE_GRACE_S:
                    # Younger: perhaps made by a grader about to start its child. (Its children cannot change
                    # the folder's times: it is the grader's, mode 0755.)
                    runs.append(entry.path)
    used = _in_use(runs)
    stale = [path for path in batches if not _locked(os.path.join(path, BATCH_LOCK))]
    stale += [path for path in runs if path not in used]
    for path in stale:
        remove_tree(path)
    return stale


def _locked(path: str) -> bool:
    """Whether a live process holds the lock ``path`` (a folder without one counts as held: not ours to judge)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken: no process holds it
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _in_use(folders: list[str]) -> set[str]:
    """The folders a live process works in (its current folder is in one) or names on its command line
    (a child's harness); all of them where ``/proc`` cannot tell."""
    if not folders:
        return set()
    used: set[str] = set()
    try:
        pids = [entry.name for entry in os.scandir("/proc") if entry.name.isdigit()]
    except OSError:
        return set(folders)
    for pid in pids:
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read()
        except OSError:
            command = b""
        used.update(f for f in folders if f"{cwd}/".startswith(f"{f}/") or os.fsencode(f) in command)
    return used


def _process_started() -> float:
    """When this process started, in seconds since the epoch (to a clock tick, early rather than late); 0
    where ``/proc`` cannot tell, so that nothing counts as older."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            ticks = int(handle.read().rsplit(b")", 1)[1].split()[19])  # since boot: field 22
        booted = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        return booted + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


__all__ = [
    "BatchEvents",
    "BatchInterrupted",
    "Collected",
    "Earlier",
    "Journal",
    "JournalEntry",
    "collect_submissions",
    "default_jobs",
    "grade_batch",
    "remove_stale_folders",
    "report_names",
]
