"""Findings about a submission as a whole, each with a stable code, drawn from its case results and run.

Codes (documented in the README): syntax-error, import-error, missing-entry-point, exception, exited,
timeout, crashed, memory-limit, output-limit, protocol-error, wrong-type, structure-mismatch, shape-mismatch,
dtype-mismatch, non-finite, values-mismatch. A finding is made only from evidence: the outputs, the way
the child ended, or the parse of the source.
"""

from __future__ import annotations

import re
import signal
from collections import defaultdict

from grader.pipeline.judge import error_info
from grader.pipeline.source import Source, closest_name
from grader.report.schema import CaseResult, Diagnosis, SourceLine
from grader.sandbox.process import ChildRun
from grader.sandbox.protocol import WireError

MAX_LISTED = 6
_MEMORY_WORDS = re.compile(r"MemoryError|[Oo]ut of memory|RESOURCE_EXHAUSTED|bad_alloc|Cannot allocate memory")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _case_list(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_LISTED])
    return shown + (f" and {len(ids) - MAX_LISTED} more" if len(ids) > MAX_LISTED else "")


def source_lines(source: Source, numbers: list[int]) -> list[SourceLine]:
    seen: list[int] = []
    for n in numbers:
        if n not in seen and source.line(n):
            seen.append(n)
    return [SourceLine(line=n, text=source.line(n)) for n in seen[:5]]


def syntax_diagnosis(source: Source) -> Diagnosis:
    problem = source.problem
    assert problem is not None
    where = f"line {problem.line}" if problem.line else "the file"
    lines = source_lines(source, [problem.line] if problem.line else [])
    if lines and problem.offset:
        lines = [lines[0].model_copy(update={"column": problem.offset})]
    return Diagnosis(
        code="syntax-error",
        message=f"Python cannot read {where}: {problem.message}.",
        hint="Fix the syntax at the line shown; the caret marks where Python gave up.",
        evidence="the file does not parse",
        lines=lines,
    )


def _signal_story(number: int | None) -> str:
    if number == signal.SIGXCPU:
        return "it used up its CPU time limit"
    if number == signal.SIGKILL:
        return "it was killed (SIGKILL), most often for using too much memory"
    if number == signal.SIGABRT:
        return "it aborted (SIGABRT), often because memory ran out inside XLA"
    if number == signal.SIGSEGV:
        return "it crashed with a segmentation fault (SIGSEGV)"
    return f"it was killed by signal {number}"


def skip_reason(problem: Diagnosis) -> str:
    """Why the cases did not run, in a few words, after the diagnosis that says it in full."""
    return {
        "import-error": "the file could not be imported",
        "missing-entry-point": "the entry point is missing",
        "exited": "the submission ended the process",
        "syntax-error": "the file does not parse",
    }.get(problem.code, problem.message[0].lower() + problem.message[1:].rstrip("."))


def ending_reason(run: ChildRun) -> str:
    """Why a run stopped before its last case, in words for a case's message."""
    where = {"start": "while starting", "import": "while importing the submission", "finish": "after the last case"}
    place = where.get(run.phase, f"in case {run.current_case}")
    if run.ending == "timeout":
        return f"timed out {place}: {run.detail}"
    if run.ending == "crashed":
        return f"the process died {place}: {_signal_story(run.signal)}"
    if run.ending == "exited":
        return f"the submission ended the process {place} (exit status {run.returncode})"
    if run.ending == "output-limit":
        return f"stopped {place}: {run.detail}"
    if run.ending == "memory-limit":
        return f"the run stopped {place}: {run.detail}"
    if run.ending == "harness-error":
        last = run.stray_stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        return f"the process broke down {place}: the submission interfered with the harness ({last[0]})"
    if run.ending == "protocol-error":
        return f"stopped {place}: {run.detail}"
    return f"stopped {place}: {run.detail}"


def _stray_evidence(run: ChildRun) -> str | None:
    text = run.stray_stderr.decode("utf-8", "replace").strip()
    if run.ending == "timeout":
        return f"the phase was stopped at its deadline ({run.detail})"
    return f"last output on stderr:\n{text[-800:]}" if text else None


