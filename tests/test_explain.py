"""The catalog's findings (variants and analysis) agree with the evidence, and are optional: a catalog stage
that fails leaves the grade standing, with a note, instead of turning it into a fault."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from grader.exercise.cases import Case
from grader.exercise.catalog import Catalog, Mistake
from grader.exercise.evidence import Finding, Observation
from grader.exercise.spec import load_exercise
from grader.pipeline.compare import compare_arrays
from grader.pipeline.grading import GradeOptions, grade_file
from grader.pipeline.mistakes import load_analysis, observations, on_wrong_values, variant_findings
from grader.render.terminal import make_console, render_report
from grader.report.schema import CaseResult
from tests.conftest import ROOT, copy_toy_exercise

RTOL, ATOL = 1e-5, 1e-6


def case(case_id: str) -> Case:
    group, _, mode = case_id.partition("/")
    return Case(case_id, case_id, (), (), 1.0, False, group=group, labels=(("train", mode),))


def result(case_id: str, expected: np.ndarray, actual: np.ndarray) -> CaseResult:
    comparison = compare_arrays(actual, expected, rtol=RTOL, atol=ATOL)
    status = "passed" if comparison.ok else "failed"
    return CaseResult(
        id=case_id,
        title=case_id,
        status=status,
        weight=1.0,
        score=float(comparison.ok),
        inputs={},
        message=comparison.message,
        comparison=comparison,
    )


ONES = np.ones(4, np.float32)


@pytest.mark.parametrize(
    ("actual", "values_right"),
    [
        (ONES, True),  # passed
        (ONES.astype(np.float64), True),  # fails on its dtype alone
        (ONES + 1, False),  # fails on its values
        ((ONES + 1).astype(np.float64), False),  # on both
    ],
)
def test_an_observation_is_passed_when_its_values_are_right(actual: np.ndarray, values_right: bool) -> None:
    found = observations([case("a/eval")], [result("a/eval", ONES, actual)], {"a/eval": actual}, {"a/eval": ONES})
    assert [o.passed for o in found] == [values_right]


@pytest.mark.parametrize(
    ("cases", "kept"),
    [
        (["values", "dtype"], [["values"]]),
        (["dtype", "passed"], []),  # nothing left to rest on: the finding goes
        (["values", "other-values"], [["values", "other-values"]]),
    ],
)
def test_findings_keep_only_the_cases_whose_values_are_wrong(cases: list[str], kept: list[list[str]]) -> None:
    results = [
        result("values", ONES, ONES + 1),
        result("other-values", ONES, ONES * 3),
        result("dtype", ONES, ONES.astype(np.float64)),
        result("passed", ONES, ONES),
    ]
    found = on_wrong_values([Finding("eval-mismatch", cases, "evidence")], results)
    assert [f.cases for f in found] == kept


def test_eval_outputs_wrong_on_dtype_alone_do_not_make_eval_mismatch() -> None:
    """float64 outputs from a Dropout of the wrong rate: the eval cases fail on their dtype only, so the
    mistake is the rate (train cases), not the Dense layer (eval cases)."""
    rng = np.random.default_rng(0)
    cases, results, actual, expected = [], [], {}, {}
    for i, n in enumerate([4, 1, 3, 4, 16, 16, 64, 64]):
        evaluation = rng.standard_normal(n).astype(np.float32)
        train = np.where(rng.random(n) < 0.5, 2 * evaluation, 0).astype(np.float32)
        own_train = np.where(rng.random(n) < 0.7, evaluation / 0.7, 0)  # rate 0.3, computed in float64
        for mode, exp, act in (("train", train, own_train), ("eval", evaluation, evaluation.astype(np.float64))):
            case_id = f"g{i}/{mode}"
            cases.append(case(case_id))
            results.append(result(case_id, exp, act))
            actual[case_id], expected[case_id] = act, exp
    assert {r.comparison.kind for r in results if r.id.endswith("/eval")} == {"dtype-mismatch"}
    analyze = load_analysis(load_exercise(ROOT / "exercises" / "train-eval-dropout"))
    assert analyze is not None

    findings = analyze(observations(cases, results, actual, expected), rtol=RTOL, atol=ATOL)

    assert [f.code for f in findings] == ["dropout-rate-wrong"]
    assert all(c.endswith("/train") for c in findings[0].cases)


CATALOG = """
analysis = "analysis.py"
variants = "variants.py"

[[mistake]]
code = "adds-one"
title = "one added"
explanation = "You add one to every element."
hint = "Return x times factor, and nothing more."
variants = ["adds_one"]
"""
VARIANTS = """
import numpy as np

def adds_one(factor, x):
    return (np.asarray(x) * np.float32(factor) + 1).astype(np.float32)
