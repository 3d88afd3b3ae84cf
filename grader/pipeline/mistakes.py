"""Naming the mistake: an exercise's catalog of known mistakes, applied to one grading.

Two kinds of evidence, both from outputs (the source is read only to point at lines):

1. Counterfactual references. The catalog's variants (the reference with one mistake made), run by the
   orchestration in a trusted child on the same cases and cached like the reference, are handed in. A
   submission whose outputs equal a variant's in every case it returned an array for makes that variant's
   mistake.
2. Properties. The exercise's ``analyze()`` looks at the outputs for patterns that need no exact RNG.

A finding is turned into a diagnosis with the catalog's words and the lines of the constructs it names.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
import threading
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from grader.errors import SpecError
from grader.exercise.cases import Case
from grader.exercise.catalog import Catalog
from grader.exercise.evidence import Finding, Observation
from grader.exercise.spec import Exercise
from grader.pipeline.compare import close_enough
from grader.pipeline.diagnose import source_lines
from grader.pipeline.reference import Expected, VariantOutputs
from grader.pipeline.source import Source, find_constructs
from grader.pipeline.tree import Tree, at, differences, leaves, path_text
from grader.report.codes import Code
from grader.report.schema import CaseResult, Diagnosis

COMPARABLE = ("match", "values-mismatch", "dtype-mismatch")
MIN_COMPARABLE = 2


def observations(
    cases: list[Case], results: list[CaseResult], actual: dict[str, Tree], expected: dict[str, Tree]
) -> list[Observation]:
    by_id = {r.id: r for r in results}
    found = []
    for case in cases:
        result = by_id[case.id]
        comparable = result.comparison is not None and result.comparison.kind in COMPARABLE
        found.append(
            Observation(
                case_id=case.id,
                group=case.group,
                labels=dict(case.labels),
                args=case.args,
                expected=expected[case.id],
                actual=actual.get(case.id) if comparable else None,
                passed=_values_right(result),
            )
        )
    return found


def _values_right(result: CaseResult) -> bool:
    """What an observation's ``passed`` tells the catalog: the values are right. A case that fails on its dtype
    alone has the right values, and is no evidence of a mistake in the computation."""
    return result.status == "passed" or (result.comparison is not None and result.comparison.kind == "dtype-mismatch")


def needs_explaining(results: list[CaseResult]) -> bool:
    return any(r.comparison is not None and r.comparison.kind == "values-mismatch" for r in results)


def variant_findings(
    catalog: Catalog,
    observed: list[Observation],
    actual: dict[str, Tree],
    variant_outputs: dict[str, Tree],
    *,
    rtol: float,
    atol: float,
    tolerances: dict[str, tuple[float, float]] | None = None,
) -> list[Finding]:
    """Mistakes whose variant gives the submission's outputs (``actual``, by case id), exactly, in every
    comparable case: every leaf within its tolerance, as the grading compares it (``tolerances`` by leaf
    path, else ``rtol``/``atol``)."""
    comparable = [o for o in observed if o.actual is not None]
    wrong = [o.case_id for o in comparable if not o.passed]
    if len(comparable) < MIN_COMPARABLE or not wrong:
        return []
    findings = []
    for mistake in catalog.mistake:
        for name in mistake.variants:
            outputs = [variant_outputs.get(f"{name}::{o.case_id}") for o in comparable]
            if all(
                out is not None and _close(actual.get(o.case_id), out, rtol, atol, tolerances or {})
                for o, out in zip(comparable, outputs, strict=True)
            ):
                evidence = (
                    f"your outputs equal, in all {len(comparable)} cases, those of the reference with this mistake "
                    f"made (variant {name})"
                )
                findings.append(Finding(mistake.code, wrong, evidence))
                break
    return findings


def _close(
    actual: Tree | None, expected: Tree, rtol: float, atol: float, tolerances: dict[str, tuple[float, float]]
) -> bool:
    """Whether an output equals a variant's: the same structure, and every leaf within its tolerance."""
    if actual is None or differences(actual, expected)[0]:
        return False
    for path, leaf in leaves(expected):
        got = at(actual, path)
        if not (isinstance(leaf, np.ndarray) and isinstance(got, np.ndarray) and got.shape == leaf.shape):
            return False
        leaf_rtol, leaf_atol = tolerances.get(path_text(path), (rtol, atol))
        if not close_enough(got, leaf, rtol=leaf_rtol, atol=leaf_atol).all():
            return False
    return True


_loading = threading.Lock()  # a batch's workers load the same analysis module


def load_analysis(exercise: Exercise) -> Callable[..., list[Finding]] | None:
    with _loading:
        return _load_analysis(exercise)


