"""The class report's two ways in: ``grader grade CLASS --class-report FILE.html`` (the batch just graded) and
``grader class-report BATCH.json --output FILE.html`` (a batch report written earlier, or merged from shards).
Both write one HTML page (``grader.render.classreport``) as every output is written: its folder made and
opened first (before any child runs, for a grading), never through a link, replaced whole.

matplotlib draws the page's charts; where it is not installed, either way is a usage error that says what
to install, given before anything is graded.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from grader.errors import OutputError, UsageError
from grader.output import OutputFolder, Unwritten, write_file

if TYPE_CHECKING:
    from grader.report.schema import BatchReport


@dataclasses.dataclass(frozen=True)
class Page:
    """Where the class report goes: the file, in its folder opened already."""

    path: Path
    folder: OutputFolder


def require_plotting() -> None:
    """A usage error, saying what to install, where matplotlib is missing."""
    from grader.render.charts import plotting_missing

    missing = plotting_missing()
    if missing is not None:
        raise UsageError(missing)


def open_page(path: Path | None, stack: contextlib.ExitStack) -> Page | None:
    """``--class-report``'s folder, made and opened until ``stack`` closes; None where none was asked."""
    if path is None:
        return None
    return Page(path, stack.enter_context(OutputFolder.make(path.parent, private=False, for_file=path)))


def write_page(batch: BatchReport, page: Page | None, unwritten: Unwritten) -> None:
    """Writes the class report of ``batch``; one that cannot be written is kept in ``unwritten`` (exit 4)."""
    if page is None:
        return
    from grader.render.classreport import render_class_report

    text = render_class_report(batch)
    with contextlib.suppress(OutputError):
        unwritten.attempt(lambda: write_file(page.path, text, page.folder))


def class_report(batch_file: Path, output: Path) -> Path:
    """``grader class-report``: the page of a batch report written earlier; returns where it went."""
    require_plotting()
    from grader.pipeline.merge import read_batch_report

    batch = read_batch_report(batch_file)
    with contextlib.ExitStack() as stack:
        page = open_page(output, stack)
        assert page is not None
        from grader.render.classreport import render_class_report

        return write_file(page.path, render_class_report(batch), page.folder)
