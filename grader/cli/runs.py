"""``grader grade``'s two ways: one file, whose report is written in each format asked, and a batch, with its
progress on stderr, its outputs written as gradings end, and a cancelled CI job (SIGTERM) stopping it as
Ctrl-C does. Each returns the exit code (``grader.cli.exits``)."""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from grader.cli.exits import batch_exit_code, interrupted_by, report_exit_code, say_batch_problems
from grader.cli.outputs import BatchOutputs, Targets, open_folders, refuse_single_formats, write_reports
from grader.render.formats import load_renderers

if TYPE_CHECKING:
    from grader.pipeline.grading import GradeOptions
    from grader.pipeline.shard import Shard
    from grader.report.schema import BatchReport, ShardInfo
    from grader.sandbox.start import SpawnedChild


def grade_one(
    path: Path,
    exercise: str | None,
    options: GradeOptions,
    targets: Targets,
    color: bool | None,
    *,
    spawned: SpawnedChild | None = None,
) -> int:
    """Grades one file (in ``spawned``, a child started for it, where that fits), remembers the result for
    the learner, and writes the report where asked."""
    from grader.learner.state import record_result
    from grader.pipeline.grading import grade_file

    with contextlib.ExitStack() as stack:
        # Every output's folder is made before the child runs: a child cannot make it first.
        files = open_folders(targets.files(), stack)
        documents = ([] if targets.output else [(targets.fmt, None, None)]) + files
        formats = [fmt for fmt, _path, _folder in documents]
        frozen_before = gc.get_freeze_count()
        stack.callback(lambda: None if frozen_before else gc.unfreeze())

        def meanwhile() -> None:
            """While the child runs: what the report would wait for after it."""
            load_renderers(formats)
            # What is in memory now (the grader's modules, mostly) outlives the grading: frozen, it is left
            # out of the garbage collector's full passes, which would otherwise come after the child
            # (tens of milliseconds each). Thawed once the report is written, where nothing else froze.
            if not frozen_before:
                gc.freeze()

        report = grade_file(path, exercise_id=exercise, options=options, spawned=spawned, meanwhile=meanwhile)
        record_result(report)
        unwritten = write_reports(report, documents, color)
    return report_exit_code(report, unwritten=unwritten)


def grade_many(
    patterns: list[str],
    exercise: str | None,
    options: GradeOptions,
    targets: Targets,
    color: bool | None,
    jobs: int | None,
    shard: Shard | None = None,
) -> int:
    """Grades a batch (with ``shard``, its share of the submissions found) and writes what was asked; a
    Ctrl-C (or SIGTERM) keeps what finished (exit 130)."""
    from grader.pipeline.batch import BatchEvents, BatchInterrupted, collect_submissions, grade_batch
    from grader.render.batch import BatchProgress
    from grader.render.terminal import make_console

    refuse_single_formats(targets)
    collected = collect_submissions(patterns)
    files = collected.files if shard is None else _share(collected.files, shard)
    with contextlib.ExitStack() as stack:
        outputs = BatchOutputs(targets, files, stack, everyone=collected.files)
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
        if shard is not None:
            batch = batch.model_copy(update={"shard": _shard_info(shard, collected.files, exercise, options)})
        outputs.finish(batch, color)
    unwritten = outputs.unwritten.failures()
    say_batch_problems(batch, broken=events.failures, unwritten=unwritten, interrupted=interrupted)
    return batch_exit_code(batch, unwritten=bool(unwritten), broken=bool(events.failures), interrupted=interrupted)


def _share(files: list[Path], shard: Shard) -> list[Path]:
    """The files of ``shard``, by their paths below the folder the submissions share (said on stderr)."""
    from grader.cli.exits import say
    from grader.pipeline.batch import report_names
    from grader.pipeline.shard import take_share

    mine = take_share(report_names(files), shard)
    say(f"shard {shard}: {len(mine)} of {len(files)} submissions")
    return mine


def _shard_info(shard: Shard, everyone: list[Path], exercise: str | None, options: GradeOptions) -> ShardInfo:
    """What a shard's batch report says of the grading it is a share of, for ``grader merge`` to check."""
    from grader.exercise.spec import discover_exercises
    from grader.pipeline.batch import exercise_digest, shown
    from grader.pipeline.environment import grader_version
    from grader.report.schema import ShardInfo

    found = discover_exercises(options.exercise_roots)
    graded = [found[exercise]] if exercise is not None and exercise in found else list(found.values())
    return ShardInfo(
        index=shard.index,
        count=shard.count,
        submissions=[shown(str(path)) for path in everyone],
        exercise=exercise,
        exercises={item.id: exercise_digest(item) for item in graded},
        seed=options.seed,
        grader=grader_version(),
    )


def merge_many(files: list[Path], targets: Targets, color: bool | None) -> int:
    """Merges the shards' batch reports into the class's and writes what was asked; the exit code is the
    merged batch's, as if one batch had graded the class."""
    from grader.cli.outputs import refuse_single_formats_in_merge, write_merged
    from grader.pipeline.merge import merge_shards, read_shard_report

    refuse_single_formats_in_merge(targets)
    batch: BatchReport = merge_shards([read_shard_report(path) for path in files])
    unwritten = write_merged(batch, targets, color)
    say_batch_problems(batch, broken=[], unwritten=unwritten, interrupted=False)
    return batch_exit_code(batch, unwritten=bool(unwritten))