def run_diagnosis(run: ChildRun, source: Source, entry_point: str) -> Diagnosis | None:
    """The problem that kept some or all cases from running, if there was one."""
    imported = run.imported
    if imported is not None and imported.error is not None:
        return _import_diagnosis(imported.error, source)
    if imported is not None and not imported.entry_point_found and run.ending == "completed":
        return _missing_entry_point(entry_point, imported.names, source)
    if run.ending in ("completed", "memory-limit"):
        return None  # memory-limit: the case's MemoryError is the finding (case_diagnoses), with its lines
    code = {"harness-error": "crashed"}.get(run.ending, run.ending)
    if code == "crashed" and _MEMORY_WORDS.search(run.stray_stderr.decode("utf-8", "replace")):
        code = "memory-limit"
    hints = {
        "timeout": "Look for an endless loop or a very slow computation; each case has a time limit.",
        "crashed": "Look for unbounded memory use or deep recursion.",
        "memory-limit": "Look for a structure that grows without bound, or arrays far larger than the input.",
        "exited": "Do not call sys.exit(), exit() or os._exit() in the submission: return the result instead.",
        "output-limit": "Return only the array the exercise asks for.",
    }
    hints["harness-error"] = "Leave the process's file descriptors and standard streams alone."
    cases = [run.current_case] if run.current_case else []
    reason = ending_reason(run)
    lines = source_lines(source, _stuck_lines(run, str(source.path))) if run.ending == "timeout" else []
    if lines:
        reason += f", at line {lines[0].line}"
    return Diagnosis(
        code=code,
        message=reason[0].upper() + reason[1:] + ".",
        hint=hints.get(run.ending, hints.get(code)),
        evidence=_stray_evidence(run),
        cases=cases,
        lines=lines,
    )


_FAULTHANDLER_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in ', re.MULTILINE)


def _stuck_lines(run: ChildRun, learner_file: str) -> list[int]:
    """The learner's lines on the stack when a phase overran, innermost first (from faulthandler's dump)."""
    text = run.stray_stderr.decode("utf-8", "replace")
    start = text.rfind("Timeout (")
    if start < 0:
        return []
    return [int(m["line"]) for m in _FAULTHANDLER_FRAME.finditer(text, start) if m["file"] == learner_file]


def _import_diagnosis(error: WireError, source: Source) -> Diagnosis:
    info = error_info(error, str(source.path))
    lines = source_lines(source, [f.line for f in info.frames if f.line])
    if error.exit_code is not None:
        return Diagnosis(
            code="exited",
            message=f"The submission called sys.exit({error.exit_code}) while it was being imported.",
            hint="Remove the exit call: the grader imports the file and calls the function itself.",
            evidence="SystemExit raised at import",
            lines=lines,
        )
    at = f" (line {info.frames[-1].line})" if info.frames else ""
    return Diagnosis(
        code="import-error",
        message=f"Importing the submission raised {info.type}{at}: {info.message}",
        hint=_import_hint(info.type),
        evidence="the exception was raised while the module body ran",
        lines=lines,
    )


def _import_hint(type_name: str) -> str:
    if type_name in ("ModuleNotFoundError", "ImportError"):
        return "Import only the standard library and the packages the exercise names; nothing else is installed."
    return "Code at the top level runs when the file is imported: keep it to imports and definitions."


def _missing_entry_point(entry_point: str, names: list[str], source: Source) -> Diagnosis:
    defined = sorted(n for n in names if n in source.definitions) or sorted(names)
    near = closest_name(entry_point, names)
    listing = ", ".join(defined[:12]) if defined else "nothing callable"
    message = f"The submission defines no function named {entry_point!r}. It defines: {listing}."
    hint = (
        f"Did you mean {near!r}? Rename it to {entry_point!r}."
        if near
        else f"Define a function named {entry_point!r} at the top level of the file."
    )
    return Diagnosis(
        code="missing-entry-point", message=message, hint=hint, evidence="the name is absent from the imported module"
    )


