"""Where a grading's documents go, as the options name them: each format looked up in the registry
(``grader.render.formats``), rendered, and written through ``grader.output`` (stdout, ``--output``,
``--report FORMAT=PATH``, and for a batch ``--output-dir``, the gradebook and its journal).

Every folder is made and opened before any child runs, so that no child can make one first. A document that
cannot be written is named on stderr and kept for the exit code (4); the others are still written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from grader.cli.classreport import open_page, write_page
from grader.cli.exits import say
from grader.errors import OutputError, UsageError
from grader.output import OutputFolder, Unwritten, append_step_summary, encoded, write_file, write_stdout
from grader.render.formats import FORMATS, PEOPLE, Context, Document, OutputFormat, as_text

if TYPE_CHECKING:
    from grader.pipeline.batch import Earlier, Journal
    from grader.report.schema import BatchEntry, BatchReport, Report

# A document and where it goes: stdout where the path is None, else that file in its folder, opened already.
Destination = tuple[OutputFormat, Path | None, OutputFolder | None]


@dataclasses.dataclass(frozen=True)
class Targets:
    """What a grading writes, as the options name it."""

    fmt: OutputFormat  # --format
    output: Path | None = None  # --output (else stdout)
    reports: tuple[tuple[OutputFormat, Path], ...] = ()  # --report FORMAT=PATH
    gradebook: Path | None = None
    output_dir: Path | None = None
    resume: bool = False
    class_report: Path | None = None  # --class-report

    def files(self) -> list[tuple[OutputFormat, Path]]:
        """The documents written to files: --output's, then each --report's."""
        return ([(self.fmt, self.output)] if self.output else []) + list(self.reports)


def parse_reports(values: list[str]) -> tuple[tuple[OutputFormat, Path], ...]:
    """``--report FORMAT=PATH`` options, as formats and files."""
    reports = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not path or name not in FORMATS:
            choices = ", ".join(FORMATS)
            raise UsageError(f"--report takes FORMAT=PATH with FORMAT one of {choices}: got {value!r}")
        reports.append((FORMATS[name], Path(path)))
    return tuple(reports)


def workspace() -> Path:
    """The folder GitHub places annotations from: ``$GITHUB_WORKSPACE``, else the current one."""
    return Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd())


def open_folders(files: list[tuple[OutputFormat, Path]], stack: contextlib.ExitStack) -> list[Destination]:
    """Each file's folder, made (mode 0755) and opened until ``stack`` closes."""
    return [
        (fmt, path, stack.enter_context(OutputFolder.make(path.parent, private=False, for_file=path)))
        for fmt, path in files
    ]


def deliver(
    document: Document, fmt: OutputFormat, path: Path | None, folder: OutputFolder | None, color: bool | None
) -> Path:
    """Writes one document: to stdout (a renderable through a console for it), or to ``path`` (a renderable
    as text at the file's width, escape codes only with --color). Returns the path written, ``-`` for
    stdout; raises ``OutputError``."""
    if path is not None:
        return write_file(path, as_text(document, color=bool(color)), folder)
    if isinstance(document, str):
        write_stdout(document, fmt.encoded)
    else:
        from grader.render.terminal import make_console

        make_console(color=color).print(document)
    return Path("-")


class StepSummary:
    """GitHub's step summary, appended once: by the first document whose format has one."""

    def __init__(self) -> None:
        self.appended = False

    def add(self, markdown: str | None) -> None:
        if markdown is not None and not self.appended:
            append_step_summary(markdown)
            self.appended = True


def write_reports(report: Report, destinations: list[Destination], color: bool | None) -> int:
    """Writes one submission's report to each destination, in order. Each failure is named on stderr and the
    others are still written; returns how many failed (exit 4)."""
    context, summary, failed = Context(workspace=workspace()), StepSummary(), 0
    for fmt, path, folder in destinations:
        try:
            summary.add(fmt.step_summary(report) if fmt.step_summary else None)
            deliver(fmt.report(report, context), fmt, path, folder, color)
        except OutputError as exc:
            say(str(exc))
            failed += 1
    return failed


def refuse_single_formats(targets: Targets) -> None:
    """A batch asks for no document that holds one submission (Gradescope's), except --format's with
    --output-dir, where each submission's is a file of its own and the summary for people stands in."""
    if targets.fmt.batch is None and targets.output_dir is None:
        raise UsageError(f"{targets.fmt.one_submission} holds one submission: give --output-dir for a batch")
    for fmt, _path in targets.reports:
        if fmt.batch is None:
            raise UsageError(f"{fmt.one_submission} holds one submission: --report {fmt.name}=PATH is for one file")


