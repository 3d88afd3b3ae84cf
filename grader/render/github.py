"""The report for GitHub Actions: workflow-command annotations at the lines a diagnosis points to, and a
Markdown summary for ``$GITHUB_STEP_SUMMARY``.

Text from a submission (messages, file names) is escaped for where it goes: in a workflow command as
GitHub's rules say (``%``, CR and LF; ``:`` and ``,`` in properties too), so it cannot end the command or
start another; in the summary as literal text (``markdown_text``, ``markdown_code``), so no emphasis,
link, image or HTML it holds is rendered.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from grader.render.style import look
from grader.report.schema import BatchReport, Report


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _relative(path: str, root: Path | None) -> str:
    """GitHub places annotations by the path relative to the workspace."""
    if root is None or not os.path.isabs(path):
        return path
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return path


def render_annotations(report: Report, *, root: Path | None = None) -> str:
    """One ``::error``/``::notice`` line per diagnosis (per pointed line), then the verdict.

    ``root``: the workspace the file paths are made relative to (``$GITHUB_WORKSPACE`` in Actions).
    """
    level = "notice" if report.passed else "error"
    path = _property(_relative(report.submission.path, root))
    lines = []
    for diagnosis in report.diagnoses:
        title = _property(f"{diagnosis.code}: {report.exercise.id}")
        text = diagnosis.message + (f" Hint: {diagnosis.hint}" if diagnosis.hint else "")
        targets: list[int | None] = [line.line for line in diagnosis.lines] or [None]
        for line in targets:
            where = f"file={path}" + (f",line={line}" if line else "")
            lines.append(f"::{level} {where},title={title}::{_data(text)}")
    lines.append(f"::{level} file={path},title={_property('grader: ' + report.status)}::{_data(report.message)}")
    return "\n".join(lines) + "\n"


def render_ungraded(path: str, status: str, message: str, *, root: Path | None = None) -> str:
    """The annotation of a batch's submission that has no report (skipped, or a fault of the grader)."""
    where = _property(_relative(path, root))
    return f"::error file={where},title={_property('grader: ' + status)}::{_data(message)}\n"


def render_batch_annotations(batch: BatchReport, *, root: Path | None = None) -> str:
    """A batch's annotations: each submission's, or, for one without a report, why it has none."""
    return "".join(
        render_annotations(entry.report, root=root)
        if entry.report
        else render_ungraded(entry.path, entry.status, entry.message, root=root)
        for entry in batch.submissions
    )


# What Markdown (CommonMark, and GitHub's tables, strikethrough, autolinks, math, mentions) or HTML could
# read as syntax within a line. Each is written as a numeric character reference, which always stands for
# the character itself (and holds no "|" to split a table's row at).
_MARKDOWN_SYNTAX = re.compile(r"[\\`*_{}\[\]()<>&!|~:@#$^]|(?<=[wW]{3})\.")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def markdown_text(text: str) -> str:
    """``text`` for inside a line of Markdown (a table cell, a list item, after a heading's start), where
    it renders as itself: its syntax characters escaped, its line breaks made spaces."""
    return _MARKDOWN_SYNTAX.sub(lambda m: f"&#{ord(m.group())};", _LINE_BREAK.sub(" ", text))


def markdown_code(text: str, *, in_table: bool = False) -> str:
    """``text`` as a code span, shown exactly: a fence of more backticks than any run in it, line breaks
    made spaces, and in a table every ``|`` escaped (GitHub splits a row at a pipe even in a code span)."""
    text = _LINE_BREAK.sub(" ", text)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    if in_table:
        text = text.replace("|", "\\|")
    return f"{fence} {text} {fence}"


def render_summary(report: Report) -> str:
    verdict = look(report.status)
    out = [
        f"### {verdict.emoji} {markdown_text(report.exercise.id)}: {markdown_code(report.submission.path)}",
        "",
        f"**{verdict.word}** — score {report.score:g} / {report.max_score:g}. {markdown_text(report.message)}",
        "",
    ]
    for diagnosis in report.diagnoses:
        out.append(f"- **{markdown_text(diagnosis.code)}**: {markdown_text(diagnosis.message)}")
    out += ["", "| case | status | detail |", "|---|---|---|"]
    for case in report.cases:
        status = look(case.status).marked
        out.append(f"| {markdown_text(case.id)} | {status} | {markdown_text(case.message)} |")
    return "\n".join(out) + "\n"