def fresh_diagnosis(results: list[CaseResult]) -> Diagnosis | None:
    """Every fixed case passes and some fresh case (``--seed``) does not: the function works for the inputs
    it was shown, not in general."""
    fixed = [r for r in results if not r.fresh]
    failing = [r for r in results if r.fresh and r.status in ("failed", "error")]  # skipped: never ran
    if not fixed or not failing or any(r.status != "passed" for r in fixed):
        return None
    fresh = sum(r.fresh for r in results)
    ids = [r.id for r in failing]
    return Diagnosis(
        code="fails-fresh-cases",
        message=f"Every fixed case passes, but {len(ids)} of {fresh} fresh cases do not: the function works "
        "for the inputs it has seen, not in general.",
        hint="Compute the output from the arguments alone: no outputs written into the file, no special "
        "cases for known inputs, no sizes or seeds fixed to the ones in the examples.",
        evidence=f"fixed cases all passed; fresh cases that did not: {_case_list(ids)}",
        cases=ids,
    )


def case_diagnoses(results: list[CaseResult], source: Source, *, explained: set[str] | None = None) -> list[Diagnosis]:
    """Findings grouped over cases: each kind of failure once, with the cases that show it.

    Cases in ``explained`` already have a more specific diagnosis; they are left out of values-mismatch.
    """
    found: list[Diagnosis] = []
    found += _exception_diagnoses(results, source)
    found += _comparison_diagnoses(results, explained or set())
    return found


def _exception_diagnoses(results: list[CaseResult], source: Source) -> list[Diagnosis]:
    # One finding per exception type and place: the same mistake gives other messages for other inputs.
    groups: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    flooded = [r for r in results if r.error is not None and r.output.limit_reached]
    found = []
    if flooded:
        ids = [r.id for r in flooded]
        size = max(max(r.output.stdout.size, r.output.stderr.size) for r in flooded)
        found.append(
            Diagnosis(
                code="output-limit",
                message=f"The function printed more than the output limit allows ({size / 2**20:.0f} MiB) "
                f"in {_plural(len(ids), 'case')}, and writing failed.",
                hint="Print less: a line or two per call is plenty while debugging, and nothing once it works.",
                evidence=f"output size limit reached in {_case_list(ids)}",
                cases=ids,
            )
        )
    for result in results:
        if result.error is not None and not result.output.limit_reached:
            frames = result.error.frames
            place = f"line {frames[-1].line}" if frames else result.error.message
            groups[(result.error.type, place)].append(result)
    for (type_name, _), members in groups.items():
        message = members[0].error.message if members[0].error else ""
        first = message.splitlines()[0] if message else ""
        ids = [m.id for m in members]
        frames = members[0].error.frames if members[0].error else []
        lines = source_lines(source, [f.line for f in frames if f.line])
        if type_name == "NotImplementedError" and len(members) == len(results):
            found.append(
                Diagnosis(
                    code="not-attempted",
                    message="Not attempted yet: the function still raises NotImplementedError.",
                    hint="Replace the `raise NotImplementedError` lines with your solution, then grade again.",
                    cases=ids,
                    lines=lines,
                    evidence=f"NotImplementedError in {_plural(len(ids), 'case')}",
                )
            )
            continue
        if type_name == "MemoryError":
            found.append(
                Diagnosis(
                    code="memory-limit",
                    message=f"The function ran out of memory in {_plural(len(ids), 'case')}: it asked for more than "
                    "the memory limit allows.",
                    hint="Look for a structure that grows without bound, or arrays far larger than the input.",
                    cases=ids,
                    lines=lines,
                    evidence="MemoryError raised under the child's memory limit",
                )
            )
            continue
        if type_name == "SystemExit":
            found.append(
                Diagnosis(
                    code="exited",
                    message=f"{members[0].message} in {_plural(len(ids), 'case')}.",
                    hint="Return the result instead of exiting.",
                    cases=ids,
                    lines=lines,
                    evidence="SystemExit raised by the entry point",
                )
            )
            continue
        raised_in = members[0].error.raised_in if members[0].error else None
        origin = f" (from {raised_in})" if raised_in else ""
        found.append(
            Diagnosis(
                code="exception",
                message=f"The function raised {type_name}{origin} in {_plural(len(ids), 'case')}: {first}",
                hint="Read the traceback of the first failing case below; the lines shown are yours.",
                evidence=f"raised in {_plural(len(ids), 'case')}: {_case_list(ids)}",
                cases=ids,
                lines=lines,
            )
        )
    return found


