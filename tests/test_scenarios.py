"""Golden scenarios: one folder per submission, holding the facts its report must show.

Each ``tests/scenarios/<name>/expected.json`` names a submission (its own ``submission.py``, or a file
under the repository by ``submission``) and the facts: status, score, diagnosis codes in order, and any
of case statuses, lines a diagnosis points at, text a diagnosis message contains, captured output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCENARIOS = sorted(p for p in (Path(__file__).parent / "scenarios").iterdir() if (p / "expected.json").is_file())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_scenario(scenario: Path, grade) -> None:
    facts = json.loads((scenario / "expected.json").read_text())
    submission = ROOT / facts["submission"] if "submission" in facts else scenario / "submission.py"
    report = grade(submission)

    assert report.exercise.id == "train-eval-dropout"
    assert report.status == facts["status"], report.message
    assert [d.code for d in report.diagnoses] == facts["diagnoses"]
    assert report.score == facts["score"]
    assert report.max_score == 22
    cases = {c.id: c for c in report.cases}
    for case_id, status in facts.get("case_status", {}).items():
        assert cases[case_id].status == status, (case_id, cases[case_id].message)
    diagnoses = {d.code: d for d in report.diagnoses}
    for code, lines in facts.get("lines", {}).items():
        assert [line.line for line in diagnoses[code].lines] == lines
    for field in ("message", "hint", "evidence"):
        for code, text in facts.get(f"{field}_contains", {}).items():
            assert text in (getattr(diagnoses[code], field) or ""), (code, field)
    if "import_stdout" in facts:
        assert report.output.stdout.text == facts["import_stdout"]
    for case_id, text in facts.get("case_stdout", {}).items():
        assert cases[case_id].output.stdout.text == text
    for case in report.cases:
        if case.status == "failed":
            assert case.comparison is not None and not case.comparison.ok
        if case.status == "passed":
            assert case.score == case.weight


def test_every_bundled_submission_has_a_scenario() -> None:
    named = {json.loads((p / "expected.json").read_text()).get("submission") for p in SCENARIOS}
    bundled = {f"submissions/{p.name}" for p in (ROOT / "submissions").glob("*.py")}
    assert bundled <= named


# The codes every grading of the bundled exercise can give, each shown by at least two scenarios made in
# different ways. (exited, timeout, crashed, output-limit and protocol-error are the sandbox tests' part.)
ENGINE_CODES = {
    "syntax-error",
    "import-error",
    "missing-entry-point",
    "exception",
    "wrong-type",
    "shape-mismatch",
    "dtype-mismatch",
    "non-finite",
    "values-mismatch",
}


def test_every_code_has_two_scenarios() -> None:
    from grader.exercise.spec import load_exercise

    catalog = {m.code for m in load_exercise(ROOT / "exercises" / "train-eval-dropout").catalog.mistake}
    seen: dict[str, int] = {}
    for scenario in SCENARIOS:
        for code in set(json.loads((scenario / "expected.json").read_text())["diagnoses"]):
            seen[code] = seen.get(code, 0) + 1
    assert {code: seen.get(code, 0) for code in catalog | ENGINE_CODES if seen.get(code, 0) < 2} == {}


def test_correct_scenarios_come_in_several_styles() -> None:
    passing = [s for s in SCENARIOS if json.loads((s / "expected.json").read_text())["status"] == "passed"]
    assert len(passing) >= 6
    assert all(json.loads((s / "expected.json").read_text())["diagnoses"] == [] for s in passing)


def test_every_code_is_documented_in_the_readme() -> None:
    from grader.exercise.spec import load_exercise

    readme = (ROOT / "README.md").read_text()
    catalog = {m.code for m in load_exercise(ROOT / "exercises" / "train-eval-dropout").catalog.mistake}
    runtime = {"exited", "timeout", "crashed", "output-limit", "protocol-error"}
    missing = sorted(code for code in catalog | ENGINE_CODES | runtime if f"`{code}`" not in readme)
    assert missing == []
