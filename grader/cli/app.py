"""The ``grader`` command. The only place that turns exceptions into messages and exit codes.

Exit codes (a promise to CI users): 0 every case passed; 1 the submission was graded and did not pass
(status ``failed`` or ``error``); 2 usage error; 3 a fault of the grader itself; 4 the grade was made but an
output (a report, the gradebook, ``--output``) could not be written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Annotated

import typer

from grader.errors import GraderError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from grader.errors import OutputError
    from grader.output import OutputFolder
    from grader.pipeline.batch import Earlier, Journal
    from grader.pipeline.grading import GradeOptions
    from grader.report.schema import BatchEntry, BatchReport, Report

EXIT_PASSED, EXIT_NOT_PASSED, EXIT_USAGE, EXIT_FAULT, EXIT_OUTPUT = 0, 1, 2, 3, 4

app = typer.Typer(
    name="grader",
    help="Grade JAX/Flax exercise submissions: isolated runs, seeded cases, feedback that names the mistake.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


ExerciseId = Annotated[str, typer.Argument(metavar="ID", help="Exercise id, see `grader exercises`.")]
ExerciseOption = Annotated[
    str | None, typer.Option("--exercise", "-e", help="Exercise id; by default found from the entry point.")
]
SeedOption = Annotated[
    int | None,
    typer.Option(
        "--seed",
        min=0,
        max=2**63 - 1,
        help="Also grade fresh cases that the exercise's generators make from this seed, so that outputs "
        "hard-coded for the fixed cases fail. The same seed always gives the same cases: grade again with it "
        "to reproduce a result (from CI, say).",
    ),
]


class Format(StrEnum):
    rich = "rich"
    json = "json"
    gradescope = "gradescope"
    junit = "junit"
    github = "github"


class Isolation(StrEnum):
    auto = "auto"
    bwrap = "bwrap"
    process = "process"


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"grader: {message}", err=True)
    return typer.Exit(code)


def _fault(exc: BaseException) -> typer.Exit:
    if os.environ.get("GRADER_DEBUG"):
        traceback.print_exception(exc)
    return _fail(f"internal error: {type(exc).__name__}: {exc} (set GRADER_DEBUG=1 for the traceback)", EXIT_FAULT)


@contextmanager
def _exit_codes() -> Iterator[None]:
    """Maps the grader's exceptions to messages on stderr and the documented exit codes."""
    try:
        yield
    except UsageError as exc:
        raise _fail(str(exc), EXIT_USAGE) from exc
    except GraderError as exc:
        from grader.errors import OutputError

        raise _fail(str(exc), EXIT_OUTPUT if isinstance(exc, OutputError) else EXIT_FAULT) from exc
    except KeyboardInterrupt:
        raise _fail("interrupted", 130) from None
    except Exception as exc:  # any other exception is a bug in the grader
        raise _fault(exc) from exc


def _write(text: str, output: Path | None, folder: OutputFolder | None = None, *, fmt: Format | None = None) -> None:
    """Writes ``text`` to stdout, or atomically to ``output`` (never through a link; mode 0644 less the
    umask), in ``folder`` when it is open already. Raises ``OutputError`` (exit 4)."""
    if output is None:
        sys.stdout.write(_for_stdout(text, fmt))
        sys.stdout.flush()
        return
    from grader.output import OutputFolder

    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(OutputFolder.make(output.parent, private=False, for_file=output))
        folder.write(PurePath(output.name), text.encode("utf-8", "backslashreplace"))


