"""The CI formats, each checked against what reads it: a schema written from the format's specification."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from lxml import etree
from rich.cells import cell_len

from grader.render.formats import FILE_WIDTH, FORMATS, Context, as_text
from grader.render.github import render_annotations, render_summary
from grader.render.gradescope import render_gradescope
from grader.render.junit import render_junit
from grader.report.schema import BatchEntry, BatchReport, Report
from tests.conftest import ROOT

FORMATS_DOCS = ROOT / "docs" / "formats"
# GitHub's workflow command: ::name key=value,key=value::message, with %, CR, LF escaped (and : , in values).
WORKFLOW_COMMAND = re.compile(
    r"^::(error|warning|notice)(?: ((?:[a-zA-Z]+=[^,:\r\n]*)(?:,[a-zA-Z]+=[^,:\r\n]*)*))?::(.*)$"
)


@pytest.fixture(scope="module")
def reports(grade) -> dict:
    names = ["correct.py", "wrong_inverted_flag.py", "broken_syntax.py", "wrong_float_seed.py"]
    return {name: grade(ROOT / "submissions" / name) for name in names}


def test_gradescope_results_validate(reports: dict) -> None:
    schema = json.loads((FORMATS_DOCS / "gradescope-results.schema.json").read_text())
    for name, report in reports.items():
        results = json.loads(render_gradescope(report))
        jsonschema.validate(results, schema)
        assert results["score"] == report.score, name
        assert sum(t["max_score"] for t in results["tests"]) == report.max_score
        assert [t["status"] == "passed" for t in results["tests"]] == [c.status == "passed" for c in report.cases]


def test_gradescope_schema_refuses_what_the_spec_does_not_allow() -> None:
    schema = json.loads((FORMATS_DOCS / "gradescope-results.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"score": 1, "tests": [{"status": "error"}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"score": 1, "visibility": "sometimes"}, schema)


def test_junit_validates_against_the_xsd(reports: dict) -> None:
    schema = etree.XMLSchema(etree.parse(str(FORMATS_DOCS / "junit.xsd")))
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


# --- the registry: one entry per format, each read back as its consumers read it ---------------------------

TOY_WRONG = 'import numpy as np\n\ndef scale(factor, x):\n    print("café ✓ <b>")\n    return np.asarray(x, "f4")\n'


@pytest.fixture(scope="module")
def toy(grade_toy, tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, BatchReport]:
    """A failed report (non-ASCII output in it), and a batch of it with a skipped and a faulted entry."""
    graded = grade_toy(TOY_WRONG, tmp_path_factory.mktemp("toy"))
    short = graded.submission.model_copy(update={"path": "class/a.py"})  # a batch's summary keeps it whole
    report = graded.model_copy(update={"submission": short})
    batch = BatchReport(
        total=3,
        counts={report.status: 1, "skipped": 1, "fault": 1},
        isolation="process",
        jobs=1,
        submissions=[
            BatchEntry(path=report.submission.path, status=report.status, message=report.message, report=report),
            BatchEntry(path="linked/b.py", status="skipped", message="reached through a symbolic link: not graded"),
            BatchEntry(path="c.py", status="fault", message="internal error: the reference failed"),
        ],
    )
    return report, batch


def _names(document: Report | BatchReport) -> list[str]:
    """What every document must name: the case ids of a report, each submission of a batch."""
    if isinstance(document, Report):
        return [case.id for case in document.cases]
    return [entry.path for entry in document.submissions]


def _read_rich(text: str, document: Report | BatchReport) -> None:
    assert "\x1b" not in text and all(name in text for name in _names(document))


def _read_json(text: str, document: Report | BatchReport) -> None:
    assert type(document).model_validate_json(text) == document


def _read_gradescope(text: str, document: Report | BatchReport) -> None:
    results = json.loads(text)
    jsonschema.validate(results, json.loads((FORMATS_DOCS / "gradescope-results.schema.json").read_text()))
    assert [test["name"] for test in results["tests"]] == _names(document)


def _read_junit(text: str, document: Report | BatchReport) -> None:
    root = etree.fromstring(text.encode())
    etree.XMLSchema(etree.parse(str(FORMATS_DOCS / "junit.xsd"))).assertValid(root)
    if isinstance(document, Report):
        assert [case.get("name") for case in root.iter("testcase")] == _names(document)
    else:
        assert [suite.get("file") for suite in root.iter("testsuite")] == _names(document)


def _read_github(text: str, document: Report | BatchReport) -> None:
    lines = text.splitlines()
    assert lines and all(WORKFLOW_COMMAND.match(line) for line in lines), text
    files = {re.search(r"file=([^,:]*)", line).group(1) for line in lines}  # type: ignore[union-attr]
    paths = [document.submission.path] if isinstance(document, Report) else _names(document)
    assert files == set(paths)


# How each format's documents are read back: what reads that format (a person, a JSON or JUnit reader,
# Gradescope, GitHub). A format added to the registry needs its reader here.
READERS = {
    "rich": _read_rich,
    "json": _read_json,
    "gradescope": _read_gradescope,
    "junit": _read_junit,
    "github": _read_github,
}
MEDIA_PARSERS = {"application/json": json.loads, "application/xml": lambda text: etree.fromstring(text.encode())}


def test_every_format_in_the_registry_has_a_reader() -> None:
    assert set(READERS) == set(FORMATS)


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_renders_a_report_that_reads_back(toy: tuple, name: str, tmp_path: Path) -> None:
    report, _batch = toy
    fmt = FORMATS[name]
    text = as_text(fmt.report(report, Context(workspace=tmp_path)))
    MEDIA_PARSERS.get(fmt.media_type, str)(text)  # what its media type says it is
    READERS[name](text, report)
    assert fmt.suffix.startswith(".") and fmt.description


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_renders_a_batch_or_says_why_not(toy: tuple, name: str, tmp_path: Path) -> None:
    _report, batch = toy
    fmt = FORMATS[name]
    if fmt.batch is None:
        assert fmt.one_submission  # the refusal names what its document is
        return
    text = as_text(fmt.batch(batch, Context(workspace=tmp_path)))
    MEDIA_PARSERS.get(fmt.media_type, str)(text)
    READERS[name](text, batch)


@pytest.mark.parametrize("name", [name for name, fmt in FORMATS.items() if fmt.media_type != "text/plain"])
def test_a_machine_format_escaped_for_an_ascii_stdout_reads_back_the_same(toy: tuple, name: str) -> None:
    report, _batch = toy
    fmt = FORMATS[name]
    text = as_text(fmt.report(report, Context()))
    assert text.isascii() == (name == "gradescope")  # "café ✓" as printed; Gradescope's JSON escapes it itself
    escaped = fmt.encoded(text, "ascii")
    assert escaped.isascii()
    parse = MEDIA_PARSERS[fmt.media_type]
    if fmt.media_type == "application/json":
        assert parse(escaped) == parse(text)
    else:
        assert etree.tostring(parse(escaped), method="c14n") == etree.tostring(parse(text), method="c14n")


def test_only_the_github_format_has_a_step_summary(toy: tuple) -> None:
    report, batch = toy
    assert [name for name, fmt in FORMATS.items() if fmt.step_summary or fmt.batch_step_summary] == ["github"]
    assert FORMATS["github"].step_summary(report) == render_summary(report)  # type: ignore[misc]
    assert "linked/b.py" in FORMATS["github"].batch_step_summary(batch)  # type: ignore[misc]


def test_the_rich_document_in_a_file_is_plain_at_100_columns_unless_colour_is_asked(toy: tuple) -> None:
    report, _batch = toy
    document = FORMATS["rich"].report(report, Context())
    plain, coloured = as_text(document), as_text(document, color=True)
    assert "\x1b" not in plain and "\x1b[" in coloured
    assert max(cell_len(line) for line in plain.splitlines()) <= FILE_WIDTH


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_load_renderers_loads_what_rendering_a_report_imports(name: str, reports: dict, tmp_path: Path) -> None:
    """grade loads the renderers while the child runs (``OutputFormat.modules``): rendering after that
    imports none of the grader's modules, so the report does not wait on them."""
    saved = tmp_path / "report.json"
    saved.write_text(reports["wrong_inverted_flag.py"].model_dump_json(), encoding="utf-8")
    code = f"""
import sys
from pathlib import Path
from grader.report.schema import Report
from grader.render.formats import FORMATS, Context, as_text, load_renderers
report = Report.model_validate_json(Path({str(saved)!r}).read_text(encoding="utf-8"))
fmt = FORMATS[{name!r}]
load_renderers([fmt])
before = set(sys.modules)
document = fmt.report(report, Context(workspace=Path.cwd()))
as_text(document)
if fmt.step_summary is not None:
    fmt.step_summary(report)
print(sorted(m for m in set(sys.modules) - before if m.startswith("grader")))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
