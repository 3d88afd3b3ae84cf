"""The report as Gradescope's ``results.json`` (its autograder specification), from a finished report."""

from __future__ import annotations

import json

from grader.schema import CaseResult, Report


def _case_output(case: CaseResult) -> str:
    if case.status == "passed":
        return "Passed."
    lines = [case.message]
    if case.error is not None:
        lines += [f"  line {f.line}, in {f.function}: {f.code}" for f in case.error.frames]
    comparison = case.comparison
    if comparison is not None and comparison.leaves:
        comparison = next((leaf for leaf in comparison.leaves if leaf.path == comparison.path), comparison)
    if not case.hidden and comparison is not None and comparison.rows:
        head = "index  expected  actual"
        lines.append(f"leaf {comparison.path}: {head}" if comparison.path else head)
        lines += [f"{r.index:>5}  {r.expected}  {r.actual}" for r in comparison.rows if not r.ok][:10]
    return "\n".join(lines)


def render_gradescope(report: Report) -> str:
    """Hidden cases get ``visibility: after_published``: learners see that they failed, not their inputs."""
    tests = [
        {
            "name": case.id if not case.hidden else f"{case.id} (hidden)",
            "score": case.score,
            "max_score": case.weight,
            "status": "passed" if case.status == "passed" else "failed",
            "output": _case_output(case),
            "output_format": "text",
            "visibility": "after_published" if case.hidden else "visible",
            "tags": [case.status, *(d.code for d in report.diagnoses if case.id in d.cases)],
        }
        for case in report.cases
    ]
    summary = [report.message, *(f"[{d.code}] {d.message}" for d in report.diagnoses)]
    results = {
        "score": report.score,
        "execution_time": report.duration_s,
        "output": "\n".join(summary),
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }
    return json.dumps(results, indent=2) + "\n"