def _for_stdout(text: str, fmt: Format | None) -> str:
    """``text`` as stdout's encoding can take it (PYTHONIOENCODING=ascii, LANG=C): JSON with \\u escapes,
    XML with character references, anything else with backslash escapes. Never a UnicodeEncodeError."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        pass
    except LookupError:
        return text
    else:
        return text
    if fmt in (Format.json, Format.gradescope):  # outside ASCII is only ever inside a JSON string
        return _NON_ASCII.sub(lambda match: json.dumps(match.group())[1:-1], text)
    errors = "xmlcharrefreplace" if fmt is Format.junit else "backslashreplace"
    return text.encode(encoding, errors).decode(encoding)


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def version_line() -> str:
    """``grader 0.1.0 (jax 0.4.35, flax 0.10.2, Python 3.11.7)``: what a bug report needs, without importing jax."""
    import platform

    from grader.pipeline.environment import grader_version, package_version

    found = ", ".join(f"{name} {package_version(name) or 'not installed'}" for name in ("jax", "flax"))
    return f"grader {grader_version()} ({found}, Python {platform.python_version()})"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit(EXIT_PASSED)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the versions of grader, jax, flax, Python."
        ),
    ] = False,
) -> None:
    """Grade JAX/Flax exercise submissions: isolated runs, seeded cases, feedback that names the mistake."""


@app.command()
def grade(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH...",
            help="Submission files, folders (searched for *.py) or glob patterns. One file gets its full "
            "report; several (or a folder, a pattern, --gradebook, --output-dir) are graded as a batch.",
            show_default=False,
        ),
    ],
    exercise: ExerciseOption = None,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="rich: for people; json: the report; gradescope: results.json; junit: JUnit XML; "
            "github: workflow annotations (and a summary in $GITHUB_STEP_SUMMARY).",
        ),
    ] = Format.rich,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report to this file.")] = None,
    report_options: Annotated[
        list[str] | None,
        typer.Option(
            "--report",
            metavar="FORMAT=PATH",
            help="Also write the report in FORMAT (json, gradescope, junit, github, rich) to PATH, from the "
            "same grading; repeat for several.",
        ),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write any cache.")] = False,
    isolation: Annotated[
        Isolation,
        typer.Option("--isolation", help="auto: bwrap where it works, else process (or $GRADER_ISOLATION)."),
    ] = None,  # type: ignore[assignment]
    seed: SeedOption = None,
    color: Annotated[
        bool | None, typer.Option("--color/--no-color", help="Force color on or off (default: on a terminal).")
    ] = None,
    gradebook: Annotated[
        Path | None, typer.Option("--gradebook", help="Batch: write a CSV gradebook, one row per submission.")
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            help="Batch: write each submission's report here, in --format (rich: plain text), named after "
            "its path below the folder the submissions share.",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, max=32, help="Batch: submissions graded at once (default: one per core)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Batch, with --gradebook: keep the submissions an earlier run graded (its journal, "
            "GRADEBOOK.journal) whose file, exercise, seed and grader version are unchanged, and grade only "
            "the others: after a batch was killed, or when submissions were added or changed.",
        ),
    ] = False,
) -> None:
    """Grade submission files and report the verdicts (exit 0 only when every one passed)."""
    from grader.output import OutputFolder
    from grader.pipeline.grading import GradeOptions, grade_file

    with _exit_codes():
        chosen = isolation.value if isolation else None
        cache = {"cache_dir": None} if no_cache else {}
        options = GradeOptions(isolation=chosen, seed=seed, **cache)
        if resume and gradebook is None:
            raise UsageError("--resume keeps what the journal beside the gradebook holds: give --gradebook too")
        extra = _parse_reports(report_options or [])
        if _is_batch(paths, gradebook, output_dir):
            targets = _BatchTargets(fmt, output, gradebook, output_dir, resume, extra)
            code = _grade_batch(paths, exercise, options, targets, color, jobs)
        else:
            with contextlib.ExitStack() as stack:
                # Every output's folder is made before the child runs: a child cannot make it first.
                writes = [
                    (f, path, stack.enter_context(OutputFolder.make(path.parent, private=False, for_file=path)))
                    for f, path in ([(fmt, output)] if output else []) + extra
                ]
                report = grade_file(Path(paths[0]), exercise_id=exercise, options=options)
                from grader.learner.state import record_result

                record_result(report)
                unwritten = _write_reports(report, ([] if output else [(fmt, None, None)]) + writes, color)
            code = EXIT_OUTPUT if unwritten else EXIT_PASSED if report.passed else EXIT_NOT_PASSED
    raise typer.Exit(code)


def _parse_reports(values: list[str]) -> list[tuple[Format, Path]]:
    """``--report FORMAT=PATH`` options, as formats and files."""
    reports = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not path or name not in Format.__members__:
            choices = ", ".join(Format.__members__)
            raise UsageError(f"--report takes FORMAT=PATH with FORMAT one of {choices}: got {value!r}")
        reports.append((Format(name), Path(path)))
    return reports


def _write_reports(
    report: Report, writes: list[tuple[Format, Path | None, OutputFolder | None]], color: bool | None
) -> int:
    """Writes one report in each format asked (stdout where the path is None); the step summary of GitHub
    is appended once. Each failure is named on stderr and the others are still written; returns how many
    failed (exit 4)."""
    from grader.errors import OutputError

    failed, summary = 0, True
    for fmt, path, folder in writes:
        try:
            if fmt is Format.rich:
                _print_rich(report, path, color, folder)
            else:
                _write(_render_for_machines(report, fmt, summary=summary), path, folder, fmt=fmt)
        except OutputError as exc:
            typer.echo(f"grader: {exc}", err=True)
            failed += 1
        summary = summary and fmt is not Format.github
    return failed


def _is_batch(paths: list[str], gradebook: Path | None, output_dir: Path | None) -> bool:
    if len(paths) != 1 or gradebook is not None or output_dir is not None:
        return True
    from grader.pipeline.batch import GLOB_CHARACTERS

    path = Path(paths[0])
    return path.is_dir() or (not path.exists() and bool(GLOB_CHARACTERS & set(paths[0])))


_EXTENSIONS = {
    Format.rich: ".txt",
    Format.json: ".json",
    Format.gradescope: ".json",
    Format.junit: ".xml",
    Format.github: ".txt",
}


@dataclasses.dataclass(frozen=True)
class _BatchTargets:
    """Where a batch's outputs go, as the options name them."""

    fmt: Format
    output: Path | None
    gradebook: Path | None
    output_dir: Path | None
    resume: bool
    reports: list[tuple[Format, Path]] = dataclasses.field(default_factory=list)  # --report FORMAT=PATH


