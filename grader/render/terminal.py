"""The report for people: a rich renderable built from a finished ``Report`` (``ReportView``). It reads the
report and nothing else; the Console it is printed on decides the width and whether there is colour."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from grader.render.style import DIAGNOSIS, EXPECTED, HINT, LOOKS, WRONG, look
from grader.report.codes import info
from grader.report.schema import CapturedOutput, CaseResult, Comparison, Diagnosis, ElementRow, Number, Report

MAX_DETAILED = 4
MAX_OUTPUT_LINES = 12


def _number(value: Number | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.upper() if value == "nan" else value
    return f"{value:.6g}"


def _header(report: Report) -> Panel:
    env = report.environment
    versions = " · ".join(
        f"{name} {version}"
        for name, version in (("Python", env.python), ("jax", env.jax), ("flax", env.flax))
        if version
    )
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("exercise", f"{escape(report.exercise.id)} · {escape(report.exercise.title)}")
    # Folded, not cut: a long path keeps its end, the file's name, on the next line.
    grid.add_row("submission", Text(report.submission.path, overflow="fold"))
    backend = f" · backend {env.backend}" if env.backend else ""
    grid.add_row("environment", f"{versions}{backend} · {env.isolation} isolation")
    if report.seed is not None:
        grid.add_row("seed", _fresh_line(report))
    return Panel(grid, title="[bold]grader[/]", title_align="left", box=box.ROUNDED, expand=False)


def _fresh_line(report: Report) -> str:
    """One line on what ``--seed`` added, so a learner can reproduce a CI result with the same seed."""
    fresh = sum(case.fresh for case in report.cases)
    if not fresh:
        return f"{report.seed}, but this exercise has no generators: no fresh cases were added"
    return f"{fresh} fresh cases from seed {report.seed} were added (the same seed gives the same cases)"


def _code_lines(diagnosis: Diagnosis) -> list[RenderableType]:
    parts: list[RenderableType] = []
    for line in diagnosis.lines:
        if line.column is not None:
            gutter = f"{line.line:>4} "
            parts.append(
                Text.assemble(
                    (gutter, "dim"), line.text, "\n", " " * (len(gutter) + line.column - 1), ("^", f"bold {WRONG}")
                )
            )
        else:
            parts.append(
                Syntax(line.text, "python", line_numbers=True, start_line=line.line, theme="ansi_dark", word_wrap=True)
            )
    return parts


def _diagnosis(diagnosis: Diagnosis, source_path: str) -> Panel:
    parts: list[RenderableType] = [Text(diagnosis.message), *_code_lines(diagnosis)]
    if diagnosis.hint:
        parts.append(Text.assemble(("hint: ", HINT), diagnosis.hint))
    if diagnosis.evidence:
        parts.append(Text.assemble(("evidence: ", "dim"), (diagnosis.evidence, "dim")))
    return Panel(
        Group(*parts),
        title=Text.assemble((diagnosis.code, f"bold {DIAGNOSIS}")),
        title_align="left",
        border_style=DIAGNOSIS,
        subtitle=escape(source_path) if diagnosis.lines else None,
        subtitle_align="right",
    )


def _short_detail(case: CaseResult) -> str:
    """A few words for the case table; the full story is in the case's own panel."""
    if case.status == "passed":
        return ""
    if case.status == "skipped":
        return "not run"
    if case.error is not None:
        return case.error.type
    comparison = case.comparison
    if comparison is None:
        return case.message[:60]
    where = f"{comparison.path} " if comparison.path and not comparison.ok else ""
    if comparison.kind == "structure-mismatch":
        return "another structure"
    if comparison.kind == "values-mismatch":
        worst = comparison.max_abs_error
        tail = f", max {worst:.3g}" if isinstance(worst, float) else ""
        return f"{where}{comparison.n_mismatched}/{comparison.n_elements} differ{tail}"
    if comparison.kind in ("shape-mismatch", "too-large"):
        return f"{where}shape {tuple(comparison.actual_shape or [])} ≠ {tuple(comparison.expected_shape)}"
    if comparison.kind == "dtype-mismatch":
        return f"{where}dtype {comparison.actual_dtype} ≠ {comparison.expected_dtype}"
    return f"{where}returned {comparison.actual_type}"


