"""JUnit XML as its consumers read it: junitparser (what Python-based reporters use) and the schema Jenkins
validates JUnit reports with. A submission that cannot be graded must read as an error, with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml
from lxml import etree

from grader.render.junit import render_junit, render_junit_batch
from grader.report.schema import BatchEntry, BatchReport, Report
from tests.conftest import ROOT, SUBMISSIONS

FORMATS = ROOT / "docs" / "formats"
SCHEMAS = ("junit.xsd", "jenkins-junit.xsd")
IMPORT_FAILURE = "import json\njson.loads('{')\n\ndef scale(x, factor):\n    return x * factor\n"


def _parse(document: str, tmp_path: Path) -> JUnitXml:
    path = tmp_path / "junit.xml"
    path.write_text(document, encoding="utf-8")
    return JUnitXml.fromfile(str(path))


def _assert_valid(document: str) -> None:
    for name in SCHEMAS:
        etree.XMLSchema(etree.parse(str(FORMATS / name))).assertValid(etree.fromstring(document.encode()))


@pytest.fixture(scope="module")
def ungraded(grade, grade_toy, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Report]:
    return {
        "syntax": grade(SUBMISSIONS / "broken_syntax.py"),
        "entry point": grade(SUBMISSIONS / "misnamed_entry_point.py"),
        "import": grade_toy(IMPORT_FAILURE, tmp_path_factory.mktemp("import")),
    }


@pytest.mark.parametrize("kind", ["syntax", "entry point", "import"])
def test_a_submission_that_cannot_be_graded_reads_as_an_error(ungraded: dict, kind: str, tmp_path: Path) -> None:
    report = ungraded[kind]
    assert report.status == "error" and all(case.status == "skipped" for case in report.cases)
    document = render_junit(report)
    _assert_valid(document)
    xml = _parse(document, tmp_path)
    assert (xml.errors, xml.failures, xml.tests) == (1, 0, len(report.cases) + 1)
    (suite,) = list(xml)
    assert suite.errors == 1 and suite.skipped == len(report.cases)
    first = next(iter(suite))
    (error,) = first.result
    assert isinstance(error, Error) and error.message == report.message
    assert error.type == report.diagnoses[0].code
    assert report.diagnoses[0].message in error.text
    if report.diagnoses[0].hint:
        assert f"hint: {report.diagnoses[0].hint}" in error.text


def test_a_syntax_error_names_the_learners_line(ungraded: dict, tmp_path: Path) -> None:
    document = render_junit(ungraded["syntax"])
    error = next(iter(next(iter(_parse(document, tmp_path))))).result[0]
    assert error.type == "syntax-error"
    assert "submissions/broken_syntax.py:6: def model_train_eval_forward(seed, x, train)" in error.text
    assert "line 6" in error.message


def test_an_import_failure_shows_the_exception(ungraded: dict, tmp_path: Path) -> None:
    report = ungraded["import"]
    error = next(iter(next(iter(_parse(render_junit(report), tmp_path))))).result[0]
    assert "JSONDecodeError" in error.message + error.text, error.text


def test_a_failure_carries_expected_actual_and_the_diagnosis_with_its_hint(grade, tmp_path: Path) -> None:
    report = grade(SUBMISSIONS / "wrong_inverted_flag.py")
    document = render_junit(report)
    _assert_valid(document)
    (suite,) = list(_parse(document, tmp_path))
    assert suite.failures == sum(case.status == "failed" for case in report.cases) > 0
    failed = [case for case in suite if not case.is_passed and not case.is_skipped]
    failure = failed[0].result[0]
    assert isinstance(failure, Failure) and failure.type == "deterministic-inverted"
    assert "expected float32 shape (4,), got float32 shape (4,)" in failure.text
    assert "  [1] expected 3.32486, got 1.66243" in failure.text
    assert "submissions/wrong_inverted_flag.py:11:" in failure.text
    assert "hint: Pass `deterministic=not train`" in failure.text


def test_each_suite_names_its_file(ungraded: dict) -> None:
    report = ungraded["syntax"]
    batch = BatchReport(
        total=2,
        counts={"error": 1, "fault": 1},
        isolation="process",
        jobs=1,
        submissions=[
            BatchEntry(path="a.py", status="error", message=report.message, report=report),
            BatchEntry(path="b.py", status="fault", message="the reference failed"),
        ],
    )
    document = render_junit_batch(batch)
    _assert_valid(document)
    suites = etree.fromstring(document.encode()).findall("testsuite")
    assert [suite.get("file") for suite in suites] == [report.submission.path, "b.py"]
    assert int(etree.fromstring(document.encode()).get("errors")) == 2


def test_the_jenkins_schema_refuses_what_jenkins_does_not_read() -> None:
    schema = etree.XMLSchema(etree.parse(str(FORMATS / "jenkins-junit.xsd")))
    bad = [
        '<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
        '<testcase name="c" file="x.py"/></testsuite></testsuites>',
        '<testsuites><testsuite name="s" tests="1" failures="0"><testcase name="c"/></testsuite></testsuites>',
        '<testsuites time="1.5s"/>',
    ]
    for document in bad:
        assert not schema.validate(etree.fromstring(document)), document