class _BatchOutputs:
    """A batch's outputs: every folder made (mode 0755) and opened before any child runs, so that no child
    can make one first or swap what is in it; the reports written as each grading ends; the journal and the
    gradebook updated as each submission finishes; and what could not be written, for the exit code."""

    def __init__(self, targets: _BatchTargets, files: list[Path], stack: contextlib.ExitStack) -> None:
        from grader.output import OutputFolder
        from grader.pipeline.batch import JOURNAL_SUFFIX, Journal, report_names, shown

        self.targets = targets
        self.paths = [shown(str(path)) for path in files]  # as the entries name them: the gradebook's students
        self.earlier: Earlier | None = None
        self.unwritten: dict[str, OutputError] = {}  # by file: the last failure, if the last try failed too
        self._lock = threading.Lock()
        self.reports: OutputFolder | None = None  # --output-dir
        self.document: OutputFolder | None = None  # --output's folder
        self.book: OutputFolder | None = None  # --gradebook's folder
        self.journal: Journal | None = None
        self.names: dict[Path, PurePath] = {}
        if targets.output_dir is not None:
            extension = _EXTENSIONS[targets.fmt]
            self.names = {p: PurePath(f"{shown(str(n))}{extension}") for p, n in report_names(files).items()}
            self.reports = stack.enter_context(OutputFolder.make(targets.output_dir, private=True))
            self.reports.refuse_shared_below(self.names.values())
        if targets.output is not None:
            parent = targets.output.parent
            self.document = stack.enter_context(OutputFolder.make(parent, private=False, for_file=targets.output))
        self.extra = [  # --report: each file's folder
            (fmt, path, stack.enter_context(OutputFolder.make(path.parent, private=False, for_file=path)))
            for fmt, path in targets.reports
        ]
        if targets.gradebook is not None:
            parent = targets.gradebook.parent
            self.book = stack.enter_context(OutputFolder.make(parent, private=False, for_file=targets.gradebook))
            name = targets.gradebook.name + JOURNAL_SUFFIX
            self.earlier = self._kept(name)
            self.journal = Journal.start(self.book, name, self.earlier)
            stack.callback(self.journal.close)

    def _kept(self, name: str) -> Earlier:
        """The journal's lines: what --resume keeps. Without --resume they are kept in the journal all the
        same (each superseded as its submission is graded again), so that a run started without --resume by
        mistake, then stopped, loses nothing; a journal that could be forged is then left out, not refused."""
        from grader.pipeline.batch import Earlier

        assert self.book is not None
        try:
            return Earlier.read(self.book, name)
        except UsageError:
            if self.targets.resume:
                raise
            return Earlier({})

    def save(self, path: Path, report: Report) -> str:
        """Writes one submission's report into --output-dir (from a worker thread)."""
        from grader.render.terminal import render_report

        reports = self.reports
        assert reports is not None
        if self.targets.fmt is Format.rich:
            text = _drawn_text(lambda console: render_report(report, console), False)
        else:
            text = _render_for_machines(report, self.targets.fmt, summary=False)
        return str(self._attempt(lambda: reports.write(self.names[path], _encoded(text))))

    def record(self, entries: list[BatchEntry]) -> None:
        """The gradebook of the submissions finished so far (called after each one, one call at a time)."""
        from grader.render.batch import gradebook_csv

        with contextlib.suppress(GraderError):  # kept in ``unwritten``; the next one tries again
            self._write_gradebook(gradebook_csv(entries, paths=self.paths))

    def _write_gradebook(self, text: str) -> None:
        book, gradebook = self.book, self.targets.gradebook
        if book is not None and gradebook is not None:
            self._attempt(lambda: book.write(PurePath(gradebook.name), _encoded(text)))

    def _attempt(self, write: Callable[[], Path]) -> Path:
        from grader.errors import OutputError

        try:
            written = write()
        except OutputError as exc:
            with self._lock:
                self.unwritten[exc.path] = exc
            raise
        with self._lock:
            self.unwritten.pop(str(written), None)
        return written

    def finish(self, batch: BatchReport, color: bool | None) -> None:
        """The batch's document, then the whole gradebook: a failure of one loses nothing else."""
        from grader.errors import OutputError
        from grader.render.batch import render_gradebook

        with contextlib.suppress(OutputError):
            self._attempt(lambda: _write_batch_document(batch, self.targets, color, self.document))
        summary = self.targets.fmt is not Format.github
        for fmt, path, folder in self.extra:
            extra = dataclasses.replace(self.targets, fmt=fmt, output=path)
            with contextlib.suppress(OutputError):
                self._attempt(lambda t=extra, f=folder, s=summary: _write_batch_document(batch, t, color, f, summary=s))
            summary = summary and fmt is not Format.github
        with contextlib.suppress(OutputError):
            self._write_gradebook(render_gradebook(batch, paths=self.paths))
        if self.journal is not None:
            self.journal.close()
            if self.journal.failure is not None:
                self.unwritten[self.journal.failure.path] = self.journal.failure


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "backslashreplace")


