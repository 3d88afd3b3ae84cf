"""``grader watch``: grade a file again each time it is saved, and say what changed since the last run.

A child for the next grading is started as soon as one grading ends, so that by the time the learner
saves again its interpreter has imported jax and flax: a re-grade pays for the submission and the cases,
not for the start. Each grading still runs in a fresh, isolated child of its own.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.text import Text

from grader.errors import GraderError
from grader.exercise.spec import discover_exercises
from grader.pipeline.grading import ChildStarter, GradeOptions, grade_file, resolve_exercise
from grader.pipeline.source import read_source
from grader.render.style import look
from grader.render.terminal import render_report
from grader.report.schema import Report
from grader.sandbox.start import SpawnedChild


@dataclass(frozen=True)
class Changes:
    """How the case statuses moved between two gradings of the same file."""

    newly_passing: list[str] = field(default_factory=list)
    newly_failing: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.newly_passing or self.newly_failing)


def compare_runs(before: Report | None, after: Report) -> Changes:
    if before is None:
        return Changes()
    was = {c.id: c.status for c in before.cases}
    passing = [c.id for c in after.cases if c.status == "passed" and was.get(c.id, "passed") != "passed"]
    failing = [c.id for c in after.cases if c.status != "passed" and was.get(c.id) == "passed"]
    return Changes(passing, failing)


def render_changes(changes: Changes, console: Console, *, first: bool) -> None:
    if first:
        return
    if changes.empty:
        console.print(Text("No case changed since the last run.", style="dim"))
        return
    if changes.newly_passing:
        console.print(Text(f"Now passing: {', '.join(changes.newly_passing)}", style=look("passed").strong))
    if changes.newly_failing:
        console.print(Text(f"Now failing: {', '.join(changes.newly_failing)}", style=look("failed").strong))


class _Saves:
    """Watches ``path`` from a thread, from before the first grading on, so that no save is missed."""

    def __init__(self, path: Path) -> None:
        import watchfiles

        self._queue: queue.Queue[None] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        target = path.resolve()

        def is_target(_change: object, changed: str) -> bool:
            return Path(changed).resolve() == target

        def run() -> None:
            watcher = watchfiles.watch(
                target.parent,
                watch_filter=is_target,
                debounce=200,
                step=50,
                recursive=False,  # the file's own folder, not the tree below it
                stop_event=self._stop,
                yield_on_timeout=True,
                rust_timeout=200,
            )
            for changes in watcher:
                self._ready.set()
                if changes:
                    self._queue.put(None)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        self._ready.wait(timeout=5)  # the first (empty) round means the watch is in place

    def next(self) -> None:
        """Blocks until the file is saved; saves made meanwhile count as one."""
        self._queue.get()
        while not self._queue.empty():
            self._queue.get_nowait()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def watch(
    path: Path,
    *,
    exercise_id: str | None,
    options: GradeOptions,
    console: Console,
    max_runs: int | None = None,
    on_report: Callable[[Report, Changes], None] | None = None,
) -> Report | None:
    """Grades ``path`` now and after every save, until interrupted (or ``max_runs`` gradings)."""
    exercise = resolve_exercise(read_source(path), exercise_id, discover_exercises(options.exercise_roots))
    previous: Report | None = None
    starter = ChildStarter(options)  # each grading's child, forked from a server where it can be
    spawned: SpawnedChild | None = None
    runs = 0

    def grade_once() -> Report:
        nonlocal spawned, previous, runs
        try:
            report = grade_file(path, exercise_id=exercise.id, options=options, spawned=spawned)
        finally:
            if spawned is not None and spawned.used:  # used up, even when the grading failed
                spawned = None
            if spawned is None:
                spawned = starter.spawn(exercise)  # warm for the next save
        changes = compare_runs(previous, report)
        console.clear()
        render_report(report, console)
        render_changes(changes, console, first=previous is None)
        console.print(Text(f"Watching {path} — save it to grade again, Ctrl-C to stop.", style="dim"))
        if on_report is not None:
            on_report(report, changes)
        previous, runs = report, runs + 1
        return report

    saves = _Saves(path)
    try:
        grade_once()
        while max_runs is None or runs < max_runs:
            saves.next()
            try:
                grade_once()
            except GraderError as exc:  # a file deleted between save and grading, say: keep watching
                console.print(Text(f"grader: {exc}", style=look("error").strong))
    finally:
        saves.close()
        if spawned is not None:
            spawned.discard()
        starter.close()
    return previous
