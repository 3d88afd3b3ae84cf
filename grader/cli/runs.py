"""``grader grade``'s two ways: one file, whose report is written in each format asked, and a batch, with its
progress on stderr, its outputs written as gradings end, and a cancelled CI job (SIGTERM) stopping it as
Ctrl-C does. Each returns the exit code (``grader.cli.exits``)."""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from grader.cli.exits import batch_exit_code, interrupted_by, report_exit_code, say_batch_problems
from grader.cli.outputs import BatchOutputs, Targets, open_folders, refuse_single_formats, write_reports

if TYPE_CHECKING:
    from grader.pipeline.grading import GradeOptions


def grade_one(path: Path, exercise: str | None, options: GradeOptions, targets: Targets, color: bool | None) -> int:
    """Grades one file, remembers the result for the learner, and writes the report where asked."""
    from grader.learner.state import record_result
    from grader.pipeline.grading import grade_file

    with contextlib.ExitStack() as stack:
        # Every output's folder is made before the child runs: a child cannot make it first.
        files = open_folders(targets.files(), stack)
        report = grade_file(path, exercise_id=exercise, options=options)
        record_result(report)
        unwritten = write_reports(report, ([] if targets.output else [(targets.fmt, None, None)]) + files, color)
    return report_exit_code(report, unwritten=unwritten)


def grade_many(
    patterns: list[str],
    exercise: str | None,
    options: GradeOptions,
    targets: Targets,
    color: bool | None,
    jobs: int | None,
) -> int:
    """Grades a batch and writes what was asked; a Ctrl-C (or SIGTERM) keeps what finished (exit 130)."""
    from grader.pipeline.batch import BatchEvents, BatchInterrupted, collect_submissions, grade_batch
    from grader.render.batch import BatchProgress
    from grader.render.terminal import make_console

    refuse_single_formats(targets)
    collected = collect_submissions(patterns)
    files = collected.files
    with contextlib.ExitStack() as stack:
        outputs = BatchOutputs(targets, files, stack)
        stack.enter_context(interrupted_by(signal.SIGTERM))
        progress = BatchProgress(make_console(color=color, file=sys.stderr), len(files), live=sys.stderr.isatty())
        events = BatchEvents(
            finished=progress.finished,
            save=outputs.save if outputs.reports is not None else None,
            recorded=outputs.record,
        )
        interrupted = False
        with progress:
            try:
                batch = grade_batch(
                    files,
                    linked=collected.linked,
                    exercise_id=exercise,
                    options=options,
                    jobs=jobs,
                    events=events,
                    journal=outputs.journal,
                    earlier=outputs.earlier if targets.resume else None,
                )
            except BatchInterrupted as stop:
                batch, interrupted = stop.report, True
        outputs.finish(batch, color)
    unwritten = outputs.unwritten.failures()
    say_batch_problems(batch, broken=events.failures, unwritten=unwritten, interrupted=interrupted)
    return batch_exit_code(batch, unwritten=bool(unwritten), broken=bool(events.failures), interrupted=interrupted)