def _grade_batch(
    patterns: list[str],
    exercise: str | None,
    options: GradeOptions,
    targets: _BatchTargets,
    color: bool | None,
    jobs: int | None,
) -> int:
    """Grades a batch and writes what was asked; returns the exit code (130 when interrupted)."""
    from grader.pipeline.batch import BatchEvents, BatchInterrupted, collect_submissions, grade_batch
    from grader.render.batch import BatchProgress
    from grader.render.terminal import make_console

    if targets.fmt is Format.gradescope and targets.output_dir is None:
        raise UsageError("Gradescope's results.json holds one submission: give --output-dir for a batch")
    if any(fmt is Format.gradescope for fmt, _ in targets.reports):
        raise UsageError("Gradescope's results.json holds one submission: --report gradescope=PATH is for one file")
    collected = collect_submissions(patterns)
    files = collected.files

    def _stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # a CI job cancelled ends the batch as Ctrl-C does

    with contextlib.ExitStack() as stack:
        outputs = _BatchOutputs(targets, files, stack)
        signal.signal(signal.SIGTERM, _stop)
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
    for problem in events.failures:
        typer.echo(f"grader: internal error: {type(problem).__name__}: {problem}", err=True)
    for failure in list(outputs.unwritten.values())[:_SHOWN_FAILURES]:
        typer.echo(f"grader: {failure}", err=True)
    if len(outputs.unwritten) > _SHOWN_FAILURES:
        typer.echo(f"grader: and {len(outputs.unwritten) - _SHOWN_FAILURES} more files not written", err=True)
    if interrupted:
        typer.echo(f"grader: interrupted: {len(batch.submissions)} of {batch.total} graded and kept", err=True)
        return 130
    return _batch_exit_code(batch, unwritten=bool(outputs.unwritten), broken=bool(events.failures))


_SHOWN_FAILURES = 20