class BatchOutputs:
    """A batch's outputs: every folder made (mode 0755) and opened before any child runs, so that no child
    can make one first or swap what is in it; the reports written as each grading ends; the journal and the
    gradebook updated as each submission finishes; and what could not be written, for the exit code."""

    def __init__(
        self, targets: Targets, files: list[Path], stack: contextlib.ExitStack, *, everyone: list[Path] | None = None
    ) -> None:
        """``files``: the submissions this batch grades; ``everyone``: the class they are a shard of (by
        default the same), which names the reports in --output-dir and the gradebook's students, so that
        every shard names them as one batch of the whole class would."""
        from grader.pipeline.batch import shown

        everyone = files if everyone is None else everyone
        self.targets = targets
        self.context = Context(workspace=workspace())
        self.paths = [shown(str(path)) for path in everyone]  # as the entries name them: the gradebook's students
        self.unwritten = Unwritten()
        self.reports: OutputFolder | None = None  # --output-dir
        self.names: dict[Path, PurePath] = {}
        if targets.output_dir is not None:
            self.reports, self.names = self._report_folder(targets.output_dir, files, everyone, stack)
        main = targets.fmt if targets.fmt.batch is not None else PEOPLE
        self.documents: list[Destination] = (
            open_folders([(main, targets.output)], stack) if targets.output else [(main, None, None)]
        ) + open_folders(list(targets.reports), stack)
        self.book: OutputFolder | None = None  # --gradebook's folder
        self.journal: Journal | None = None
        self.earlier: Earlier | None = None
        if targets.gradebook is not None:
            self._start_journal(targets.gradebook, stack)
        self.page = open_page(targets.class_report, stack)

    def _report_folder(
        self, folder: Path, files: list[Path], everyone: list[Path], stack: contextlib.ExitStack
    ) -> tuple[OutputFolder, dict[Path, PurePath]]:
        """--output-dir, opened, and each submission's report in it: its path below the folder the
        submissions of the class share, with the format's suffix."""
        from grader.pipeline.batch import report_names, shown

        suffix = self.targets.fmt.suffix
        below = report_names(everyone)
        names = {path: PurePath(f"{shown(str(below[path]))}{suffix}") for path in files}
        reports = stack.enter_context(OutputFolder.make(folder, private=True))
        reports.refuse_shared_below(names.values())
        return reports, names

    def _start_journal(self, gradebook: Path, stack: contextlib.ExitStack) -> None:
        from grader.pipeline.batch import JOURNAL_SUFFIX, Journal

        self.book = stack.enter_context(OutputFolder.make(gradebook.parent, private=False, for_file=gradebook))
        name = gradebook.name + JOURNAL_SUFFIX
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
        """Writes one submission's report into --output-dir, in --format (from a worker thread)."""
        reports = self.reports
        assert reports is not None
        text = as_text(self.targets.fmt.report(report, self.context))
        return str(self.unwritten.attempt(lambda: reports.write(self.names[path], encoded(text))))

    def record(self, entries: list[BatchEntry]) -> None:
        """The gradebook of the submissions finished so far (called after each one, one call at a time)."""
        from grader.render.batch import gradebook_csv

        with contextlib.suppress(OutputError):  # kept in ``unwritten``; the next one tries again
            self._write_gradebook(gradebook_csv(entries, paths=self.paths))

    def _write_gradebook(self, text: str) -> None:
        book, gradebook = self.book, self.targets.gradebook
        if book is not None and gradebook is not None:
            self.unwritten.attempt(lambda: book.write(PurePath(gradebook.name), encoded(text)))

    def finish(self, batch: BatchReport, color: bool | None) -> None:
        """The batch's documents, then the whole gradebook: a failure of one loses nothing else."""
        from grader.render.batch import render_gradebook

        deliver_batch(batch, self.documents, self.context, self.unwritten, color)
        with contextlib.suppress(OutputError):
            self._write_gradebook(render_gradebook(batch, paths=self.paths))
        if self.journal is not None:
            self.journal.close()
            if self.journal.failure is not None:
                self.unwritten.add(self.journal.failure)
        write_page(batch, self.page, self.unwritten)


def deliver_batch(
    batch: BatchReport, documents: list[Destination], context: Context, unwritten: Unwritten, color: bool | None
) -> None:
    """A batch's document in each format asked, each where it goes; what cannot be written is kept in
    ``unwritten`` and the others are still written. GitHub's step summary is appended once."""
    summary = StepSummary()
    for fmt, path, folder in documents:
        assert fmt.batch is not None  # one that has no batch document is refused, or stood in for
        summary.add(fmt.batch_step_summary(batch) if fmt.batch_step_summary else None)
        document = fmt.batch(batch, context)
        with contextlib.suppress(OutputError):
            unwritten.attempt(functools.partial(deliver, document, fmt, path, folder, color))


def refuse_single_formats_in_merge(targets: Targets) -> None:
    """grader merge writes a batch's documents only: none that holds one submission (Gradescope's)."""
    for fmt in [targets.fmt, *(fmt for fmt, _path in targets.reports)]:
        if fmt.batch is None:
            raise UsageError(f"{fmt.one_submission} holds one submission: grader merge writes a class's documents")


def write_merged(batch: BatchReport, targets: Targets, color: bool | None) -> list[OutputError]:
    """A merged batch's documents (--format to stdout or --output, each --report) and its gradebook: every
    folder made and opened first, then each written; returns what could not be written."""
    from grader.render.batch import render_gradebook

    unwritten = Unwritten()
    with contextlib.ExitStack() as stack:
        documents = (
            open_folders([(targets.fmt, targets.output)], stack) if targets.output else [(targets.fmt, None, None)]
        ) + open_folders(list(targets.reports), stack)
        book = open_folders([(targets.fmt, targets.gradebook)], stack) if targets.gradebook else []
        deliver_batch(batch, documents, Context(workspace=workspace()), unwritten, color)
        for _fmt, path, folder in book:
            assert path is not None
            with contextlib.suppress(OutputError):
                unwritten.attempt(functools.partial(write_file, path, render_gradebook(batch), folder))
    return unwritten.failures()
