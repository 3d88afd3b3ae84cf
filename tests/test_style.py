"""One table says how each status looks (``grader/render/style.py``): every renderer reads it, and no module
that draws statuses holds a colour, a status symbol or a status-keyed table of its own."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import get_args

import pytest
from rich.cells import cell_len
from rich.errors import StyleSyntaxError
from rich.style import Style

from grader.render.style import LOOKS
from grader.report.schema import CaseStatus, EntryStatus, ReportStatus
from tests.conftest import ROOT

STATUSES = {*get_args(CaseStatus), *get_args(ReportStatus), *get_args(EntryStatus)}
STYLE_TABLE = ROOT / "grader" / "render" / "style.py"
# Where statuses are drawn: the renderers, and the learner's side (watch, notebook).
DRAWING = sorted({*(ROOT / "grader" / "render").glob("*.py"), *(ROOT / "grader" / "learner").glob("*.py")})
DRAWING.remove(STYLE_TABLE)
# The renderers that show a status, each through the table.
SHOWS_STATUSES = ("render/terminal.py", "render/batch.py", "render/github.py", "learner/watch.py")
MARKUP_TAG = re.compile(r"\[([^\[\]/][^\[\]]*)\]")


def test_every_status_has_one_colour_symbol_and_word() -> None:
    assert set(LOOKS) == STATUSES  # every status any report or batch entry can have, and no other
    for status, look in LOOKS.items():
        assert look.word == status
        assert cell_len(look.symbol) == 1, status  # a one-cell column in the case table
        assert len(look.ascii) == 1 and look.ascii.isascii(), status
        assert Style.parse(look.colour) == Style.parse(look.colour), status  # a style rich reads
        assert look.emoji and not look.emoji.isascii(), status
    for field in ("colour", "symbol", "word", "emoji"):
        values = [getattr(look, field) for look in LOOKS.values()]
        assert len(set(values)) == len(values), f"two statuses share a {field}: {values}"


def _strings(tree: ast.AST) -> list[str]:
    """Every string constant in a module, f-strings' literal parts included."""
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def _colours(text: str) -> list[str]:
    """The rich styles with a colour that ``text`` is, or that its markup tags name."""
    found = []
    for candidate in [text, *MARKUP_TAG.findall(text)]:
        try:
            style = Style.parse(candidate.strip())
        except (StyleSyntaxError, ValueError):
            continue
        if any(colour is not None and not colour.is_default for colour in (style.color, style.bgcolor)):
            found.append(candidate)
    return found


def _status_tables(tree: ast.AST) -> list[str]:
    """Dict literals keyed by two statuses or more: a table from status to something."""
    tables = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = {key.value for key in node.keys if isinstance(key, ast.Constant)}
            if len(keys & STATUSES) >= 2:
                tables.append(ast.unparse(node)[:80])
    return tables


def _own_styles(path: Path) -> list[str]:
    """What in ``path`` says how a status looks without the style table: a colour, a status's symbol or
    emoji (beyond ASCII: ``-`` and ``!`` are ordinary text too), or a table keyed by status."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    marks = {mark for look in LOOKS.values() for mark in (look.symbol, look.emoji) if not mark.isascii()}
    problems = [f"colour {colour!r}" for text in _strings(tree) for colour in _colours(text)]
    problems += [f"status mark {mark!r}" for text in _strings(tree) for mark in marks if mark in text]
    return problems + [f"table {table}" for table in _status_tables(tree)]


@pytest.mark.parametrize("path", DRAWING, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_module_but_the_style_table_says_how_a_status_looks(path: Path) -> None:
    assert _own_styles(path) == [], f"{path.relative_to(ROOT)}: use grader.render.style"


@pytest.mark.parametrize("module", SHOWS_STATUSES)
def test_each_renderer_of_statuses_reads_the_table(module: str) -> None:
    tree = ast.parse((ROOT / "grader" / module).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "grader.render.style" in imported


def test_the_checker_finds_a_table_of_its_own(tmp_path: Path) -> None:
    """The checker itself: each way of mapping a status to a look is caught."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        'STYLES = {"passed": "bold green", "failed": "red"}\n'
        'def mark(status):\n    return "✓" if status == "passed" else "[magenta]x[/]"\n',
        encoding="utf-8",
    )
    problems = _own_styles(planted)
    assert "colour 'bold green'" in problems and "colour 'red'" in problems and "colour 'magenta'" in problems
    assert "status mark '✓'" in problems
    assert any(problem.startswith("table {'passed'") for problem in problems)
