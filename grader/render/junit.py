"""The report as JUnit XML (testsuites/testsuite/testcase), which GitLab, Jenkins and GitHub actions show."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from grader.schema import CaseResult, Report


def _testcase(case: CaseResult, report: Report) -> ET.Element:
    element = ET.Element(
        "testcase",
        {"name": case.id, "classname": report.exercise.id, "time": f"{case.duration_s or 0.0:.3f}"},
    )
    codes = [d.code for d in report.diagnoses if case.id in d.cases]
    message = f"[{', '.join(codes)}] {case.message}" if codes else case.message
    if case.status == "failed":
        ET.SubElement(element, "failure", {"message": message, "type": codes[0] if codes else "failed"}).text = message
    elif case.status == "error":
        kind = case.error.type if case.error else (codes[0] if codes else "error")
        ET.SubElement(element, "error", {"message": message, "type": kind}).text = message
    elif case.status == "skipped":
        ET.SubElement(element, "skipped", {"message": case.message})
    if not case.output.empty:
        ET.SubElement(element, "system-out").text = case.output.stdout.text
        ET.SubElement(element, "system-err").text = case.output.stderr.text
    return element


def render_junit(report: Report) -> str:
    counts = {s: sum(c.status == s for c in report.cases) for s in ("failed", "error", "skipped")}
    attributes = {
        "name": f"{report.exercise.id}: {report.submission.path}",
        "tests": str(len(report.cases)),
        "failures": str(counts["failed"]),
        "errors": str(counts["error"]),
        "skipped": str(counts["skipped"]),
        "time": f"{report.duration_s:.3f}",
    }
    suites = ET.Element("testsuites", {k: v for k, v in attributes.items() if k != "skipped"})
    suite = ET.SubElement(suites, "testsuite", attributes)
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("status", report.status),
        ("score", f"{report.score:g}"),
        ("max_score", f"{report.max_score:g}"),
        ("isolation", report.environment.isolation),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for case in report.cases:
        suite.append(_testcase(case, report))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
