"""Golden scenarios: one folder per submission, holding the facts its report must show.

Each ``tests/scenarios/<exercise>/<name>/expected.json`` names a submission (its own ``submission.py``, or a
file under the repository by ``submission``) and the facts: status, score, diagnosis codes in order, and any
of case statuses, lines a diagnosis points at, text a diagnosis message contains, captured output. The
scenarios of one exercise are graded together, as a batch (two at a time), the first time one is asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.exercise.cases import build_cases
from grader.exercise.spec import discover_exercises
from grader.pipeline.grading import GradeOptions
from grader.report.schema import Report
from tests.conftest import ROOT, grade_as_batch

SCENARIO_ROOT = Path(__file__).parent / "scenarios"
SCENARIOS = sorted(SCENARIO_ROOT.glob("*/*/expected.json"))
# The codes every grading can give, whatever the exercise, each shown by at least two scenarios made in
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


def _facts(expected: Path) -> dict:
    return json.loads(expected.read_text(encoding="utf-8"))


def _submission(expected: Path) -> Path:
    facts = _facts(expected)
    return ROOT / facts["submission"] if "submission" in facts else expected.parent / "submission.py"


class _Graded:
    """The reports of every scenario of an exercise, graded in one batch on first use."""

    def __init__(self, cache_dir: Path) -> None:
        self._cache_dir = cache_dir
        self._reports: dict[str, dict[Path, Report]] = {}

    def report(self, expected: Path) -> Report:
        exercise = expected.parent.parent.name
        if exercise not in self._reports:
            self._reports[exercise] = self._grade(exercise)
        return self._reports[exercise][_submission(expected)]

    def _grade(self, exercise: str) -> dict[Path, Report]:
        paths = list(dict.fromkeys(_submission(e) for e in SCENARIOS if e.parent.parent.name == exercise))
        # At the default level (bwrap where it works), the batch's children forked from a server that
        # imported jax once, each into a sandbox of its own: as a course's batch grades them.
        options = GradeOptions(cache_dir=self._cache_dir)
        return grade_as_batch(paths, options, exercise)


@pytest.fixture(scope="session")
def graded(cache_dir: Path) -> _Graded:
    return _Graded(cache_dir)


def _max_score(exercise_id: str) -> float:
    return sum(case.weight for case in build_cases(discover_exercises()[exercise_id]))


@pytest.mark.parametrize("expected", SCENARIOS, ids=[f"{p.parent.parent.name}/{p.parent.name}" for p in SCENARIOS])
def test_scenario(expected: Path, graded: _Graded) -> None:
    facts = _facts(expected)
    report = graded.report(expected)
    exercise = expected.parent.parent.name

    assert report.exercise.id == exercise
    assert report.status == facts["status"], report.message
    assert [d.code for d in report.diagnoses] == facts["diagnoses"]
    assert report.score == facts["score"]
    assert report.max_score == facts.get("max_score", _max_score(exercise))
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


def test_scenarios_are_filed_under_an_exercise() -> None:
    exercises = set(discover_exercises())
    assert {p.parent.parent.name for p in SCENARIOS} <= exercises
    assert list(SCENARIO_ROOT.glob("*/expected.json")) == [], "a scenario outside an exercise's folder"


def test_every_bundled_submission_has_a_scenario() -> None:
    named = {str(_submission(p).relative_to(ROOT)) for p in SCENARIOS if "submission" in _facts(p)}
    bundled = {str(p.relative_to(ROOT)) for p in (ROOT / "submissions").rglob("*.py")}
    assert bundled - named == set()


@pytest.mark.parametrize("exercise_id", sorted(discover_exercises()))
def test_every_catalog_code_has_two_scenarios(exercise_id: str) -> None:
    catalog = {m.code for m in discover_exercises()[exercise_id].catalog.mistake}
    seen = _codes_seen([p for p in SCENARIOS if p.parent.parent.name == exercise_id])
    assert {code: seen.get(code, 0) for code in catalog if seen.get(code, 0) < 2} == {}


def test_every_engine_code_has_two_scenarios() -> None:
    seen = _codes_seen(SCENARIOS)
    assert {code: seen.get(code, 0) for code in ENGINE_CODES if seen.get(code, 0) < 2} == {}


def _codes_seen(scenarios: list[Path]) -> dict[str, int]:
    seen: dict[str, int] = {}
    for scenario in scenarios:
        for code in set(_facts(scenario)["diagnoses"]):
            seen[code] = seen.get(code, 0) + 1
    return seen
