"""Grading many submissions at once: a class's folder, a glob, a list of files.

paths -> submission files (``collect_submissions``) -> a pool of worker threads, one per slot, each
grading one file at a time with ``grade_file`` in a fresh isolated child -> ``BatchEntry`` per file ->
``BatchReport``.

Speed comes from work shared safely: each slot starts the child for its next submission while the
current one is graded (imports and warm-up done, no submission code run yet); the reference and its
variants run once per batch (the cache, with one run per entry however many threads ask); compiled code
comes from the trusted compilation cache. Isolation is per submission: every submission gets a child
and sandbox of its own, and where children drop privileges no two children alive at once share a uid.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from grader.errors import GraderError, UsageError
from grader.exercise import Exercise, discover_exercises
from grader.grading import GradeOptions, grade_file, named_exercise, resolve_exercise, sanitize, spawn_for
from grader.sandbox.isolation import MAX_SLOTS, Isolation, choose_isolation, for_slot
from grader.sandbox.process import SpawnedChild
from grader.schema import BatchEntry, BatchReport, Report
from grader.source import read_source

GLOB_CHARACTERS = frozenset("*?[")
SKIPPED_FOLDERS = frozenset({"__pycache__", "node_modules"})
MAX_JOBS = MAX_SLOTS // 2  # each worker takes two uids in turn
# Verdicts another submission's load could cause (no cgroup bounds CPU or memory per submission).
LOAD_SENSITIVE = frozenset({"timeout", "crashed", "memory-limit"})


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


def entry_from_report(path: Path, report: Report, report_file: str | None) -> BatchEntry:
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
    """What a front end hears while a batch runs (from worker threads: the callbacks must be thread-safe)."""

    finished: Callable[[BatchEntry], None] = lambda _entry: None
    save: Callable[[Path, Report], str | None] | None = None  # writes a report, returns the file written


class _Slot:
    """One worker: grades a submission at a time, with the child for the next one started meanwhile."""

    def __init__(self, batch: _Batch, isolations: tuple[Isolation, Isolation], *, ahead: bool = True) -> None:
        self.batch = batch
        self.ahead = ahead  # start the next submission's child during this one (not when grading alone)
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
                    entry = self._grade(path, started)
                except Exception as exc:  # noqa: BLE001 - a bug in the grader must not stop the others
                    entry = _problem(path, "fault", f"internal error: {type(exc).__name__}: {exc}", started)
                if entry is not None:
                    self.batch.record(index, entry)
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
        child = spawn_for(exercise, self.batch.options, self.isolations[self.turn])
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

    def _grade(self, path: Path, started: float) -> BatchEntry | None:
        """The entry for one submission, or None when the batch was stopped before it finished."""
        batch = self.batch
        if path in batch.linked:
            message = "a symbolic link (or below a linked folder): a batch grades only files where they lie"
            return _problem(path, "skipped", message, started)
        child: SpawnedChild | None = None
        try:
            source = read_source(path)
            exercise = resolve_exercise(source, batch.exercise_id, batch.exercises)
            if source.problem is None:  # a file that does not parse runs no child at all
                child = self._child_for(exercise)
                self._start_spare(exercise)
            report = grade_file(
                path, exercise_id=exercise.id, options=batch.options, spawned=child, cancel=batch.cancel
            )
        except UsageError as exc:
            return _problem(path, "skipped", str(exc), started)
        except GraderError as exc:
            if batch.cancel.is_set():
                return None  # the reference's run was stopped by the cancel: not a finished grading
            return _problem(path, "fault", str(exc), started)
        finally:
            if child is not None and not child.used:
                child.discard()
        if batch.cancel.is_set():
            return None  # stopped part-way: not a finished grading
        report_file = None
        if batch.events.save is not None:
            try:
                report_file = batch.events.save(path, report)
            except Exception as exc:  # noqa: BLE001 - the grading stands; the entry says what failed
                entry = entry_from_report(path, report, None)
                return entry.model_copy(update={"message": shown(f"{entry.message} (report not written: {exc})")})
        return entry_from_report(path, report, report_file)


def _problem(path: Path, status: str, message: str, started: float) -> BatchEntry:
    return BatchEntry(
        path=shown(str(path)),
        status=status,  # type: ignore[arg-type]
        message=shown(message),
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
    ) -> None:
        self.paths = paths
        self.linked = linked
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

    def queue(self, indices: Iterable[int]) -> None:
        for index in indices:
            self.todo.put((index, self.paths[index]))

    def record(self, index: int, entry: BatchEntry) -> None:
        with self._lock:
            self.entries[index] = entry
        self.events.finished(entry)


def grade_batch(
    paths: list[Path],
    *,
    exercise_id: str | None = None,
    options: GradeOptions | None = None,
    jobs: int | None = None,
    events: BatchEvents | None = None,
    cancel: threading.Event | None = None,
    linked: Iterable[Path] = (),
) -> BatchReport:
    """Grades every file, ``jobs`` at a time, and returns the batch report.

    Setting ``cancel`` (Ctrl-C in the CLI) stops the batch: gradings under way end, none start, and the
    report lists the finished ones with ``interrupted`` set. A problem with one submission (unreadable,
    hostile, a fault of the grader on it) becomes that submission's entry and never stops the others.
    Submissions that ran out of time or memory, or crashed, while others ran beside them are graded
    again on their own at the end, so that a neighbour's load cannot decide their verdict. ``linked``:
    files reached through symbolic links (see ``collect_submissions``), listed as skipped.
    """
    options = options or GradeOptions()
    cancel = cancel or threading.Event()
    jobs = max(1, min(jobs or default_jobs(), MAX_JOBS, len(paths) or 1))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="grader-batch-") as scratch:
        if options.cache_dir is None:
            # No cache of the user's is read or written; one for this batch alone still runs the
            # reference and its variants once, not once per submission.
            options = dataclasses.replace(options, cache_dir=Path(scratch))
        iso = choose_isolation(options.isolation)
        batch = _Batch(paths, exercise_id, options, events or BatchEvents(), cancel, frozenset(linked))
        try:
            _run_slots(batch, [_Slot(batch, (for_slot(iso, 2 * n), for_slot(iso, 2 * n + 1))) for n in range(jobs)])
            again = [i for i, e in sorted(batch.entries.items()) if _load_sensitive(e)]
            if jobs > 1 and again and not cancel.is_set():
                batch.queue(again)
                _run_slots(batch, [_Slot(batch, (for_slot(iso, 0), for_slot(iso, 1)), ahead=False)])
        except KeyboardInterrupt:
            raise BatchInterrupted(_report(batch, iso, jobs, started)) from None
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
            entries.append(_problem(path, "fault", "not graded: the grader stopped before it", started))
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


__all__ = [
    "BatchEvents",
    "BatchInterrupted",
    "Collected",
    "collect_submissions",
    "default_jobs",
    "grade_batch",
    "report_names",
]
