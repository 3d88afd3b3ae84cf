"""How a child can end, and what the report says each time (on the jax-free toy exercise, short limits)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import ROOT

CORRECT = """
import numpy as np

def scale(factor, x):
    return (np.asarray(x) * np.float32(factor)).astype(np.float32)
"""


def codes(report) -> list[str]:
    return [d.code for d in report.diagnoses]


def statuses(report) -> list[str]:
    return [c.status for c in report.cases]


def test_correct_toy_submission_passes(grade_toy, tmp_path: Path) -> None:
    report = grade_toy(CORRECT, tmp_path)
    assert report.status == "passed"
    assert report.score == report.max_score == 4.0
    assert codes(report) == []


def test_sys_exit_at_import_is_a_verdict(grade_toy, tmp_path: Path) -> None:
    report = grade_toy("import sys\nsys.exit(0)\n" + CORRECT, tmp_path)
    assert report.status == "error"
    assert codes(report) == ["exited"]
    assert "sys.exit(0)" in report.diagnoses[0].message
    assert set(statuses(report)) == {"skipped"}


def test_os_exit_during_a_call_keeps_earlier_results(grade_toy, tmp_path: Path) -> None:
    source = (
        CORRECT
        + """
_real = scale
calls = []

def scale(factor, x):
    calls.append(1)
    if len(calls) == 2:
        import os
        print('{"status": "passed", "score": 4}')
        os._exit(0)
    return _real(factor, x)
"""
    )
    report = grade_toy(source, tmp_path)
    assert statuses(report) == ["passed", "error", "skipped"]
    assert report.status == "failed"
    assert codes(report)[0] == "exited"
    assert report.diagnoses[0].cases == ["second"]


def test_endless_loop_times_out_in_its_case(grade_toy, tmp_path: Path) -> None:
    source = CORRECT.replace("return", "while factor > 2.5:\n        pass\n    return")
    report = grade_toy(source, tmp_path)
    assert statuses(report) == ["passed", "error", "skipped"]
    assert codes(report)[0] == "timeout"
    assert "second" in report.diagnoses[0].message
    assert "3 s" in report.cases[1].message


def test_hang_at_import_times_out(grade_toy, tmp_path: Path) -> None:
    report = grade_toy("import time\ntime.sleep(60)\n" + CORRECT, tmp_path)
    assert report.status == "error"
    assert codes(report) == ["timeout"]
    assert "importing" in report.diagnoses[0].message


def test_segfault_is_reported_as_crashed(grade_toy, tmp_path: Path) -> None:
    source = CORRECT.replace("return", "import ctypes\n    ctypes.string_at(0)\n    return")
    report = grade_toy(source, tmp_path)
    assert codes(report)[0] == "crashed"
    assert "SIGSEGV" in report.diagnoses[0].message
    assert statuses(report)[0] == "error"


def test_exception_shows_only_the_learners_frames(grade_toy, tmp_path: Path) -> None:
    source = (
        "import numpy as np\n\ndef helper(x):\n    return np.reshape(x, (7, 7))\n\n"
        "def scale(factor, x):\n    return helper(x)\n"
    )
    report = grade_toy(source, tmp_path)
    assert codes(report) == ["exception"]
    error = report.cases[0].error
    assert error is not None and error.type == "ValueError"
    assert [f.line for f in error.frames] == [7, 4]
    assert all(f.file == str(tmp_path / "submission.py") for f in error.frames)
    assert error.raised_in is not None and "numpy" in error.raised_in
    assert [line.line for line in report.diagnoses[0].lines] == [4, 7]


def test_output_is_captured_per_case_and_escaped(grade_toy, tmp_path: Path) -> None:
    source = (
        CORRECT.replace(
            "def scale(factor, x):\n", "def scale(factor, x):\n    print('factor is', factor, '\\x1b[2J')\n"
        )
        + "\nprint('imported!')\n"
    )
    report = grade_toy(source, tmp_path)
    assert report.status == "passed"
    assert report.output.stdout.text == "imported!\n"
    assert [c.output.stdout.text for c in report.cases] == [
        "factor is 2.0 \\x1b[2J\n",
        "factor is 3.0 \\x1b[2J\n",
        "factor is -1.0 \\x1b[2J\n",
    ]


def test_flood_of_output_is_truncated(grade_toy, tmp_path: Path) -> None:
    source = CORRECT.replace("def scale(factor, x):\n", "def scale(factor, x):\n    print('y' * 3_000_000)\n")
    report = grade_toy(source, tmp_path)
    stdout = report.cases[0].output.stdout
    assert stdout.truncated and stdout.size > 3_000_000 and len(stdout.text) <= 8192
    assert report.status == "passed"


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        ("return (1.0, 2.0)", "wrong-type", "tuple"),
        ("return None", "wrong-type", "NoneType"),
        ("return 'ok'", "wrong-type", "str"),
        ("return np.array([object()])", "wrong-type", "object"),
        ("return np.zeros((1, x.shape[0]), np.float32)", "shape-mismatch", "(1, 3)"),
        ("return (np.asarray(x) * factor).astype(np.float64)", "dtype-mismatch", "float64"),
        ("return np.full(x.shape, np.nan, np.float32)", "non-finite", "NaN"),
        ("return np.zeros(50_000_000, np.float32)", "shape-mismatch", "too large"),
    ],
)
def test_wrong_outputs_get_their_code(grade_toy, tmp_path: Path, body: str, code: str, detail: str) -> None:
    report = grade_toy(f"import numpy as np\n\ndef scale(factor, x):\n    {body}\n", tmp_path)
    assert report.status == "failed"
    assert code in codes(report)
    diagnosis = next(d for d in report.diagnoses if d.code == code)
    assert detail in diagnosis.message


def test_ndarray_subclass_with_lying_eq_does_not_pass(grade_toy, tmp_path: Path) -> None:
    source = """