def _comparison_diagnoses(results: list[CaseResult], explained: set[str]) -> list[Diagnosis]:
    by_kind: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        if result.comparison is not None and not result.comparison.ok:
            by_kind[result.comparison.kind].append(result)
    found = []
    if by_kind["wrong-type"]:
        found.append(
            _grouped(
                "wrong-type",
                by_kind["wrong-type"],
                "returned something other than an array",
                "Return the array itself: not a tuple, a dict of parameters, a list or None.",
            )
        )
    if by_kind["structure-mismatch"]:
        found.append(
            _grouped(
                "structure-mismatch",
                by_kind["structure-mismatch"],
                "returned another structure than expected",
                "Return the structure the exercise asks for: the same tuple, list or dict, with the same keys, "
                "and an array at every leaf.",
            )
        )
    shape_like = by_kind["shape-mismatch"] + by_kind["too-large"]
    if shape_like:
        shape = _grouped(
            "shape-mismatch",
            shape_like,
            "returned an array of the wrong shape",
            "Return an array of the shape the exercise asks for: check layer sizes and any reshaping.",
        )
        story = _shape_story(shape_like)
        found.append(shape.model_copy(update={"message": f"{shape.message} {story}".strip()}))
    if by_kind["dtype-mismatch"]:
        found.append(
            _grouped(
                "dtype-mismatch",
                by_kind["dtype-mismatch"],
                "returned the right values in another dtype",
                "Return the model's output as it is, without casting it.",
            )
        )
    non_finite = [r for r in results if r.comparison and (r.comparison.nan_count or r.comparison.inf_count)]
    if non_finite:
        found.append(
            _grouped(
                "non-finite", non_finite, "returned NaN or Inf values", "Look for a division by zero or an overflow."
            )
        )
    unexplained = [r for r in by_kind["values-mismatch"] if r.id not in explained]
    if unexplained:
        found.append(_values_diagnosis(unexplained))
    return found


def _shape_story(members: list[CaseResult]) -> str:
    """What the wrong shapes have in common: an extra axis of 1, or one size whatever the input."""
    pairs = [
        (tuple(m.comparison.expected_shape), tuple(m.comparison.actual_shape))
        for m in members
        if m.comparison is not None and m.comparison.actual_shape is not None
    ]
    if not pairs:
        return ""
    if all(actual in ((1, *expected), (*expected, 1)) for expected, actual in pairs):
        return "It looks like a kept batch axis: the output has an extra axis of size 1."
    last = {actual[-1] for _, actual in pairs if actual}
    expected_last = {expected[-1] for expected, _ in pairs if expected}
    if len(last) == 1 and len(expected_last) > 1:
        return (
            f"The last axis is {last.pop()} whatever the input's length: it looks like a fixed feature count "
            "where the size should follow the input."
        )
    return ""


def _grouped(code: str, members: list[CaseResult], what: str, hint: str) -> Diagnosis:
    ids = [m.id for m in members]
    first = members[0]
    detail = first.comparison.message if first.comparison else first.message
    return Diagnosis(
        code=code,
        message=f"The function {what} in {_plural(len(ids), 'case')}: {detail.rstrip('.…')}.",
        hint=hint,
        evidence=f"first seen in case {first.id}",
        cases=ids,
    )


def _values_diagnosis(members: list[CaseResult]) -> Diagnosis:
    ids = [m.id for m in members]
    first = members[0]
    detail = first.comparison.message if first.comparison else first.message
    return Diagnosis(
        code="values-mismatch",
        message=f"Values differ from the reference in {_plural(len(ids), 'case')}; first in {first.id}: {detail}.",
        hint="Compare each step with the exercise text; `grader show` prints it again.",
        evidence=f"outputs compared element by element in {_plural(len(ids), 'case')}: {_case_list(ids)}",
        cases=ids,
    )
