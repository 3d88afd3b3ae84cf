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
    for code, text in facts.get("message_contains", {}).items():
        assert text in diagnoses[code].message
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