class CaseTable:
    """The case table, laid out for the width it gets: the inputs column only where there is room for it
    beside the others, and the detail column no wider than what is left, so that on a narrow terminal
    (60 columns) the mark and the status stay and a long detail is shortened with an ellipsis, never cut
    off at the edge (rich would otherwise shrink every column, the one-cell mark to nothing). Narrower still
    (40 columns), the detail column goes (each failed case's panel below tells it) and the case ids stay whole."""

    MIN_INPUTS = 16
    MIN_DETAIL = 22  # the detail's width before the inputs get a column
    SHOWN_DETAIL = 10  # the narrowest detail column shown
    GAP = 3  # a cell's padding either side of the column divider

    def __init__(self, cases: list[CaseResult]) -> None:
        self.cases = cases

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        longest_id = max(len(c.id) for c in self.cases)
        fixed = 1 + longest_id + len("skipped") + 3 * self.GAP  # mark, case, status and the gaps between
        inputs = options.max_width >= fixed + self.MIN_DETAIL + self.GAP + self.MIN_INPUTS
        room = options.max_width - fixed - (self.GAP + self.MIN_INPUTS if inputs else 0)
        yield _case_table(self.cases, inputs=inputs, detail_width=room if room >= self.SHOWN_DETAIL else None)


def _case_table(cases: list[CaseResult], *, inputs: bool, detail_width: int | None) -> Table:
    """The table; without the detail column when ``detail_width`` is None."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=detail_width is not None)
    table.add_column("", width=1, min_width=1, no_wrap=True)
    longest_id = max(len(c.id) for c in cases)
    table.add_column("case", style="bold", no_wrap=True, overflow="ellipsis", min_width=min(longest_id, 12))
    if inputs:
        table.add_column("inputs", overflow="ellipsis", no_wrap=True, ratio=1)
    table.add_column("status", no_wrap=True, min_width=7, max_width=7)
    if detail_width is not None:
        table.add_column("detail", overflow="ellipsis", no_wrap=True, min_width=10, max_width=detail_width)
    for case in cases:
        shown, status = ", ".join(f"{k}={v}" for k, v in case.inputs.items()), look(case.status)
        table.add_row(
            Text(status.symbol, style=status.strong),
            case.id,
            *([Text(shown, style="dim")] if inputs else []),
            Text(status.word, style=status.strong),
            *([Text(_short_detail(case))] if detail_width is not None else []),
        )
    return table


def _rows_table(comparison: Comparison) -> Table:
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
    for name in ("index", "expected", "actual", "abs err"):
        table.add_column(name, justify="right")
    previous: int | None = None
    for row in comparison.rows:
        if previous is not None and row.index > previous + 1:
            table.add_row("⋮", Text(f"{row.index - previous - 1} more", style="dim"), "", "")
        table.add_row(*_row_cells(row))
        previous = row.index
    if previous is not None and previous + 1 < comparison.n_elements:
        table.add_row("⋮", Text(f"{comparison.n_elements - previous - 1} more", style="dim"), "", "")
    return table


def _row_cells(row: ElementRow) -> tuple[Text, Text, Text, Text]:
    bad = not row.ok
    return (
        Text(str(row.index), style="bold" if bad else "dim"),
        Text(_number(row.expected), style=EXPECTED if bad else ""),
        Text(_number(row.actual), style=f"bold {WRONG}" if bad else ""),
        Text(_number(row.abs_error) if bad else "", style=WRONG),
    )


def _captured(output: CapturedOutput, title: str) -> Panel | None:
    if output.empty:
        return None
    parts: list[RenderableType] = []
    for name, stream in (("stdout", output.stdout), ("stderr", output.stderr)):
        if not stream.size:
            continue
        lines = stream.text.splitlines()
        text = "\n".join(lines[:MAX_OUTPUT_LINES])
        more = len(lines) > MAX_OUTPUT_LINES or stream.truncated
        parts.append(
            Text.assemble(
                (f"{name}:\n", "bold"), text, (f"\n… {stream.size} bytes in all, truncated" if more else "", "dim")
            )
        )
    return Panel(Group(*parts), title=escape(title), title_align="left", border_style="dim")


def _case_detail(case: CaseResult) -> RenderableType:
    parts: list[RenderableType] = [Text(case.message)]
    comparison = case.comparison if case.comparison is None else case.comparison.lead_leaf()
    if comparison is not None and comparison.rows:
        if comparison.path:
            parts.append(Text(f"leaf {comparison.path}", style="bold"))
        parts.append(_rows_table(comparison))
    elif comparison is not None and comparison.actual_shape is not None:
        parts.append(
            Text(
                f"expected shape {tuple(comparison.expected_shape)} {comparison.expected_dtype}, "
                f"got {tuple(comparison.actual_shape)} {comparison.actual_dtype}",
                style="dim",
            )
        )
    if case.error is not None:
        for frame in case.error.frames:
            parts.append(Text.assemble((f"  line {frame.line}, in {frame.function}: ", "dim"), frame.code))
        if case.error.raised_in:
            parts.append(Text(f"  raised inside {case.error.raised_in}", style="dim"))
    captured = _captured(case.output, "printed during this case")
    if captured is not None:
        parts.append(captured)
    status = look(case.status)
    title = Text.assemble((f"{status.symbol} {case.id}", status.strong), (f"  {case.title}", "dim"))
    return Panel(Group(*parts), title=title, title_align="left", border_style=status.colour)


def _summary(report: Report) -> Text:
    status = look(report.status)
    passed = sum(c.status == "passed" for c in report.cases)
    return Text.assemble(
        (f" {status.word.upper()} ", f"reverse {status.strong}"),
        f"  {passed}/{len(report.cases)} cases · score {report.score:g}/{report.max_score:g}"
        f" · {report.duration_s:.1f} s\n",
        (report.message, status.strong),
    )


class ReportView:
    """The report as a rich renderable: the header, the diagnoses first, the cases, the details of what
    failed, the notes, the summary. It only builds renderables; the Console it is printed on lays them out
    for its width, with colour or without."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        report = self.report
        yield _header(report)
        if report.diagnoses:
            yield Text("What to fix", style="bold underline")
            yield from (_diagnosis(diagnosis, report.submission.path) for diagnosis in report.diagnoses)
        imported = _captured(report.output, "printed while the file was imported")
        if imported is not None:
            yield imported
        lead = info(report.diagnoses[0].code) if report.diagnoses else None  # None: a catalog's code
        yield from _cases(report, not_attempted=lead is not None and not lead.case_detail)
        yield from (Text(f"note: {note}", style="dim") for note in report.notes)
        yield _summary(report)


