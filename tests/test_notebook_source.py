"""A .ipynb given to ``grader grade`` is graded from its code cells, not run as Python."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.pipeline.source import notebook_code, read_source


def _notebook(*cells: tuple[str, str | list[str]]) -> str:
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {"language_info": {"name": "python"}},
            "cells": [
                {"cell_type": kind, "metadata": {}, "source": source, "outputs": [], "execution_count": None}
                for kind, source in cells
            ],
        }
    )


TOY = _notebook(
    ("markdown", "# Scale\nMultiply by the factor."),
    ("code", ["%matplotlib inline\n", "import numpy as np\n", "!pip install nothing\n"]),
    ("code", "%%time\nthis is not python\n"),
    ("code", "def scale(factor, x):\n    return (np.asarray(x) * np.float32(factor)).astype(np.float32)"),
)


def test_code_cells_are_joined_with_magics_commented_out() -> None:
    code = notebook_code(TOY)

    assert "# cell 2\n# %matplotlib inline\nimport numpy as np\n# !pip install nothing\n" in code
    assert "# %%time\n# this is not python\n" in code  # a cell magic's body is not Python
    assert "Multiply by the factor" not in code  # markdown is not code
    lines = code.splitlines()
    assert lines[lines.index("# cell 4") + 1] == "def scale(factor, x):"


def test_a_notebook_is_read_as_its_code(tmp_path: Path) -> None:
    path = tmp_path / "scale.ipynb"
    path.write_text(TOY, encoding="utf-8")

    source = read_source(path)

    assert source.problem is None
    assert "scale" in source.definitions and "np" in source.names
    assert source.line(source.text.splitlines().index("# cell 4") + 2) == "def scale(factor, x):"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"cells": [', "not valid JSON"),
        ("[1, 2]", "no list of cells"),
        ('{"cells": [{"cell_type": "code", "source": 3}]}', "cell 1"),
    ],
)
def test_a_broken_notebook_is_a_syntax_problem_that_says_so(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text(text, encoding="utf-8")

    source = read_source(path)

    assert source.problem is not None and words in source.problem.message
    assert source.text == ""


def test_a_linked_notebook_is_still_refused(tmp_path: Path) -> None:
    from grader.errors import UsageError

    (tmp_path / "real.ipynb").write_text(TOY, encoding="utf-8")
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "real.ipynb")

    with pytest.raises(UsageError, match="symbolic link"):
        read_source(tmp_path / "link.ipynb")


@pytest.mark.slow
def test_a_notebook_is_graded_from_its_code_cells(grade_toy, tmp_path: Path) -> None:
    report = grade_toy(TOY, tmp_path, name="scale.ipynb")

    assert report.status == "passed", report.message


@pytest.mark.slow
def test_a_notebook_that_is_not_json_is_a_syntax_error_verdict(grade_toy, tmp_path: Path) -> None:
    report = grade_toy('{"cells": [', tmp_path, name="scale.ipynb")

    assert report.status == "error"
    assert report.diagnoses and "not valid JSON" in report.diagnoses[0].message