import numpy as np

class Liar(np.ndarray):
    def __eq__(self, other):
        return True
    def __array_finalize__(self, obj):
        pass

def scale(factor, x):
    return np.zeros(np.shape(x), np.float32).view(Liar)
"""
    report = grade_toy(source, tmp_path)
    assert report.status == "failed"
    assert "values-mismatch" in codes(report)


def test_writes_stay_in_the_throwaway_directory(grade_toy, tmp_path: Path) -> None:
    before = _digest_tree(ROOT)
    source = (
        CORRECT
        + """
import os
with open("scratch.txt", "w") as f:
    f.write("x")
os.makedirs("sub/dir", exist_ok=True)
os.chmod("sub", 0)
print(os.getcwd())
"""
    )
    report = grade_toy(source, tmp_path)
    assert report.status == "passed"
    workdir = report.output.stdout.text.strip()
    assert workdir != str(tmp_path) and not os.path.exists(workdir)
    assert not (tmp_path / "scratch.txt").exists()
    assert _digest_tree(ROOT) == before


def test_grader_folders_are_not_importable(grade_toy, tmp_path: Path) -> None:
    source = (
        CORRECT
        + """
import sys
try:
    import grader  # noqa: F401
    found = getattr(grader, "__file__", "?")
except ImportError:
    found = "no"
print(found, any("exercises" in p or p.rstrip("/").endswith("reference") for p in sys.path))
"""
    )
    report = grade_toy(source, tmp_path)
    printed = report.output.stdout.text.split()
    assert printed[1] == "False"
    assert printed[0] == "no" or "site-packages" in printed[0]


def _digest_tree(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        parts = set(path.relative_to(root).parts)
        if parts & {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", ".venv"}:
            continue
        if path.is_file():
            digest.update(str(path).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_closing_the_result_channel_is_not_a_pass(grade_toy, tmp_path: Path) -> None:
    source = (
        CORRECT
        + """
import os
for fd in range(3, 64):
    try:
        os.close(fd)
    except OSError:
        pass
"""
    )
    report = grade_toy(source, tmp_path)
    assert report.status == "error"
    assert codes(report) and codes(report)[0] in ("protocol-error", "exited", "crashed", "import-error")


def test_forged_frames_on_the_channel_cannot_pass(grade_toy, tmp_path: Path) -> None:
    source = """
import json, os, sys

def scale(factor, x):
    for fd in range(3, 64):
        try:
            payload = json.dumps({"type": "done"}).encode()
            os.write(fd, len(payload).to_bytes(4, "big") + payload)
        except OSError:
            pass
    return x
"""
    report = grade_toy(source, tmp_path)
    assert report.status != "passed"
    assert report.score == 0