def _cases(report: Report, *, not_attempted: bool) -> Iterator[RenderableType]:
    """The case table (or why there is none), then the details of the first few cases that failed."""
    if not_attempted:
        yield Text(f"{len(report.cases)} cases are waiting for your solution.", style="dim")
        return
    if report.cases and all(c.status == "skipped" for c in report.cases):
        reason = report.cases[0].message.removeprefix("not run: ")
        yield Text(f"{len(report.cases)} cases not run: {reason}", style="dim")
    elif report.cases:
        yield CaseTable(report.cases)
    failing = [c for c in report.cases if c.status in ("failed", "error")]
    yield from (_case_detail(case) for case in failing[:MAX_DETAILED])
    if len(failing) > MAX_DETAILED:
        yield Text(
            f"… and {len(failing) - MAX_DETAILED} more failing cases (see the table above, "
            "or --format json for all details)",
            style="dim",
        )


def render_report(report: Report, console: Console) -> None:
    """Prints the report on ``console`` (``ReportView``)."""
    console.print(ReportView(report))


def make_console(*, color: bool | None = None, file: TextIO | None = None, width: int | None = None) -> Console:
    """A console that writes plain text (no escape codes) unless color is wanted and possible.

    ``color=None`` decides from the stream and ``NO_COLOR``: color only on a terminal, never with NO_COLOR.
    ``color=True`` (``--color``) forces escape codes even into a pipe.
    """
    import os
    import sys

    stream = file or sys.stdout
    if not _encodes(stream, ASCII_SYMBOLS_PROBE):
        stream = AsciiSymbols(stream)
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    if color is None:
        color = "NO_COLOR" not in os.environ and is_tty
    if color:
        return Console(
            file=stream,
            width=width,
            highlight=False,
            force_terminal=True,
            color_system="auto" if is_tty else "standard",
        )
    return Console(
        file=stream,
        width=width or 100,
        force_terminal=False,
        no_color=True,
        highlight=False,
        color_system=None,
        emoji=False,
    )


# What the report draws outside ASCII, and what stands for it where the stream cannot encode it (a stdout
# with PYTHONIOENCODING=ascii, LANG=C). Rich draws ASCII boxes itself then (the stream's encoding is not UTF).
# One character for one where it may sit in a table's column (rich's ellipsis "…" becomes "~"), so that
# the columns, laid out before this substitution, stay aligned.
ASCII_SYMBOLS = str.maketrans(
    {
        **{status.symbol: status.ascii for status in LOOKS.values()},
        "·": "-",
        "…": "~",
        "≠": "!=",
        "⋮": ":",
        "—": "--",
        "×": "x",
        "⚠": "!",
        "•": "*",  # rich's Markdown bullets (grader show, hint)
        "\ufe0f": "",
    }
)
ASCII_SYMBOLS_PROBE = "".join(status.symbol for status in LOOKS.values() if not status.symbol.isascii()) + "·…≠⋮"


def _encodes(stream: object, text: str) -> bool:
    encoding = getattr(stream, "encoding", None)
    if not isinstance(encoding, str):
        return True  # an in-memory text stream takes any text
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    except LookupError:
        return True
    return True


class AsciiSymbols:
    """A text stream that writes the report's symbols as ASCII, and anything else its encoding cannot take
    as a backslash escape: output degrades, it never raises UnicodeEncodeError."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.encoding: str = stream.encoding

    def write(self, text: str) -> int:
        shown = text.translate(ASCII_SYMBOLS).encode(self.encoding, "backslashreplace").decode(self.encoding)
        return self._stream.write(shown)

    def __getattr__(self, name: str) -> object:  # flush, isatty, fileno...: the stream's own
        return getattr(self._stream, name)
