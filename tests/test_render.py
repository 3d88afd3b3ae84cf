"""Rendering reads a finished report: tested through a Console writing to a string."""

from __future__ import annotations

import io
import re
from pathlib import Path

from grader.render.json import render_json
from grader.render.terminal import make_console, render_report
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
