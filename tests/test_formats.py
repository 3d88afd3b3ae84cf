"""The CI formats, each checked against what reads it: a schema written from the format's specification."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from lxml import etree

from grader.render.github import render_annotations, render_summary
from grader.render.gradescope import render_gradescope
from grader.render.junit import render_junit
from tests.conftest import ROOT

FORMATS = ROOT / "docs" / "formats"
# GitHub's workflow command: ::name key=value,key=value::message, with %, CR, LF escaped (and : , in values).
WORKFLOW_COMMAND = re.compile(
    r"^::(error|warning|notice)(?: ((?:[a-zA-Z]+=[^,:\r\n]*)(?:,[a-zA-Z]+=[^,:\r\n]*)*))?::(.*)$"
)


@pytest.fixture(scope="module")
def reports(grade) -> dict:
    names = ["correct.py", "wrong_inverted_flag.py", "broken_syntax.py", "wrong_float_seed.py"]
    return {name: grade(ROOT / "submissions" / name) for name in names}


def test_gradescope_results_validate(reports: dict) -> None:
    schema = json.loads((FORMATS / "gradescope-results.schema.json").read_text())
    for name, report in reports.items():
        results = json.loads(render_gradescope(report))
        jsonschema.validate(results, schema)
        assert results["score"] == report.score, name
        assert sum(t["max_score"] for t in results["tests"]) == report.max_score
        assert [t["status"] == "passed" for t in results["tests"]] == [c.status == "passed" for c in report.cases]


def test_gradescope_schema_refuses_what_the_spec_does_not_allow() -> None:
    schema = json.loads((FORMATS / "gradescope-results.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"score": 1, "tests": [{"status": "error"}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"score": 1, "visibility": "sometimes"}, schema)


def test_junit_validates_against_the_xsd(reports: dict) -> None:
    schema = etree.XMLSchema(etree.parse(str(FORMATS / "junit.xsd")))
    for name, report in reports.items():
        document = etree.fromstring(render_junit(report).encode())
        schema.assertValid(document)
        suite = document.find("testsuite")
        ungraded = report.status == "error"  # one errored test says why, before the cases it kept from running
        assert suite is not None and int(suite.get("tests")) == len(report.cases) + ungraded, name
        assert int(suite.get("errors")) == sum(c.status == "error" for c in report.cases) + ungraded, name
        failures = sum(c.status == "failed" for c in report.cases)
        assert int(suite.get("failures")) == failures == len(suite.findall("testcase/failure"))
        assert len(suite.findall("testcase/skipped")) == sum(c.status == "skipped" for c in report.cases)


def test_junit_failure_message_carries_the_diagnosis(reports: dict) -> None:
    document = etree.fromstring(render_junit(reports["wrong_inverted_flag.py"]).encode())
    failure = document.find("testsuite/testcase/failure")
    assert failure is not None and failure.get("type") == "deterministic-inverted"
    assert failure.get("message").startswith("[deterministic-inverted]")


def test_github_annotations_parse_and_point_at_lines(reports: dict) -> None:
    for name, report in reports.items():
        lines = render_annotations(report, root=ROOT).splitlines()
        assert lines, name
        for line in lines:
            match = WORKFLOW_COMMAND.match(line)
            assert match, line
            assert "\n" not in match.group(3) and "\r" not in match.group(3)
    inverted = render_annotations(reports["wrong_inverted_flag.py"], root=ROOT).splitlines()[0]
    assert inverted.startswith("::error file=submissions/wrong_inverted_flag.py,line=11,title=deterministic-inverted")
    assert render_annotations(reports["correct.py"], root=ROOT).startswith("::notice ")


def test_github_summary_is_a_markdown_table(reports: dict) -> None:
    summary = render_summary(reports["wrong_inverted_flag.py"])
    rows = [line for line in summary.splitlines() if line.startswith("| ")]
    assert rows[0] == "| case | status | detail |" and len(rows) == 1 + 20
    assert "**deterministic-inverted**" in summary


def test_github_format_appends_the_summary(cache_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import cli_env

    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    env = cli_env(cache_dir, GITHUB_STEP_SUMMARY=str(summary))
    result = subprocess.run(
        [sys.executable, "-m", "grader", "grade", "submissions/broken_syntax.py", "-f", "github"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stdout.startswith("::error file=submissions/broken_syntax.py,line=6,title=syntax-error")
    assert summary.read_text().startswith("earlier step\n### ")
