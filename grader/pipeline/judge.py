"""Turning what a submission's child reported into one ``CaseResult`` per case, in the grader's process."""

from __future__ import annotations

import numpy as np

from grader.exercise.cases import Case
from grader.pipeline.compare import compare_arrays, compare_tree, describe_wrong_type
from grader.pipeline.tree import Opaque, Tree, decode
from grader.report.schema import (
    CapturedOutput,
    CapturedText,
    CaseResult,
    Comparison,
    ComparisonKind,
    ErrorInfo,
    Frame,
)
from grader.sandbox.outcome import ChildRun
from grader.sandbox.protocol import ArrayValue, ObjectValue, Result, TreeValue, WireCapture, WireError

MAX_ELEMENTS = 10_000_000
PLAIN_NUMBERS = ("bool", "int", "float", "complex")  # a bare Python number returned: a 0-d array on the wire
MAX_SHOWN_FRAMES = 10  # the learner's innermost frames a report keeps (a recursion repeats the same few)


def captured(stdout: WireCapture, stderr: WireCapture, *, limit_reached: bool = False) -> CapturedOutput:
    return CapturedOutput(
        stdout=CapturedText(text=stdout.text, size=stdout.size, truncated=stdout.truncated),
        stderr=CapturedText(text=stderr.text, size=stderr.size, truncated=stderr.truncated),
        limit_reached=limit_reached,
    )


def error_info(error: WireError, learner_file: str) -> ErrorInfo:
    """The exception with only the learner's own frames; the library it surfaced from is named apart."""
    frames = [
        Frame(file=f.file, line=f.line, function=f.function, code=f.code)
        for f in error.frames
        if f.file == learner_file
    ][-MAX_SHOWN_FRAMES:]
    raised_in = None
    if error.frames and error.frames[-1].file != learner_file:
        raised_in = _short_library_path(error.frames[-1].file)
    return ErrorInfo(type=error.type, message=error.message, frames=frames, raised_in=raised_in)