def _batch_exit_code(batch: BatchReport, *, unwritten: bool = False, broken: bool = False) -> int:
    """4 an output could not be written; 3 the grader failed on one (or its display failed); 2 one could not
    be graded as given; 0 all passed; else 1."""
    if unwritten:
        return EXIT_OUTPUT
    if broken or batch.counts.get("fault"):
        return EXIT_FAULT
    if batch.counts.get("skipped"):
        return EXIT_USAGE
    return EXIT_PASSED if batch.all_passed else EXIT_NOT_PASSED


def _write_batch_document(
    batch: BatchReport, targets: _BatchTargets, color: bool | None, folder: OutputFolder | None, *, summary: bool = True
) -> Path:
    """The batch's document on stdout or in --output (returned, for the list of what was written)."""
    from grader.render.batch import render_batch_summary, summary_table

    fmt, output = targets.fmt, targets.output
    if fmt is Format.json:
        _write(batch.model_dump_json(indent=2) + "\n", output, folder, fmt=fmt)
    elif fmt is Format.junit:
        from grader.render.junit import render_junit_batch

        _write(render_junit_batch(batch), output, folder, fmt=fmt)
    elif fmt is Format.github:
        from grader.render.github import render_annotations, render_ungraded

        if summary:
            _append_step_summary(render_batch_summary(batch))
        root = Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd())
        _write(
            "".join(
                render_annotations(e.report, root=root)
                if e.report
                else render_ungraded(e.path, e.status, e.message, root=root)
                for e in batch.submissions
            ),
            output,
            folder,
        )
    else:  # rich, and gradescope (its files are in --output-dir): the summary table for people
        _show(lambda console: console.print(summary_table(batch)), output, color, folder)
    return output or Path("-")


def _append_step_summary(markdown: str) -> None:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with contextlib.suppress(OSError), open(summary, "a", encoding="utf-8") as out:
            out.write(markdown)


def _render_for_machines(report: Report, fmt: Format, *, summary: bool = True) -> str:
    if fmt is Format.gradescope:
        from grader.render.gradescope import render_gradescope

        return render_gradescope(report)
    if fmt is Format.junit:
        from grader.render.junit import render_junit

        return render_junit(report)
    if fmt is Format.github:
        from grader.render.github import render_annotations, render_summary

        if summary:
            _append_step_summary(render_summary(report))
        return render_annotations(report, root=Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd()))
    from grader.render.json import render_json

    return render_json(report)


def _drawn_text(draw: Callable[[Console], None], color: bool | None) -> str:
    """What ``draw`` prints, as text for a file (100 columns; escape codes only with --color)."""
    import io

    from grader.render.terminal import make_console

    buffer = io.StringIO()
    draw(make_console(color=bool(color), file=buffer, width=100))
    return buffer.getvalue()


def _show(
    draw: Callable[[Console], None], output: Path | None, color: bool | None, folder: OutputFolder | None = None
) -> None:
    """Prints what ``draw`` prints: on stdout, or into ``output`` (in ``folder``, when open already)."""
    from grader.render.terminal import make_console

    if output is None:
        draw(make_console(color=color))
        return
    _write(_drawn_text(draw, color), output, folder)


def _print_rich(report: Report, output: Path | None, color: bool | None, folder: OutputFolder | None = None) -> None:
    from grader.render.terminal import render_report

    _show(lambda console: render_report(report, console), output, color, folder)


@app.command()
def schema(
    batch: Annotated[
        bool, typer.Option("--batch", help="The schema of a batch's report (several PATHs with --format json).")
    ] = False,
) -> None:
    """Print the JSON Schema of the report that --format json writes."""
    from grader.report.schema import batch_json_schema, report_json_schema

    typer.echo(json.dumps(batch_json_schema() if batch else report_json_schema(), indent=2))