"""
ANALYSIS = """
def analyze(observations, *, rtol, atol):
    return []
"""
ADDS_ONE = """
import numpy as np

def scale(factor, x):
    return (np.asarray(x) * np.float32(factor) + 1).astype(np.float32)
"""


def toy_with_catalog(tmp_path: Path, *, variants: str, analysis: str) -> list[Path]:
    folder = copy_toy_exercise(tmp_path)
    spec = folder / "exercise.toml"
    spec.write_text(spec.read_text().replace("hints = [", 'mistakes = "mistakes.toml"\nhints = [', 1))
    (folder / "mistakes.toml").write_text(CATALOG)
    (folder / "variants.py").write_text(variants)
    (folder / "analysis.py").write_text(analysis)
    return [folder.parent]


def grade_adds_one(tmp_path: Path, cache_dir: Path, roots: list[Path]):
    submission = tmp_path / "submission.py"
    submission.write_text(ADDS_ONE)
    return grade_file(
        submission, exercise_id="toy-scale", options=GradeOptions(cache_dir=cache_dir, exercise_roots=roots)
    )


def test_a_working_catalog_names_the_mistake(tmp_path: Path, cache_dir: Path) -> None:
    report = grade_adds_one(tmp_path, cache_dir, toy_with_catalog(tmp_path, variants=VARIANTS, analysis=ANALYSIS))
    assert [d.code for d in report.diagnoses] == ["adds-one"]
    assert report.notes == []


def test_failing_catalog_stages_leave_the_grade_with_notes(tmp_path: Path, cache_dir: Path) -> None:
    roots = toy_with_catalog(
        tmp_path,
        variants="raise RuntimeError('the variants are broken')\n",
        analysis="def analyze(observations, *, rtol, atol):\n    raise ZeroDivisionError('the analysis is broken')\n",
    )

    report = grade_adds_one(tmp_path, cache_dir, roots)

    assert report.status == "failed"
    assert (report.score, report.max_score) == (0.0, 4.0)
    assert [c.status for c in report.cases] == ["failed", "failed", "failed"]
    assert [d.code for d in report.diagnoses] == ["values-mismatch"]
    assert len(report.notes) == 2
    assert "variants" in report.notes[0] and "RuntimeError: the variants are broken" in report.notes[0]
    assert "analysis" in report.notes[1] and "ZeroDivisionError: the analysis is broken" in report.notes[1]
    buffer = io.StringIO()
    render_report(report, make_console(color=False, file=buffer, width=100))
    assert "note: known mistakes were not checked against their variants" in buffer.getvalue()


def test_an_analysis_that_cannot_be_imported_is_a_note(tmp_path: Path, cache_dir: Path) -> None:
    # A variant that matches nothing leaves the work to the analysis, which fails to import.
    variants = VARIANTS.replace("+ 1", "+ 2")
    roots = toy_with_catalog(tmp_path, variants=variants, analysis="import a_module_that_is_not_there\n")

    report = grade_adds_one(tmp_path, cache_dir, roots)

    assert report.status == "failed" and report.score == 0.0
    assert [d.code for d in report.diagnoses] == ["values-mismatch"]
    assert len(report.notes) == 1 and "ModuleNotFoundError" in report.notes[0]


@pytest.mark.parametrize(("off_by", "named"), [(1e-3, True), (1e-1, False)])
def test_a_variant_is_matched_leaf_by_leaf_within_each_leafs_tolerance(off_by: float, named: bool) -> None:
    """A tree output matches a variant when every leaf is within its own tolerance, as the grading compares
    it: the statistics leaf here allows 1e-2, the output leaf only the default."""
    catalog = Catalog(
        variants="variants.py",
        mistake=[Mistake(code="slow-average", title="t", explanation="e", hint="h", variants=["slow"])],
    )
    expected = (np.zeros(4, np.float32), {"mean": np.zeros(3, np.float32)})
    variant = (np.ones(4, np.float32), {"mean": np.full(3, 0.5, np.float32)})
    actual = {c: (variant[0].copy(), {"mean": variant[1]["mean"] + np.float32(off_by)}) for c in ("a", "b")}
    observed = [
        Observation(case_id=c, group=c, labels={}, args=(), expected=expected, actual=actual[c], passed=False)
        for c in ("a", "b")
    ]
    outputs = {f"slow::{c}": variant for c in ("a", "b")}
    found = variant_findings(
        catalog, observed, actual, outputs, rtol=RTOL, atol=ATOL, tolerances={'[1]["mean"]': (0.0, 1e-2)}
    )
    assert [f.code for f in found] == (["slow-average"] if named else [])
    # Without the leaf's own tolerance, the same outputs are another computation.
    assert variant_findings(catalog, observed, actual, outputs, rtol=RTOL, atol=ATOL) == []
