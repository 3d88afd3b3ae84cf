"""Reports are bounded whatever a child sends, and a run ends at its first case that runs out of memory
(on the jax-free toy exercise, with real children)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.pipeline.grading import GradeOptions, grade_file
from grader.report.schema import Report
from tests.conftest import copy_toy_exercise

CASES = 20
CAPTURE = 8192  # the default limits.capture_bytes, the toy exercise's
# README, "The JSON report": at most about 2 x capture_bytes + 20 KiB a case, and as much again for the
# import and the rest (756 KiB for these 20 cases).
REPORT_BOUND = (CASES + 1) * (2 * CAPTURE + 20 * 1024)

# Forges a result for every case at once, then ends: each result holds as much as the protocol accepts.
FORGE = """
import json, os, sys

_CHANNEL = int(sys.argv[2])


def _frame(message):
    payload = json.dumps(message).encode()
    return len(payload).to_bytes(4, "big") + payload


def scale(factor, x):
    for index in range(CASES):
        os.write(_CHANNEL, _frame(result(index)))
    os.write(_CHANNEL, _frame({"type": "done"}))
    os._exit(0)
"""
MAXIMAL = """
# Controls and bidi controls grow when escaped, backslashes, quotes and line breaks double in JSON, an emoji
# takes four bytes: 4,000 characters (the protocol's most) of this, and 8,192 of it printed.
NASTY = "\\x1b[2J\\u202e\\\\\\"😀\\n" * 1000
TEXT, PRINTED = NASTY[:4000], NASTY[:8192]


def result(index):
    frames = [{"file": __file__, "line": index * 100 + n, "function": TEXT, "code": TEXT} for n in range(39)]
    frames.append({"file": "/" + "x" * 3999, "line": 1, "function": TEXT, "code": TEXT})
    printed = {"text": PRINTED, "size": 64 * 2**20, "truncated": True}
    error = {"type": TEXT, "message": TEXT, "frames": frames}
    return {"type": "result", "case": f"c{index}", "error": error, "stdout": printed, "stderr": printed}
"""
OVERSIZED = """
def result(index):
    printed = {"text": "x" * 99_000, "size": 10**15, "truncated": True}
    error = {"type": "OSError", "message": "x" * 99_000, "frames": [{"file": __file__, "function": "f"}] * 1000}
    return {"type": "result", "case": f"c{index}", "error": error, "stdout": printed, "stderr": printed}
"""


@pytest.fixture(scope="module")
def twenty_cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy exercise with 20 cases: its folder of exercises."""
    spec = copy_toy_exercise(tmp_path_factory.mktemp("bounds")) / "exercise.toml"
    text = spec.read_text(encoding="utf-8").split("[[cases]]")[0]
    for index in range(CASES):
        text += f'[[cases]]\nid = "c{index}"\ntitle = "case {index}"\n'
        text += f'inputs = {{ factor = {index}.0, x = {{ fill = "ones", shape = [3] }} }}\n\n'
    spec.write_text(text, encoding="utf-8")
    return spec.parent.parent


def _grade(source: str, roots: Path, tmp_path: Path, cache_dir: Path) -> Report:
    path = tmp_path / "submission.py"
    path.write_text(source, encoding="utf-8")
    return grade_file(path, exercise_id="toy-scale", options=GradeOptions(cache_dir=cache_dir, exercise_roots=[roots]))


def test_forged_results_at_every_bound_give_a_bounded_report(twenty_cases: Path, tmp_path: Path, cache_dir) -> None:
    report = _grade(f"CASES = {CASES}\n{MAXIMAL}{FORGE}", twenty_cases, tmp_path, cache_dir)
    assert [case.status for case in report.cases] == ["error"] * CASES  # accepted: each is within the protocol
    size = len(report.model_dump_json().encode("utf-8"))
    assert size < REPORT_BOUND, size
    error = report.cases[0].error
    assert error is not None and len(error.frames) == 10  # the learner's innermost frames
    assert len(error.type.encode()) <= 200 and error.type.endswith("…[cut]")
    assert len(report.cases[0].output.stdout.text.encode()) <= CAPTURE and report.cases[0].output.stdout.truncated
    assert "\\u202e" in error.message and "\u202e" not in report.model_dump_json()


def test_forged_oversized_results_are_a_protocol_error(twenty_cases: Path, tmp_path: Path, cache_dir) -> None:
    report = _grade(f"CASES = {CASES}\n{OVERSIZED}{FORGE}", twenty_cases, tmp_path, cache_dir)
    assert report.status == "error"
    assert report.diagnoses[0].code == "protocol-error"
    assert len(report.model_dump_json()) < 64 * 1024


MEMORY_BOMB = """
import numpy as np

def scale(factor, x):
    if factor {condition}:
        return bytearray(1 << 40)  # far past the toy exercise's 1024 MB: MemoryError at once
    return (np.asarray(x) * np.float32(factor)).astype(np.float32)
"""


def test_a_run_ends_at_its_first_case_out_of_memory(grade_toy, tmp_path: Path) -> None:
    report = grade_toy(MEMORY_BOMB.format(condition="> 0"), tmp_path)  # the first case: factor 2.0
    assert [case.status for case in report.cases] == ["error", "skipped", "skipped"]
    assert [d.code for d in report.diagnoses] == ["memory-limit"]
    assert report.cases[0].error is not None and report.cases[0].error.type == "MemoryError"
    skipped = report.cases[1].message
    assert skipped.startswith("not run: the run stopped in case first") and "ran out of memory" in skipped


def test_a_last_case_out_of_memory_ends_the_run_as_usual(grade_toy, tmp_path: Path) -> None:
    report = grade_toy(MEMORY_BOMB.format(condition="< 0"), tmp_path)  # only the third case: factor -1.0
    assert [case.status for case in report.cases] == ["passed", "passed", "error"]
    assert [d.code for d in report.diagnoses] == ["memory-limit"]
