"""The report as JSON, exactly as the schema describes it (``grader schema``; a batch's: ``--batch``)."""

from __future__ import annotations

from grader.report.schema import BatchReport, Report


def render_json(report: Report) -> str:
    return report.model_dump_json(indent=2) + "\n"


def render_batch_json(batch: BatchReport) -> str:
    return batch.model_dump_json(indent=2) + "\n"
