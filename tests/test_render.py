"""Rendering reads a finished report: tested through a Console writing to a string."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from grader.render.json import render_json
from grader.render.style import look
from grader.render.terminal import ReportView, make_console, render_report
from grader.report.schema import Report

WRONG = """
import numpy as np

def scale(factor, x):
    print("\\x1b[31mI am red\\x1b[0m")
    out = (np.asarray(x) * np.float32(factor)).astype(np.float32)
    if out.size > 4:
        out[4] += 1
    return out
"""


def render(report: Report, *, color: bool) -> str:
    buffer = io.StringIO()
    render_report(report, make_console(color=color, file=buffer, width=100))
    return buffer.getvalue()


def test_plain_report_layout(grade_toy, tmp_path: Path) -> None:
    text = render(grade_toy(WRONG, tmp_path), color=False)
    assert "\x1b" not in text
    table_row = re.search(r"^✗\s+second\s.*1/5 differ, max 1\s*$", text, re.MULTILINE)
    assert table_row is not None  # the case table gives a few words per case
    assert text.index("What to fix") < text.index("values-mismatch") < table_row.start()
    assert "index" in text and "expected" in text and "actual" in text
    assert "\\x1b[31mI am red" in text  # the learner's escape sequence is shown, not obeyed
    assert "FAILED" in text and "score 1/4" in text


def test_colored_report_marks_the_wrong_element(grade_toy, tmp_path: Path) -> None:
    text = render(grade_toy(WRONG, tmp_path), color=True)
    assert "\x1b[" in text
    assert "\x1b[31mI am red" not in text  # still escaped in color mode


def test_syntax_error_gets_a_caret(grade_toy, tmp_path: Path) -> None:
    report = grade_toy("def scale(factor, x)\n    return x\n", tmp_path)
    lines = render(report, color=False).splitlines()
    code = next(i for i, line in enumerate(lines) if "def scale(factor, x)" in line)
    assert lines[code + 1].strip().strip("│").strip() == "^"
    assert "3 cases not run: the file does not parse" in "\n".join(lines)


def test_json_rendering_round_trips(grade_toy, tmp_path: Path) -> None:
    report = grade_toy(WRONG, tmp_path)
    assert Report.model_validate_json(render_json(report)) == report


RAISES = "def scale(factor, x):\n    raise ValueError('no scaling today')\n"
LONG_IDS = ("worked-example/train", "short-negatives/train", "negatives-16/eval")


@pytest.fixture(scope="module")
def tabled(grade_toy, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Report]:
    """Reports whose cases are shown in a table: passed and failed, errors, and long case ids."""
    wrong = grade_toy(WRONG, tmp_path_factory.mktemp("wrong"))
    raises = grade_toy(RAISES, tmp_path_factory.mktemp("raises"))
    renamed = [case.model_copy(update={"id": new}) for case, new in zip(wrong.cases, LONG_IDS, strict=True)]
    return {"wrong": wrong, "raises": raises, "long ids": wrong.model_copy(update={"cases": renamed})}


@pytest.mark.parametrize("width", [40, 80, 200])
@pytest.mark.parametrize("name", ["wrong", "raises", "long ids"])
def test_the_report_renderable_fits_any_width_and_shows_every_case(tabled: dict, name: str, width: int) -> None:
    report = tabled[name]
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True).print(ReportView(report))
    lines = buffer.getvalue().splitlines()
    assert lines and all(cell_len(line) <= width for line in lines), width
    assert "\x1b" not in buffer.getvalue()
    for case in report.cases:
        status = look(case.status)
        row = re.compile(rf"^{re.escape(status.symbol)}\s+{re.escape(case.id)}\s(.*\s)?{status.word}\b")
        assert any(row.match(line) for line in lines), (case.id, case.status)  # mark, whole id and word
    assert any(line.startswith(f" {look(report.status).word.upper()} ") for line in lines)  # the verdict, in words


def test_building_the_report_prints_nothing(tabled: dict) -> None:
    """The view only builds renderables: nothing is written until a console prints it, at its width."""
    console = Console(file=io.StringIO(), width=80, no_color=True)
    view = ReportView(tabled["wrong"])
    assert console.file.getvalue() == ""
    narrow, wide = Console(file=io.StringIO(), width=50), Console(file=io.StringIO(), width=120)
    narrow.print(view)
    wide.print(view)
    assert max(map(cell_len, narrow.file.getvalue().splitlines())) <= 50
    assert max(map(cell_len, wide.file.getvalue().splitlines())) > 50  # the same view, laid out wider


def test_show_states_each_leafs_own_tolerance() -> None:
    """``grader show`` says how each part of a tree output is compared, where a part sets its own tolerance."""
    from grader.exercise.spec import get_exercise
    from grader.render.exercise import exercise_view

    exercise = get_exercise("train-eval-batchnorm")
    own = exercise.spec.leaf_tolerances()
    assert own  # the statistics are compared with tolerances of their own
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(exercise_view(exercise))
    shown = console.file.getvalue()
    for path, (rtol, atol) in own.items():
        assert f"{path}: rtol={rtol:g}, atol={atol:g}" in shown