@app.command()
def exercises(
    fmt: Annotated[Format, typer.Option("--format", "-f", help="rich: a table; json: a list.")] = Format.rich,
) -> None:
    """List the exercises that can be graded."""
    from grader.exercise.spec import discover_exercises

    with _exit_codes():
        found = discover_exercises()
    if fmt is Format.json:
        from grader.learner.state import load_state

        last = load_state().last_results
        rows = [
            {
                "id": e.id,
                "title": e.spec.title,
                "entry_point": e.spec.entry_point.signature,
                "last_result": last[e.id].model_dump() if e.id in last else None,
            }
            for e in found.values()
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    from grader.learner.state import load_state
    from grader.render.terminal import make_console

    last = load_state().last_results
    table = Table("id", "title", "entry point", "your last result", title="Exercises")
    for ex in found.values():
        result = last.get(ex.id)
        shown = f"{result.status} {result.score:g}/{result.max_score:g} ({result.path})" if result else "not graded yet"
        table.add_row(ex.id, ex.spec.title, ex.spec.entry_point.signature, shown)
    make_console().print(table)


@app.command()
def show(
    exercise_id: ExerciseId,
) -> None:
    """Show an exercise: the prompt, the function to write, and how it is graded."""
    from grader.exercise.spec import get_exercise
    from grader.render.exercise import render_exercise
    from grader.render.terminal import make_console

    with _exit_codes():
        render_exercise(get_exercise(exercise_id), make_console())


@app.command()
def watch(
    path: Annotated[Path, typer.Argument(help="The submission to grade on every save.", show_default=False)],
    exercise: ExerciseOption = None,
    seed: SeedOption = None,
) -> None:
    """Grade a file, then grade it again each time it is saved, showing what changed."""
    from grader.learner.state import record_result
    from grader.learner.watch import watch as watch_file
    from grader.pipeline.grading import GradeOptions
    from grader.render.terminal import make_console

    def _stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # a closed terminal or a kill ends the watch as Ctrl-C does: cleaned up

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    interrupted = False
    with _exit_codes():
        try:
            watch_file(
                path,
                exercise_id=exercise,
                options=GradeOptions(seed=seed),
                console=make_console(),
                on_report=lambda report, _changes: record_result(report),
            )
        except KeyboardInterrupt:  # Ctrl-C is how a watch ends: cleaned up, then 130 as for any interruption
            interrupted = True
    typer.echo("Stopped watching.")
    if interrupted:
        raise typer.Exit(130)


@app.command()
def start(
    exercise_id: ExerciseId,
    path: Annotated[
        Path | None, typer.Argument(help="Where to write the starter (default: submissions/<id>.py).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the file if it exists.")] = False,
) -> None:
    """Write a starter file for an exercise: the signature to fill in, ready to grade."""
    from grader.exercise.spec import get_exercise

    with _exit_codes():
        found = get_exercise(exercise_id)
        target = path or Path("submissions") / f"{found.id.replace('-', '_')}.py"
        if target.exists() and not force:
            raise UsageError(f"{target} exists already; pass --force to overwrite it")
        try:
            _write(found.starter_text(), target)
        except GraderError as exc:  # a starter is not a grade's output: a usage error, as it always was
            raise UsageError(str(exc)) from exc
    typer.echo(f"Wrote {target}. Next: grader show {found.id}, then grader watch {target}")


@app.command()
def hint(
    exercise_id: ExerciseId,
    reset: Annotated[bool, typer.Option("--reset", help="Start the hints again from the first.")] = False,
) -> None:
    """Show the next hint for an exercise, one at a time (the grader remembers how many you have seen)."""
    from grader.exercise.spec import get_exercise
    from grader.learner.state import next_hint, reset_hints

    with _exit_codes():
        hints = get_exercise(exercise_id).spec.hints
    if reset:
        reset_hints(exercise_id)
        typer.echo(f"Hints for {exercise_id} start again from the first.")
        return
    if not hints:
        typer.echo(f"{exercise_id} has no hints.")
        return
    shown = next_hint(exercise_id, hints)
    if shown is None:
        typer.echo(f"You have seen all {len(hints)} hints for {exercise_id}. (--reset to start again)")
        return
    number, text = shown
    from rich.markdown import Markdown

    from grader.render.terminal import make_console

    console = make_console()
    console.print(f"[bold]Hint {number} of {len(hints)}[/]")
    console.print(Markdown(text))


def main() -> None:
    """Console-script entry point: click's own usage errors exit with 2 as well. What stdout cannot encode
    (PYTHONIOENCODING=ascii, LANG=C) is written escaped rather than ending the command with exit 3."""
    with contextlib.suppress(AttributeError, ValueError):  # a stream that is not a TextIOWrapper
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    app()
