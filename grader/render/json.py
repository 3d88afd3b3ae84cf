"""The report as JSON, exactly as the schema describes it (``grader schema``)."""

from __future__ import annotations

from grader.report.schema import Report


def render_json(report: Report) -> str:
    return report.model_dump_json(indent=2) + "\n"
