"""A batch for people and spreadsheets: the live progress while it runs, then (read from the finished
``BatchReport``) the summary table, the gradebook CSV and the Markdown summary for GitHub."""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import PurePath
from types import TracebackType

from rich.cells import cell_len, get_character_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from grader.render.style import look
from grader.report.schema import BatchEntry, BatchReport

GRADEBOOK_COLUMNS = (
    "submission",
    "exercise",
    "status",
    "score",
    "max_score",
    "percent",
    "diagnosis",
    "message",
    "duration_s",
    "sha256",
    "report_file",
    "student",  # last, so that the columns before it keep their places
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
ELLIPSIS = "…"
PATH_MIN = 16  # a path is not shortened below this many cells while something else on its line can give way
TAIL_MIN = 24  # nor the message after it, while the path can give way


def _status(entry: BatchEntry, *, width: int = 0) -> Text:
    """The entry's status as its word, in its colour (padded to ``width``)."""
    status = look(entry.status)
    return Text(f"{status.word:{width}}", style=status.colour)


def _score(entry: BatchEntry) -> str:
    return f"{entry.score:g}/{entry.max_score:g}" if entry.report is not None else "-"


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells: whole when it fits, else its middle replaced by an ellipsis, so
    that a path keeps where it starts and its file name."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    tail_room = width // 2  # the end (the file name) gets the larger half of the room left
    return _fit(text, width - 1 - tail_room) + ELLIPSIS + _fit(text[::-1], tail_room)[::-1]


def _fit(text: str, room: int) -> str:
    """The longest start of ``text`` that fits in ``room`` cells."""
    used = 0
    for end, character in enumerate(text):
        used += get_character_cell_size(character)
        if used > room:
            return text[:end]
    return text


def _line(entry: BatchEntry, done: int, total: int, width: int, note: str = "") -> Text:
    """One line per finished submission, never wrapped: in ``width`` cells, the path shortened in its
    middle, then a message (of a submission not graded) cut at its end, when the line would be longer; the
    diagnosis code and the note stay whole."""
    head = Text(f"[{done}/{total}] ")
    head.append_text(_status(entry, width=7))
    head.append(f" {_score(entry):>7} {entry.duration_s:6.1f}s  ")
    message = Text(f"  {entry.message}" if entry.report is None and not entry.diagnosis else "", style="dim")
    kept = Text(f"  {entry.diagnosis}" if entry.diagnosis else "", style="dim")
    if note:
        kept.append(f"  ({note})")
    room, path_width = width - head.cell_len, cell_len(entry.path)
    wanted = kept.cell_len + min(message.cell_len, TAIL_MIN)
    path_room = min(path_width, max(room - wanted, PATH_MIN), max(room, 0))
    line, room = head + Text(shorten_middle(entry.path, path_room)), room - path_room
    if room > kept.cell_len and message:
        message.truncate(room - kept.cell_len, overflow="ellipsis")
        line.append_text(message)
    if room <= 0:
        return line
    kept.truncate(room, overflow="ellipsis")
    return line + kept


class _ProgressLine:
    """A finished submission's line, laid out for the width the console gives it (see ``_line``)."""

    def __init__(self, entry: BatchEntry, done: int, total: int, note: str) -> None:
        self.entry, self.done, self.total, self.note = entry, done, total, note

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield _line(self.entry, self.done, self.total, options.max_width, self.note)


class _PathCell:
    """A path in a table cell, on one line: its middle elided when the column is narrower than the path."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width = cell_len(self.path)
        return Measurement(min(width, PATH_MIN), width).with_maximum(options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(shorten_middle(self.path, options.max_width), no_wrap=True, overflow="ellipsis")


class BatchProgress:
    """The live view on stderr: a progress bar on a terminal with a line per finished submission above it;
    elsewhere (CI logs) the lines alone. Its methods are called from the batch's worker threads."""

    def __init__(self, console: Console, total: int, *, live: bool) -> None:
        self.console = console
        self.total = total
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task = None
        if live:
            self._progress = Progress(
                TextColumn("Grading"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self._task = self._progress.add_task("grading", total=total)

    def __enter__(self) -> BatchProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def finished(self, entry: BatchEntry) -> None:
        with self._lock:
            again = entry.path in self._seen  # graded again on its own (see grade_batch)
            self._seen.add(entry.path)
            note = "graded again on its own" if again else "kept from the earlier run" if entry.resumed else ""
            line = _ProgressLine(entry, len(self._seen), self.total, note)
            self.console.print(line, no_wrap=True, overflow="ellipsis", crop=True)  # above the bar, if live
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, completed=len(self._seen))


def summary_table(batch: BatchReport) -> Table:
    """Submission, status, score, main diagnosis and time, one row each, with the totals as caption."""
    table = Table(title="Batch", title_justify="left", caption=totals_line(batch), caption_justify="left")
    # A path is never split over lines: where the table must be narrower, its middle gives way (the column
    # may shrink, its cells never wrap).
    table.add_column("submission")
    table.add_column("status", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("main diagnosis", overflow="fold")
    table.add_column("time", justify="right", no_wrap=True)
    for entry in batch.submissions:
        diagnosis = entry.diagnosis or ("" if entry.report is not None else entry.message)
        table.add_row(
            _PathCell(entry.path),
            _status(entry),
            _score(entry),
            Text(diagnosis),
            f"{entry.duration_s:.1f}s",
        )
    return table


def totals_line(batch: BatchReport) -> str:
    counts = ", ".join(f"{count} {status}" for status, count in sorted(batch.counts.items())) or "none finished"
    head = f"{len(batch.submissions)} of {batch.total} graded in {batch.duration_s:.1f}s ({batch.jobs} at a time)"
    tail = " - interrupted: the rest were not graded" if batch.interrupted else ""
    return f"{head}: {counts}{tail}"


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a leading =, +, -, @ would make it a formula (file names and
    messages come from submissions)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_gradebook(batch: BatchReport, *, paths: Sequence[str] | None = None) -> str:
    """One row per finished submission, in ``GRADEBOOK_COLUMNS`` order."""
    return gradebook_csv(batch.submissions, paths=paths)


def student_names(paths: Sequence[str]) -> dict[str, str]:
    """Each submission's student: its folder just below the class folder (the folder all the submissions
    share), or, for a file directly in it, the file's stem. ``class/alice/hw1.py`` -> ``alice``;
    ``class/bob.py`` -> ``bob``."""
    try:
        common = PurePath(os.path.commonpath([str(PurePath(p).parent) for p in paths])) if paths else None
    except ValueError:  # absolute and relative paths together: each file's stem
        common = None
    names = {}
    for path in paths:
        below = PurePath(path).relative_to(common) if common is not None else PurePath(PurePath(path).name)
        names[path] = below.parts[0] if len(below.parts) > 1 else below.stem
    return names


def gradebook_csv(entries: Iterable[BatchEntry], *, paths: Sequence[str] | None = None) -> str:
    """The gradebook of these entries (those finished so far, while a batch runs). ``paths``: every
    submission of the batch as its entries name them, so that the class folder, and so each row's student,
    stays the same as entries are added; by default, the entries' own."""
    entries = list(entries)
    students = student_names(list(paths) if paths is not None else [entry.path for entry in entries])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(GRADEBOOK_COLUMNS)
    for entry in entries:
        report = entry.report
        percent = round(100 * entry.score / entry.max_score, 2) if entry.max_score else 0
        row = (
            entry.path,
            report.exercise.id if report else "",
            entry.status,
            f"{entry.score:g}",
            f"{entry.max_score:g}",
            f"{percent:g}",
            entry.diagnosis or "",
            entry.message,
            f"{entry.duration_s:.3f}",
            (report.submission.sha256 or "") if report else "",
            entry.report_file or "",
            students.get(entry.path) or student_names([entry.path])[entry.path],
        )
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()


def render_batch_summary(batch: BatchReport) -> str:
    """Markdown for ``$GITHUB_STEP_SUMMARY``: the totals, then a row per submission. File names and
    messages come from submissions: they render as literal text (see ``grader.render.github``)."""
    from grader.render.github import markdown_code, markdown_text  # here: the rest of this file needs no Markdown

    out = [f"### Batch: {markdown_text(totals_line(batch))}", "", "| submission | status | score | main diagnosis |"]
    out.append("|---|---|---|---|")
    for entry in batch.submissions:
        diagnosis = entry.diagnosis or ("" if entry.report is not None else entry.message)
        status = look(entry.status).marked
        path = markdown_code(entry.path, in_table=True)
        out.append(f"| {path} | {status} | {_score(entry)} | {markdown_text(diagnosis)} |")
    return "\n".join(out) + "\n"
