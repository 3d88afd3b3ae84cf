"""The report as Gradescope's ``results.json`` (its autograder specification), from a finished report."""

from __future__ import annotations

import json
import re

from grader.report.schema import CaseResult, Diagnosis, Report, SourceLine


def _case_output(case: CaseResult) -> str:
    if case.status == "passed":
        return "Passed."
    lines = [case.message]
    if case.error is not None:
        lines += [f"  line {f.line}, in {f.function}: {f.code}" for f in case.error.frames]
    comparison = case.comparison.lead_leaf() if case.comparison is not None else None
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
    results = {
        "score": report.score,
        "execution_time": report.duration_s,
        "output": _summary_markdown(report),
        "output_format": "md",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }
    return json.dumps(results, indent=2) + "\n"


def _md_text(text: str) -> str:
    """Text outside code, with HTML's characters as references: Gradescope renders ``md`` output as HTML,
    and a diagnosis may quote names from the submission. Backticks stay, so the hints' code spans render."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_code(lines: list[SourceLine]) -> list[str]:
    """The learner's lines as a fenced block, its fence longer than any run of backticks inside it."""
    body: list[str] = []
    for line in lines:
        gutter = f"{line.line:>4} | "
        body.append(gutter + line.text)
        if line.column is not None:
            body.append(" " * (len(gutter) + line.column - 1) + "^")
    longest = max((len(run) for run in re.findall(r"`+", "\n".join(body))), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}python", *body, fence]


def _md_diagnosis(diagnosis: Diagnosis) -> list[str]:
    parts = [f"**{_md_text(diagnosis.code)}**: {_md_text(diagnosis.message)}"]
    if diagnosis.lines:
        parts += ["", *_md_code(diagnosis.lines)]
    if diagnosis.hint:
        parts += ["", f"*hint*: {_md_text(diagnosis.hint)}"]
    if diagnosis.evidence:
        parts += ["", f"*evidence*: {_md_text(diagnosis.evidence)}"]
    return parts


def _summary_markdown(report: Report) -> str:
    """What the terminal leads with: the verdict, then each named mistake with the learner's lines and its
    hint. Per-case detail stays in the tests, where a hidden case shows no inputs or expected values."""
    parts = [_md_text(report.message)]
    for diagnosis in report.diagnoses:
        parts += ["", *_md_diagnosis(diagnosis)]
    return "\n".join(parts)
