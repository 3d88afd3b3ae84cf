"""Outputs as trees: pure functions over structures, and a test exercise whose entry point takes a 2-D batch
and returns ``(array, {"mean": array, "var": array})``, graded and rendered in every format."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from grader.errors import ReferenceSolutionError
from grader.pipeline import tree
from grader.pipeline.compare import compare_tree
from grader.pipeline.grading import GradeOptions, grade_file
from grader.render.github import render_annotations
from grader.render.gradescope import render_gradescope
from grader.render.junit import render_junit
from grader.render.terminal import make_console, render_report
from grader.report.schema import Report
from grader.sandbox.protocol import ProtocolError, parse_message
from tests.conftest import FIXTURES

TREE_EXERCISES = FIXTURES / "tree-exercises"
F32 = np.float32
A = np.arange(4, dtype=F32)
EXPECTED = (A, {"mean": np.ones(2, F32), "var": np.zeros(2, F32)})


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (A, "an array"),
        (EXPECTED, "a tuple of 2: (array, dict with keys mean, var)"),
        ([A, A], "a list of 2: (array, array)"),
        ({}, "an empty dict"),
    ],
)
def test_describe(value, words: str) -> None:
    assert tree.describe(value) == words


def test_paths_name_every_leaf() -> None:
    assert [tree.path_text(p) for p, _ in tree.leaves(EXPECTED)] == ["[0]", '[1]["mean"]', '[1]["var"]']
    assert tree.path_text(()) == "output"


@pytest.mark.parametrize(
    ("actual", "kind", "ok", "says"),
    [
        (EXPECTED, "match", True, "matches (3 leaves)"),
        ([A, EXPECTED[1]], "match", True, "a list where a tuple is expected"),
        (A, "structure-mismatch", False, "expected a tuple of 2: (array, dict with keys mean, var); got an array"),
        ((A, {"mean": np.ones(2, F32)}), "structure-mismatch", False, "missing key var"),
        ((A, {**EXPECTED[1], "std": A}), "structure-mismatch", False, "unexpected key std"),
        ((A,), "structure-mismatch", False, "got a tuple of 1"),
        ((A, {"mean": np.ones(2, F32), "var": np.ones(2, F32)}), "values-mismatch", False, '[1]["var"]: 2 of 2'),
        ((A, {"mean": np.ones(3, F32), "var": np.zeros(2, F32)}), "shape-mismatch", False, '[1]["mean"]: expected'),
        ((A.astype(np.float64), EXPECTED[1]), "dtype-mismatch", False, "[0]: values match"),
        # Wrong values after a leaf wrong in its dtype alone: the case is a values-mismatch, led by the wrong leaf.
        (
            (A.astype(np.float64), {"mean": np.ones(2, F32), "var": np.ones(2, F32)}),
            "values-mismatch",
            False,
            '[1]["var"]: 2 of 2',
        ),
    ],
)
def test_compare_tree(actual, kind: str, ok: bool, says: str) -> None:
    result = compare_tree(actual, EXPECTED, rtol=1e-5, atol=1e-6)
    assert (result.kind, result.ok) == (kind, ok)
    assert says in result.message
    if kind != "structure-mismatch":
        assert [leaf.path for leaf in result.leaves] == ["[0]", '[1]["mean"]', '[1]["var"]']
        failing = [leaf.path for leaf in result.leaves if not leaf.ok and leaf.kind == kind]
        assert result.path == (failing[0] if failing else "[0]")  # the numbers shown are the lead leaf's


def test_a_leaf_can_have_its_own_tolerance() -> None:
    near = (A, {"mean": np.ones(2, F32), "var": np.full(2, 5e-6, F32)})
    assert not compare_tree(near, EXPECTED, rtol=1e-5, atol=1e-6).ok
    assert compare_tree(near, EXPECTED, rtol=1e-5, atol=1e-6, tolerances={'[1]["var"]': (1e-5, 1e-5)}).ok


def _wire_tree(depth: int) -> dict:
    value: dict = {"kind": "object", "type": "str", "repr": "x"}
    for _ in range(depth):
        value = {"kind": "tree", "node": "tuple", "type": "tuple", "items": [value]}
    return value


def test_the_wire_bounds_trees() -> None:
    ok = {"type": "result", "case": "a", "value": _wire_tree(8)}
    assert parse_message(json.dumps(ok).encode()).value.kind == "tree"
    for value in (
        _wire_tree(9),
        {"kind": "tree", "node": "list", "type": "list", "items": [_wire_tree(0)] * 65},
        {"kind": "tree", "node": "dict", "type": "dict", "keys": ["a"], "items": []},
    ):
        with pytest.raises(ProtocolError):
            parse_message(json.dumps({"type": "result", "case": "a", "value": value}).encode())


SUBMISSIONS = {
    "correct": "def batch_stats(x):\n    return 2 * x, {'mean': x.mean(0), 'var': x.var(0)}\n",
    "as-list": "def batch_stats(x):\n    return [2 * x, {'mean': x.mean(0), 'var': x.var(0)}]\n",
    "missing-key": "def batch_stats(x):\n    return 2 * x, {'mean': x.mean(0)}\n",
    "wrong-leaf": "def batch_stats(x):\n    return 2 * x, {'mean': x.mean(0), 'var': x.var(0, ddof=1)}\n",
    "array-only": "def batch_stats(x):\n    return 2 * x\n",
    "deep": "def batch_stats(x):\n    v = x\n    for _ in range(20):\n        v = (v,)\n    return v\n",
}


@pytest.fixture(scope="module")
def tree_reports(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict[str, Report]:
    folder = tmp_path_factory.mktemp("tree-submissions")
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TREE_EXERCISES], seed=5)
    reports = {}
    for name, source in SUBMISSIONS.items():
        path = folder / f"{name}.py"
        path.write_text("import numpy as np\n" + source, encoding="utf-8")
        reports[name] = grade_file(path, exercise_id="toy-stats", options=options)
    return reports


def test_correct_trees_pass_and_a_list_is_compared_as_the_tuple(tree_reports: dict[str, Report]) -> None:
    for name in ("correct", "as-list"):
        report = tree_reports[name]
        assert report.status == "passed", (name, report.message)
        assert len(report.cases) == 5  # three fixed cases and two fresh 2-D batches
    assert all(not c.comparison.notes for c in tree_reports["correct"].cases)
    assert all("a list where a tuple is expected" in c.comparison.notes[0] for c in tree_reports["as-list"].cases)


@pytest.mark.parametrize(
    ("name", "code", "detail"),
    [
        ("missing-key", "structure-mismatch", "[1]: missing key var"),
        ("array-only", "structure-mismatch", "expected a tuple of 2: (array, dict with keys mean, var); got an array"),
        ("wrong-leaf", "values-mismatch", '[1]["var"]'),
        ("deep", "structure-mismatch", "nested deeper than 8"),
    ],
)
def test_wrong_trees_name_the_leaf_in_every_format(
    tree_reports: dict[str, Report], name: str, code: str, detail: str
) -> None:
    report = tree_reports[name]
    assert report.status == "failed"
    assert code in [d.code for d in report.diagnoses]
    failing = [c for c in report.cases if c.status == "failed"]
    assert failing and all(detail in c.message for c in failing)
    document = json.loads(report.model_dump_json())
    assert tuple(int(part) for part in document["schema_version"].split(".")) >= (1, 1)  # trees came in 1.1
    if code == "values-mismatch":
        comparison = failing[0].comparison
        assert comparison.path == '[1]["var"]' and comparison.kind == "values-mismatch"
        assert [leaf.ok for leaf in comparison.leaves] == [True, True, False]
    gradescope = json.loads(render_gradescope(report))
    assert any(detail in test["output"] for test in gradescope["tests"])
    junit = etree.fromstring(render_junit(report).encode())
    assert any(detail in (f.get("message") or "") for f in junit.iter("failure"))
    assert detail.replace('"', "%22") in render_annotations(report) or detail in render_annotations(report)
    console = make_console(color=False, file=io.StringIO(), width=200)
    render_report(report, console)
    assert detail in console.file.getvalue()


def test_a_reference_that_breaks_its_returns_spec_is_a_fault(tmp_path: Path, cache_dir: Path) -> None:
    shutil.copytree(TREE_EXERCISES, tmp_path / "tree-exercises")
    shutil.copytree(FIXTURES / "reference", tmp_path / "reference")
    spec = tmp_path / "tree-exercises" / "toy-stats" / "exercise.toml"
    spec.write_text(spec.read_text().replace('shape = "(x[-1],)", atol', 'shape = "(x[0],)", atol'))
    path = tmp_path / "s.py"
    path.write_text("def batch_stats(x):\n    return x\n", encoding="utf-8")
    options = GradeOptions(cache_dir=None, exercise_roots=[tmp_path / "tree-exercises"])
    with pytest.raises(ReferenceSolutionError, match=r"rule '\(x\[0\],\)' gives"):
        grade_file(path, exercise_id="toy-stats", options=options)
