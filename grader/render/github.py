"""The report for GitHub Actions: workflow-command annotations at the lines a diagnosis points to, and a
Markdown summary for ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import os
from pathlib import Path

from grader.schema import Report


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
        targets = [line.line for line in diagnosis.lines] or [None]
        for line in targets:
            where = f"file={path}" + (f",line={line}" if line else "")
            lines.append(f"::{level} {where},title={title}::{_data(text)}")
    lines.append(f"::{level} file={path},title={_property('grader: ' + report.status)}::{_data(report.message)}")
    return "\n".join(lines) + "\n"


def render_ungraded(path: str, status: str, message: str, *, root: Path | None = None) -> str:
    """The annotation of a batch's submission that has no report (skipped, or a fault of the grader)."""
    where = _property(_relative(path, root))
    return f"::error file={where},title={_property('grader: ' + status)}::{_data(message)}\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_summary(report: Report) -> str:
    mark = {"passed": "✅", "failed": "❌", "error": "⚠️", "skipped": "⏭️"}
    out = [
        f"### {mark.get(report.status, '')} {report.exercise.id}: `{report.submission.path}`",
        "",
        f"**{report.status}** — score {report.score:g} / {report.max_score:g}. {_cell(report.message)}",
        "",
    ]
    for diagnosis in report.diagnoses:
        out.append(f"- **{diagnosis.code}**: {_cell(diagnosis.message)}")
    out += ["", "| case | status | detail |", "|---|---|---|"]
    for case in report.cases:
        out.append(f"| {_cell(case.id)} | {mark.get(case.status, '')} {case.status} | {_cell(case.message)} |")
    return "\n".join(out) + "\n"