def _load_analysis(exercise: Exercise) -> Callable[..., list[Finding]] | None:
    path = exercise.catalog_file(exercise.catalog.analysis)
    if path is None:
        return None
    spec = importlib.util.spec_from_file_location(f"grader_analysis_{exercise.id.replace('-', '_')}", path)
    if spec is None or spec.loader is None:
        raise SpecError(f"{path}: cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look their module up there
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(spec.name, None)
        raise SpecError(f"{path}: fails to import: {type(exc).__name__}: {exc}") from exc
    analyze = getattr(module, "analyze", None)
    if not callable(analyze):
        raise SpecError(f"{path}: defines no analyze()")
    return analyze


def analysis_findings(exercise: Exercise, observed: list[Observation], *, rtol: float, atol: float) -> list[Finding]:
    analyze = load_analysis(exercise)
    if analyze is None:
        return []
    try:
        findings = list(analyze(observed, rtol=rtol, atol=atol))
    except Exception as exc:
        raise SpecError(f"the analysis of {exercise.id!r} failed: {type(exc).__name__}: {exc}") from exc
    known = exercise.catalog.by_code()
    unknown = sorted({f.code for f in findings} - set(known))
    if unknown:
        raise SpecError(f"the analysis of {exercise.id!r} reported codes missing from its catalog: {unknown}")
    return findings


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def to_diagnoses(findings: list[Finding], catalog: Catalog, source: Source) -> list[Diagnosis]:
    """One diagnosis per code, in catalog order, merging the evidence of every finding for it."""
    merged: dict[str, list[Finding]] = {}
    for finding in findings:
        merged.setdefault(finding.code, []).append(finding)
    diagnoses = []
    for mistake in catalog.mistake:
        found = merged.get(mistake.code)
        if not found:
            continue
        details: dict[str, str] = {}
        for finding in found:
            details.update(finding.details)
        cases = list(dict.fromkeys(case for finding in found for case in finding.cases))
        diagnoses.append(
            Diagnosis(
                code=mistake.code,
                message=mistake.explanation.format_map(_Blank(details)),
                hint=mistake.hint,
                evidence="; ".join(dict.fromkeys(f.evidence for f in found)),
                cases=cases,
                lines=source_lines(source, find_constructs(source.text, mistake.points_at)),
            )
        )
    return diagnoses


def with_exception_hints(diagnoses: list[Diagnosis], catalog: Catalog, source: Source) -> list[Diagnosis]:
    """An exception with a known cause gets the catalog's fix and the lines of the constructs involved."""
    updated = []
    for diagnosis in diagnoses:
        known = next(
            (
                e
                for e in catalog.exception
                if diagnosis.code == Code.EXCEPTION and re.search(e.match, diagnosis.message)
            ),
            None,
        )
        if known is not None:
            pointed = [line.line for line in diagnosis.lines] + find_constructs(source.text, known.points_at)
            diagnosis = diagnosis.model_copy(
                update={"hint": known.hint, "lines": source_lines(source, list(dict.fromkeys(pointed)))}
            )
        updated.append(diagnosis)
    return updated


class Explanation(NamedTuple):
    """The catalog's diagnoses of one grading, and notes on the optional stages that failed to give any."""

    diagnoses: list[Diagnosis]
    notes: list[str]  # optional stages that failed, for the report's notes


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def on_wrong_values(findings: list[Finding], results: list[CaseResult]) -> list[Finding]:
    """The findings, each kept to the cases whose values are wrong: a mistake in the computation is never
    claimed from a case whose values match (one that fails on its dtype alone). A finding left with no case
    is dropped."""
    wrong = {r.id for r in results if r.comparison is not None and r.comparison.kind == "values-mismatch"}
    kept = []
    for finding in findings:
        cases = [case for case in finding.cases if case in wrong]
        if cases:
            kept.append(dataclasses.replace(finding, cases=cases))
    return kept


def explain(
    exercise: Exercise,
    source: Source,
    cases: list[Case],
    results: list[CaseResult],
    actual: dict[str, Tree],
    expected: Expected,
    variants: VariantOutputs,
) -> Explanation:
    """The catalog's diagnoses that the outputs support; none when no case failed on its values.

    A pure function of the outcomes: the variants' outputs are handed in (``VariantOutputs``, run by the
    orchestration only when ``needs_explaining``). Both sources of evidence are optional stages: when the
    variants could not be run (``variants.failure``) or the analysis fails (a fault of the exercise, not of
    the submission), the grading goes on without them and a note says so.
    """
    catalog = exercise.catalog
    if not catalog.mistake or not needs_explaining(results):
        return Explanation([], [])
    tol = exercise.spec.tolerance
    observed = observations(cases, results, actual, expected.outputs)
    notes = [] if variants.failure is None else [variants.failure]
    findings = variant_findings(
        catalog,
        observed,
        actual,
        variants.outputs,
        rtol=tol.rtol,
        atol=tol.atol,
        tolerances=exercise.spec.leaf_tolerances(),
    )
    if not findings:  # a variant matching every case leaves no room for another mistake
        try:
            findings = analysis_findings(exercise, observed, rtol=tol.rtol, atol=tol.atol)
        except SpecError as exc:
            notes.append(f"known mistakes were not looked for by the exercise's analysis: {_first_line(exc)}")
    return Explanation(to_diagnoses(on_wrong_values(findings, results), catalog, source), notes)
