"""The report as JUnit XML (testsuites/testsuite/testcase), which GitLab, Jenkins and GitHub actions show."""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET

from grader.report.schema import BatchEntry, BatchReport, CaseResult, Comparison, Diagnosis, ErrorInfo, Number, Report

SHOWN_ELEMENTS = 3  # of a comparison's worst elements, in a failure's text


def _number(value: Number | None) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _comparison_lines(comparison: Comparison) -> list[str]:
    """Expected against actual in brief: dtype and shape, then the worst elements."""
    got = comparison.actual_dtype or comparison.actual_type or "nothing"
    shape = f" shape {tuple(comparison.actual_shape)}" if comparison.actual_shape is not None else ""
    lines = [f"expected {comparison.expected_dtype} shape {tuple(comparison.expected_shape)}, got {got}{shape}"]
    rows = {row.index: row for row in comparison.rows}
    for index in [i for i in comparison.worst if i in rows][:SHOWN_ELEMENTS]:
        row = rows[index]
        lines.append(f"  [{index}] expected {_number(row.expected)}, got {_number(row.actual)}")
    return lines


def _error_lines(error: ErrorInfo) -> list[str]:
    lines = [f"{error.type}: {error.message}"]
    lines += [f"  {frame.file}:{frame.line or '?'} in {frame.function}: {frame.code}" for frame in error.frames]
    return lines


def _diagnosis_lines(diagnosis: Diagnosis, path: str) -> list[str]:
    lines = [f"[{diagnosis.code}] {diagnosis.message}"]
    for source in diagnosis.lines:
        lines.append(f"  {path}:{source.line}: {source.text}")
        if source.column is not None:
            lines.append(" " * (len(f"  {path}:{source.line}: ") + source.column - 1) + "^")
    lines += [f"hint: {diagnosis.hint}"] if diagnosis.hint else []
    return lines


def _details(case: CaseResult | None, report: Report) -> str:
    """The text of a failure or an error: what went wrong, expected against actual, then each diagnosis
    with the learner's lines and its hint."""
    lines = [case.message if case is not None else report.message]
    if case is not None and case.comparison is not None:
        lines += _comparison_lines(case.comparison)
    if case is not None and case.error is not None:
        lines += _error_lines(case.error)
    for diagnosis in report.diagnoses:
        if (case.id in diagnosis.cases) if case is not None else not diagnosis.cases:
            lines += ["", *_diagnosis_lines(diagnosis, report.submission.path)]
    return "\n".join(lines)


def _testcase(case: CaseResult, report: Report) -> ET.Element:
    element = ET.Element(
        "testcase",
        {"name": case.id, "classname": report.exercise.id, "time": f"{case.duration_s or 0.0:.3f}"},
    )
    codes = [d.code for d in report.diagnoses if case.id in d.cases]
    message = f"[{', '.join(codes)}] {case.message}" if codes else case.message
    if case.status == "failed":
        failure = ET.SubElement(element, "failure", {"message": message, "type": codes[0] if codes else "failed"})
        failure.text = _details(case, report)
    elif case.status == "error":
        kind = case.error.type if case.error else (codes[0] if codes else "error")
        ET.SubElement(element, "error", {"message": message, "type": kind}).text = _details(case, report)
    elif case.status == "skipped":
        ET.SubElement(element, "skipped", {"message": case.message})
    if not case.output.empty:
        ET.SubElement(element, "system-out").text = case.output.stdout.text
        ET.SubElement(element, "system-err").text = case.output.stderr.text
    return element


def _ungraded_case(report: Report) -> ET.Element:
    """A submission that could not be graded at all (it does not parse, lacks the entry point, fails at
    import): one errored test before its skipped cases, so that every CI reader shows it as broken."""
    element = ET.Element("testcase", {"name": "submission", "classname": report.exercise.id, "time": "0.000"})
    kind = report.diagnoses[0].code if report.diagnoses else "error"
    ET.SubElement(element, "error", {"message": report.message, "type": kind}).text = _details(None, report)
    if not report.output.empty:
        ET.SubElement(element, "system-out").text = report.output.stdout.text
        ET.SubElement(element, "system-err").text = report.output.stderr.text
    return element


def _suite(report: Report) -> ET.Element:
    counts = {s: sum(c.status == s for c in report.cases) for s in ("failed", "error", "skipped")}
    ungraded = report.status == "error" and counts["error"] == 0
    suite = ET.Element(
        "testsuite",
        {
            "name": f"{report.exercise.id}: {report.submission.path}",
            "file": report.submission.path,
            "tests": str(len(report.cases) + ungraded),
            "failures": str(counts["failed"]),
            "errors": str(counts["error"] + ungraded),
            "skipped": str(counts["skipped"]),
            "time": f"{report.duration_s:.3f}",
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("status", report.status),
        ("score", f"{report.score:g}"),
        ("max_score", f"{report.max_score:g}"),
        ("isolation", report.environment.isolation),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    if ungraded:
        suite.append(_ungraded_case(report))
    for case in report.cases:
        suite.append(_testcase(case, report))
    return suite


def _ungraded_suite(entry: BatchEntry) -> ET.Element:
    """A submission of a batch that has no report: one test that errored (a fault) or was skipped."""
    skipped = entry.status == "skipped"
    suite = ET.Element(
        "testsuite",
        {
            "name": entry.path,
            "file": entry.path,
            "tests": "1",
            "failures": "0",
            "errors": "0" if skipped else "1",
            "skipped": "1" if skipped else "0",
            "time": f"{entry.duration_s:.3f}",
        },
    )
    case = ET.SubElement(suite, "testcase", {"name": "grading", "classname": "grader", "time": "0.000"})
    if skipped:
        ET.SubElement(case, "skipped", {"message": entry.message})
    else:
        ET.SubElement(case, "error", {"message": entry.message, "type": entry.status}).text = entry.message
    return suite


# Characters XML 1.0 has no place for (most C0 controls, lone surrogates, U+FFFE and U+FFFF): one of them
# anywhere, a name or a path included, makes the whole document unreadable, a batch's included.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """``text`` with what XML 1.0 cannot hold written as ``\\uXXXX`` (reports escape these already: this
    is the last defence)."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _xml_safe(root: ET.Element) -> None:
    for element in root.iter():
        element.text = _xml_text(element.text) if element.text else element.text
        for key, value in list(element.attrib.items()):
            element.set(key, _xml_text(value))


def _document(suites: list[ET.Element], name: str, time: float) -> str:
    totals = {key: sum(int(s.get(key, "0")) for s in suites) for key in ("tests", "failures", "errors")}
    root = ET.Element("testsuites", {"name": name, **{k: str(v) for k, v in totals.items()}, "time": f"{time:.3f}"})
    root.extend(suites)
    _xml_safe(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_junit(report: Report) -> str:
    """One submission: a ``testsuite`` of its cases inside ``testsuites``."""
    return _document([_suite(report)], f"{report.exercise.id}: {report.submission.path}", report.duration_s)


def render_junit_batch(batch: BatchReport) -> str:
    """A batch: one ``testsuite`` per submission."""
    suites = [_suite(e.report) if e.report is not None else _ungraded_suite(e) for e in batch.submissions]
    return _document(suites, f"grader batch ({len(batch.submissions)} of {batch.total})", batch.duration_s)
