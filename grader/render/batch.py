"""A batch for people and spreadsheets: the live progress while it runs, then (read from the finished
``BatchReport``) the summary table, the gradebook CSV and the Markdown summary for GitHub."""

from __future__ import annotations

import csv
import io
import threading
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from grader.schema import BatchEntry, BatchReport

STYLES = {"passed": "green", "failed": "red", "error": "yellow", "skipped": "magenta", "fault": "bold magenta"}
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
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _score(entry: BatchEntry) -> str:
    return f"{entry.score:g}/{entry.max_score:g}" if entry.report is not None else "-"


def _line(entry: BatchEntry, done: int, total: int) -> Text:
    text = Text(f"[{done}/{total}] ")
    text.append(f"{entry.status:7}", style=STYLES.get(entry.status, ""))
    text.append(f" {_score(entry):>7} {entry.duration_s:6.1f}s  {entry.path}")
    if entry.diagnosis:
        text.append(f"  {entry.diagnosis}", style="dim")
    elif entry.report is None:
        text.append(f"  {entry.message}", style="dim")
    return text


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
            line = _line(entry, len(self._seen), self.total)
            if again:
                line.append("  (graded again on its own)", style="dim")
            if self._progress is not None and self._task is not None:
                self._progress.console.print(line)
                self._progress.update(self._task, completed=self.done)
            else:
                self.console.print(line)


def summary_table(batch: BatchReport) -> Table:
    """Submission, status, score, main diagnosis and time, one row each, with the totals as caption."""
    table = Table(title="Batch", title_justify="left", caption=totals_line(batch), caption_justify="left")
    table.add_column("submission", overflow="fold")  # a path is shown whole, folded if it must be
    table.add_column("status", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("main diagnosis", overflow="fold")
    table.add_column("time", justify="right")
    for entry in batch.submissions:
        diagnosis = entry.diagnosis or ("" if entry.report is not None else entry.message)
        table.add_row(
            Text(entry.path),
            Text(entry.status, style=STYLES.get(entry.status, "")),
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


def render_gradebook(batch: BatchReport) -> str:
    """One row per finished submission, in ``GRADEBOOK_COLUMNS`` order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(GRADEBOOK_COLUMNS)
    for entry in batch.submissions:
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
        )
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()


def render_batch_summary(batch: BatchReport) -> str:
    """Markdown for ``$GITHUB_STEP_SUMMARY``: the totals, then a row per submission."""
    mark = {"passed": "✅", "failed": "❌", "error": "⚠️", "skipped": "⏭️", "fault": "💥"}

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")

    out = [f"### Batch: {cell(totals_line(batch))}", "", "| submission | status | score | main diagnosis |"]
    out.append("|---|---|---|---|")
    for entry in batch.submissions:
        diagnosis = entry.diagnosis or ("" if entry.report is not None else entry.message)
        status = f"{mark.get(entry.status, '')} {entry.status}"
        out.append(f"| `{cell(entry.path)}` | {status} | {_score(entry)} | {cell(diagnosis)} |")
    return "\n".join(out) + "\n"
