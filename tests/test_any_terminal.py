"""Output on any terminal: a stdout that cannot encode UTF-8, a narrow one, and ``--version``."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from grader.render.terminal import AsciiSymbols, make_console, render_report
from tests.conftest import TOY_EXERCISES, cli_env

WRONG = 'import numpy as np\n\ndef scale(factor, x):\n    print("café ✓")\n    return np.asarray(x, np.float32)\n'


def _grade(cache_dir: Path, path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    environment = cli_env(cache_dir, GRADER_EXERCISES=str(TOY_EXERCISES), **env)
    command = [sys.executable, "-m", "grader", "grade", str(path), *args]
    return subprocess.run(command, capture_output=True, env=environment, timeout=300, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["rich", "json", "junit", "github"])
def test_an_ascii_stdout_gets_ascii_never_a_crash(cache_dir: Path, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "wrong.py"
    path.write_text(WRONG, encoding="utf-8")

    result = _grade(cache_dir, path, "--format", fmt, PYTHONIOENCODING="ascii")

    assert result.returncode == 1, result.stderr.decode("utf-8", "replace")  # graded, failed: not 3
    text = result.stdout.decode("ascii")  # raises if anything outside ASCII was written
    if fmt == "json":
        report = json.loads(text)
        assert report["status"] == "failed"
        assert "café ✓" in report["cases"][0]["output"]["stdout"]["text"]  # escaped, not lost
    if fmt == "rich":
        assert re.search(r"^x\s+\S+\s.*failed", text, re.MULTILINE)  # the mark, as ASCII
        assert "FAILED" in text


def test_ascii_symbols_stand_in_for_what_the_stream_cannot_encode() -> None:
    raw = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    stream = AsciiSymbols(raw)

    stream.write("✓ ✗ · … ≠ é")
    raw.flush()

    assert raw.buffer.getvalue().decode("ascii") == "+ x - ~ != \\xe9"


def test_a_console_on_an_ascii_stream_is_made_safe() -> None:
    raw = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    console = make_console(file=raw)
    console.print("✓ passed · score 1/1")
    raw.flush()
    assert raw.buffer.getvalue().decode("ascii").strip() == "+ passed - score 1/1"


@pytest.mark.slow
def test_at_60_columns_the_status_stays_and_numbers_end_in_an_ellipsis(grade_toy, tmp_path: Path) -> None:
    report = grade_toy(WRONG, tmp_path)
    failing = next(c for c in report.cases if c.status == "failed")
    assert failing.comparison is not None
    long = failing.comparison.model_copy(
        update={"n_mismatched": 123456789, "n_elements": 987654321, "max_abs_error": 1.23456e38}
    )
    cases = [c.model_copy(update={"comparison": long}) if c is failing else c for c in report.cases]
    buffer = io.StringIO()

    render_report(report.model_copy(update={"cases": cases}), make_console(file=buffer, width=60))

    lines = buffer.getvalue().splitlines()
    assert all(len(line) <= 60 for line in lines)
    row = next(line for line in lines if line.startswith("✗") and failing.id in line)
    assert "failed" in row  # the status column stays
    assert re.search(r"123456789/987654321 differ, max [\d.]*…\s*$", row), row  # an ellipsis, not cut


def test_version_names_grader_jax_flax_and_python(cache_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "grader", "--version"], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert re.fullmatch(r"grader \S+ \(jax \S+, flax \S+, Python \d+\.\d+\.\d+\)", line), line
    assert f"Python {sys.version_info.major}.{sys.version_info.minor}." in line