def _short_library_path(path: str) -> str:
    for marker in ("site-packages/", "dist-packages/", "lib/python"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


HIDDEN_NOTE = "(not shown: a hidden case)"


def _withheld(output: CapturedOutput, case: Case) -> CapturedOutput:
    """What a hidden case printed is not shown (it could print its inputs); how much it printed is."""
    if not case.hidden or output.empty:
        return output
    note = HIDDEN_NOTE
    return output.model_copy(
        update={
            name: getattr(output, name).model_copy(update={"text": note if getattr(output, name).size else ""})
            for name in ("stdout", "stderr")
        }
    )


def _hide(case: Case, comparison: Comparison) -> Comparison:
    """A hidden case keeps its verdict and counts, and loses every number that tells expected values (and,
    for a tree, what the submission's structure holds: its keys could carry the inputs)."""
    if not case.hidden:
        return comparison
    update: dict[str, object] = {"rows": [], "worst": [], "max_abs_error": None, "max_rel_error": None}
    if comparison.kind == "values-mismatch":
        update["message"] = f"{comparison.n_mismatched} of {comparison.n_elements} elements differ (hidden case)"
    if comparison.kind == "structure-mismatch":
        update["message"] = "the returned structure differs from the expected one (hidden case)"
        update["actual_type"] = None
    if comparison.leaves:
        hidden_leaves = [_hide(case, leaf) for leaf in comparison.leaves]
        update["leaves"] = hidden_leaves
        failing = [leaf for leaf in hidden_leaves if not leaf.ok]
        if failing:
            update["message"] = "; ".join(f"{leaf.path}: {leaf.message}" for leaf in failing[:3])
    return comparison.model_copy(update=update)


def judge_result(
    case: Case,
    result: Result,
    expected: Tree,
    *,
    rtol: float,
    atol: float,
    learner_file: str,
    tolerances: dict[str, tuple[float, float]] | None = None,
) -> CaseResult:
    common = case_fields(
        case,
        output=_withheld(captured(result.stdout, result.stderr, limit_reached=result.output_limit), case),
        duration_s=result.duration_s,
    )
    if result.error is not None:
        info = error_info(result.error, learner_file)
        if case.hidden:  # the message could carry the inputs (raise ValueError(repr(x))): type and lines only
            info = info.model_copy(update={"message": HIDDEN_NOTE})
        return CaseResult(
            status="error",
            score=0.0,
            message=_error_message(info, result.error, output_limit=result.output_limit, hidden=case.hidden),
            error=info,
            **common,
        )
    if isinstance(expected, np.ndarray):
        rtol, atol = (tolerances or {}).get("output", (rtol, atol))
        comparison = _compare_one(case, result, expected, rtol=rtol, atol=atol)
    else:
        assert result.value is not None
        actual = decode(result.value, MAX_ELEMENTS)
        comparison = compare_tree(actual, expected, rtol=rtol, atol=atol, tolerances=tolerances)
    comparison = _hide(case, comparison)
    return CaseResult(
        status="passed" if comparison.ok else "failed",
        score=case.weight if comparison.ok else 0.0,
        message=comparison.message,
        comparison=comparison,
        **common,
    )


def _compare_one(case: Case, result: Result, expected: np.ndarray, *, rtol: float, atol: float) -> Comparison:
    """An output expected to be one array."""
    value = result.value
    if isinstance(value, ArrayValue) and value.type in PLAIN_NUMBERS and expected.shape != ():
        shown = None if case.hidden else value.to_numpy(1).item().__repr__()
        what = f"a plain {value.type}" + ("" if shown is None else f" {shown}")
        return _unusable(expected, rtol, atol, value.type, describe_wrong_type(what, None))
    if isinstance(value, ArrayValue):
        try:
            actual = value.to_numpy(MAX_ELEMENTS)
        except ValueError as exc:
            return _unusable(expected, rtol, atol, value.type, f"the returned array is unusable: {exc}")
        return compare_arrays(actual, expected, rtol=rtol, atol=atol, actual_type=value.type, actual_dtype=value.dtype)
    if isinstance(value, (ObjectValue, TreeValue)):
        return _unusable(
            expected,
            rtol,
            atol,
            value.type,
            # A hidden case names only the type: a summary or repr could show the inputs.
            describe_wrong_type(f"a {value.type}", None)
            if case.hidden
            else describe_wrong_type(value.summary or value.type, value.repr),
        )
    assert value is not None
    return _unusable(
        expected,
        rtol,
        atol,
        value.type,
        f"the returned array is too large to compare: shape {tuple(value.shape)}",
        kind="too-large",
    ).model_copy(update={"actual_shape": list(value.shape), "actual_dtype": value.dtype})


def _unusable(
    expected: np.ndarray,
    rtol: float,
    atol: float,
    type_name: str,
    message: str,
    kind: ComparisonKind = "wrong-type",
) -> Comparison:
    return Comparison(
        ok=False,
        kind=kind,
        message=message,
        expected_shape=list(expected.shape),
        expected_dtype=expected.dtype.name,
        actual_type=type_name,
        rtol=rtol,
        atol=atol,
    )


def _error_message(info: ErrorInfo, error: WireError, *, output_limit: bool = False, hidden: bool = False) -> str:
    if output_limit:
        return "stopped at the output limit: the case printed too much"
    if error.exit_code is not None:  # a hidden case's exit status could carry an input
        return "the submission called sys.exit()" if hidden else f"the submission called sys.exit({error.exit_code})"
    first_line = info.message.splitlines()[0] if info.message else ""
    return f"raised {info.type}: {first_line}"[:300]


def case_fields(case: Case, **extra: object) -> dict:
    """The fields every result of a case has; a hidden case's inputs are not shown."""
    inputs = {name: "hidden" for name in case.inputs_brief()} if case.hidden else case.inputs_brief()
    return {
        "id": case.id,
        "title": case.title,
        "hidden": case.hidden,
        "fresh": case.fresh,
        "weight": case.weight,
        "inputs": inputs,
        **extra,
    }


def unfinished_case(case: Case, run: ChildRun, reason: str) -> CaseResult:
    """A case without a result: the one the child died in is an error, the ones after it are skipped."""
    if run.current_case == case.id:
        return CaseResult(status="error", score=0.0, message=reason, **case_fields(case))
    return skipped_case(case, reason)


def skipped_case(case: Case, reason: str) -> CaseResult:
    return CaseResult(status="skipped", score=0.0, message=f"not run: {reason}", **case_fields(case))


def decoded_outputs(run: ChildRun) -> dict[str, Tree]:
    """The arrays (or trees of arrays) the submission returned, by case, for the analyses after judging."""
    outputs: dict[str, Tree] = {}
    for result in run.results:
        if isinstance(result.value, (ArrayValue, TreeValue)):
            decoded = decode(result.value, MAX_ELEMENTS)
            if not isinstance(decoded, Opaque):  # an unusable array: judged already
                outputs[result.case] = decoded
    return outputs


def judge_run(
    cases: list[Case],
    run: ChildRun,
    expected: dict[str, Tree],
    *,
    rtol: float,
    atol: float,
    learner_file: str,
    reason: str,
    tolerances: dict[str, tuple[float, float]] | None = None,
) -> list[CaseResult]:
    results = {r.case: r for r in run.results}
    return [
        judge_result(
            c, results[c.id], expected[c.id], rtol=rtol, atol=atol, learner_file=learner_file, tolerances=tolerances
        )
        if c.id in results
        else unfinished_case(c, run, reason)
        for c in cases
    ]
