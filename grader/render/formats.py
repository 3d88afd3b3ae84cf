"""The output formats, one entry each (``FORMATS``): how it renders one ``Report``, how it renders a
``BatchReport`` (or that it cannot), the suffix and media type of its files, and how its text is written
where the encoding cannot take all of it. ``--format``, ``--report FORMAT=PATH``, ``--output-dir`` and a
batch's document look formats up here: a new renderer is one entry.

A format renders a document: text, for machines, or a rich renderable, for people, which a Console lays out
(a terminal at its own width, a file at 100 columns). Each renderer is imported when its format is used,
not with the registry: the grader starts the submission's child before it loads any.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from rich.console import ConsoleRenderable

    from grader.report.schema import BatchReport, Report

Document: TypeAlias = "str | ConsoleRenderable"  # text, or a renderable that a Console lays out
FILE_WIDTH = 100  # columns of a document for people written to a file


@dataclasses.dataclass(frozen=True, kw_only=True)
class Context:
    """What a renderer may need to know of where its document goes."""

    workspace: Path | None = None  # the folder GitHub places annotations from ($GITHUB_WORKSPACE)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutputFormat:
    """One format: its renderers and how its documents are stored and written."""

    name: str
    description: str  # a few words for --format's help
    suffix: str  # of a report's file in --output-dir
    media_type: str
    report: Callable[[Report, Context], Document]
    batch: Callable[[BatchReport, Context], Document] | None  # None: a document holds one submission
    encoded: Callable[[str, str], str]  # the text as an encoding that cannot take all of it can (stdout)
    one_submission: str = ""  # what its document is, named where a batch is refused
    step_summary: Callable[[Report], str] | None = None  # Markdown for $GITHUB_STEP_SUMMARY
    batch_step_summary: Callable[[BatchReport], str] | None = None
    modules: tuple[str, ...] = ()  # what rendering one report imports when first used (``load_renderers``)


def load_renderers(formats: Iterable[OutputFormat]) -> None:
    """Imports what rendering one report in each of ``formats`` imports when first used: ``grader grade``
    does it while the submission's child runs, rather than after it, when the report waits on it."""
    for fmt in formats:
        for module in fmt.modules:
            importlib.import_module(module)


def backslash_escapes(text: str, encoding: str) -> str:
    """What ``encoding`` cannot take as Python's backslash escapes (``\\xe9``)."""
    return text.encode(encoding, "backslashreplace").decode(encoding)


def json_escapes(text: str, _encoding: str) -> str:
    """Everything outside ASCII as JSON's ``\\u`` escapes: in a JSON document it is only ever inside a
    string, where the escape reads back as the same character."""
    return _NON_ASCII.sub(lambda match: json.dumps(match.group())[1:-1], text)


def xml_references(text: str, encoding: str) -> str:
    """What ``encoding`` cannot take as XML character references (``&#233;``), which read back the same."""
    return text.encode(encoding, "xmlcharrefreplace").decode(encoding)


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _rich_report(report: Report, _context: Context) -> Document:
    from grader.render.terminal import ReportView

    return ReportView(report)


def _rich_batch(batch: BatchReport, _context: Context) -> Document:
    from grader.render.batch import summary_table

    return summary_table(batch)


def _json_report(report: Report, _context: Context) -> Document:
    from grader.render.json import render_json

    return render_json(report)


def _json_batch(batch: BatchReport, _context: Context) -> Document:
    from grader.render.json import render_batch_json

    return render_batch_json(batch)


def _gradescope_report(report: Report, _context: Context) -> Document:
    from grader.render.gradescope import render_gradescope

    return render_gradescope(report)


def _junit_report(report: Report, _context: Context) -> Document:
    from grader.render.junit import render_junit

    return render_junit(report)


def _junit_batch(batch: BatchReport, _context: Context) -> Document:
    from grader.render.junit import render_junit_batch

    return render_junit_batch(batch)


def _github_report(report: Report, context: Context) -> Document:
    from grader.render.github import render_annotations

    return render_annotations(report, root=context.workspace)


def _github_batch(batch: BatchReport, context: Context) -> Document:
    from grader.render.github import render_batch_annotations

    return render_batch_annotations(batch, root=context.workspace)


def _github_summary(report: Report) -> str:
    from grader.render.github import render_summary

    return render_summary(report)


def _github_batch_summary(batch: BatchReport) -> str:
    from grader.render.batch import render_batch_summary

    return render_batch_summary(batch)


FORMATS: Mapping[str, OutputFormat] = MappingProxyType(
    {
        entry.name: entry
        for entry in (
            OutputFormat(
                name="rich",
                modules=("grader.render.terminal",),
                description="for people",
                suffix=".txt",
                media_type="text/plain",
                report=_rich_report,
                batch=_rich_batch,
                encoded=backslash_escapes,
            ),
            OutputFormat(
                name="json",
                modules=("grader.render.json",),
                description="the report",
                suffix=".json",
                media_type="application/json",
                report=_json_report,
                batch=_json_batch,
                encoded=json_escapes,
            ),
            OutputFormat(
                name="gradescope",
                modules=("grader.render.gradescope",),
                description="results.json",
                suffix=".json",
                media_type="application/json",
                report=_gradescope_report,
                batch=None,
                encoded=json_escapes,
                one_submission="Gradescope's results.json",
            ),
            OutputFormat(
                name="junit",
                modules=("grader.render.junit",),
                description="JUnit XML",
                suffix=".xml",
                media_type="application/xml",
                report=_junit_report,
                batch=_junit_batch,
                encoded=xml_references,
            ),
            OutputFormat(
                name="github",
                modules=("grader.render.github",),
                description="workflow annotations (and a summary in $GITHUB_STEP_SUMMARY)",
                suffix=".txt",
                media_type="text/plain",
                report=_github_report,
                batch=_github_batch,
                encoded=backslash_escapes,
                step_summary=_github_summary,
                batch_step_summary=_github_batch_summary,
            ),
        )
    }
)
PEOPLE = FORMATS["rich"]  # the format a batch's document falls back to where its own holds one submission


def format_help() -> str:
    """Each format and what it writes, for --format's help: ``rich: for people; json: the report; ...``."""
    return "; ".join(f"{entry.name}: {entry.description}" for entry in FORMATS.values()) + "."


def as_text(document: Document, *, color: bool = False) -> str:
    """A document as the text of a file: a renderable laid out at ``FILE_WIDTH`` columns, with escape codes
    only when ``color``."""
    if isinstance(document, str):
        return document
    import io

    from grader.render.terminal import make_console

    buffer = io.StringIO()
    make_console(color=color, file=buffer, width=FILE_WIDTH).print(document)
    return buffer.getvalue()
