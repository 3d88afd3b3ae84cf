"""Findings about a submission as a whole, each with a stable code, drawn from its case results and run.

The codes, their titles and default hints are the table in ``grader/report/codes.py`` (documented in the
README). A finding is made only from evidence: the outputs, the way the child ended, or the parse of the
source.
"""

from __future__ import annotations

import re
import signal
from collections import defaultdict
from collections.abc import Mapping

from grader.pipeline.judge import error_info
from grader.pipeline.source import Source, closest_name
from grader.report.codes import TABLE, Code, default_hint, info
from grader.report.schema import CaseResult, ComparisonKind, Diagnosis, SourceLine
from grader.sandbox.outcome import ChildRun, Ending
from grader.sandbox.protocol import WireError

MAX_LISTED = 6
_MEMORY_WORDS = re.compile(r"MemoryError|[Oo]ut of memory|RESOURCE_EXHAUSTED|bad_alloc|Cannot allocate memory")
# How a run ended -> the code of the finding it gives (``completed`` gives none; a ``memory-limit`` ending is
# reported through the case whose MemoryError stopped the run; a crash whose last words say memory ran out
# becomes ``memory-limit``).
CODE_OF_ENDING: Mapping[Ending, Code] = {
    "timeout": Code.TIMEOUT,
    "crashed": Code.CRASHED,
    "exited": Code.EXITED,
    "protocol-error": Code.PROTOCOL_ERROR,
    "output-limit": Code.OUTPUT_LIMIT,
    "memory-limit": Code.MEMORY_LIMIT,
    "harness-error": Code.CRASHED,  # the submission broke the harness it runs in
    "cancelled": Code.CANCELLED,
}
# What a comparison found -> the code its cases are grouped under (``match`` gives none), in the order the
# findings are listed.
CODE_OF_KIND: Mapping[ComparisonKind, Code] = {
    "wrong-type": Code.WRONG_TYPE,
    "structure-mismatch": Code.STRUCTURE_MISMATCH,
    "shape-mismatch": Code.SHAPE_MISMATCH,
    "too-large": Code.SHAPE_MISMATCH,  # far too large to compare: its shape is what is wrong
    "dtype-mismatch": Code.DTYPE_MISMATCH,
    "values-mismatch": Code.VALUES_MISMATCH,
}
HARNESS_HINT = "Leave the process's file descriptors and standard streams alone."


def _sentence(clause: str) -> str:
    return clause[:1].upper() + clause[1:]


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
        code=Code.SYNTAX_ERROR,
        message=f"Python cannot read {where}: {problem.message}.",
        hint=default_hint(Code.SYNTAX_ERROR),
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
    """Why the cases did not run, in a few words, after the diagnosis that says it in full: the code's title
    where the submission as a whole could not be graded, else where and why the run stopped."""
    entry = info(problem.code)
    if entry is not None and entry.family == "submission":
        return entry.title
    return problem.message[0].lower() + problem.message[1:].rstrip(".")


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
    ended = CODE_OF_ENDING[run.ending]
    code = ended
    if ended is Code.CRASHED and _MEMORY_WORDS.search(run.stray_stderr.decode("utf-8", "replace")):
        code = Code.MEMORY_LIMIT
    # The hint follows how the run ended: a crash that ran out of memory keeps the crash's advice.
    hint = HARNESS_HINT if run.ending == "harness-error" else default_hint(ended)
    cases = [run.current_case] if run.current_case else []
    reason = ending_reason(run)
    lines = source_lines(source, _stuck_lines(run, str(source.path))) if run.ending == "timeout" else []
    if lines:
        reason += f", at line {lines[0].line}"
    return Diagnosis(
        code=code,
        message=_sentence(reason) + ".",
        hint=hint,
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
            code=Code.EXITED,
            message=f"The submission called sys.exit({error.exit_code}) while it was being imported.",
            hint="Remove the exit call: the grader imports the file and calls the function itself.",
            evidence="SystemExit raised at import",
            lines=lines,
        )
    at = f" (line {info.frames[-1].line})" if info.frames else ""
    return Diagnosis(
        code=Code.IMPORT_ERROR,
        message=f"Importing the submission raised {info.type}{at}: {info.message}",
        hint=_import_hint(info.type),
        evidence="the exception was raised while the module body ran",
        lines=lines,
    )


def _import_hint(type_name: str) -> str | None:
    if type_name in ("ModuleNotFoundError", "ImportError"):
        return "Import only the standard library and the packages the exercise names; nothing else is installed."
    return default_hint(Code.IMPORT_ERROR)


def _missing_entry_point(entry_point: str, names: list[str], source: Source) -> Diagnosis:
    defined = sorted(n for n in names if n in source.definitions) or sorted(names)
    near = closest_name(entry_point, names)
    listing = ", ".join(defined[:12]) if defined else "nothing callable"
    message = f"The submission defines no function named {entry_point!r}. It defines: {listing}."
    hint = (
        f"Did you mean {near!r}? Rename it to {entry_point!r}."
        if near
        else default_hint(Code.MISSING_ENTRY_POINT, entry_point=entry_point)
    )
    return Diagnosis(
        code=Code.MISSING_ENTRY_POINT,
        message=message,
        hint=hint,
        evidence="the name is absent from the imported module",
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
        code=Code.FAILS_FRESH_CASES,
        message=f"Every fixed case passes, but {len(ids)} of {fresh} fresh cases do not: the function works "
        "for the inputs it has seen, not in general.",
        hint=default_hint(Code.FAILS_FRESH_CASES),
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
                code=Code.OUTPUT_LIMIT,
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
                    code=Code.NOT_ATTEMPTED,
                    message="Not attempted yet: the function still raises NotImplementedError.",
                    hint=default_hint(Code.NOT_ATTEMPTED),
                    cases=ids,
                    lines=lines,
                    evidence=f"NotImplementedError in {_plural(len(ids), 'case')}",
                )
            )
            continue
        if type_name == "MemoryError":
            found.append(
                Diagnosis(
                    code=Code.MEMORY_LIMIT,
                    message=f"The function ran out of memory in {_plural(len(ids), 'case')}: it asked for more than "
                    "the memory limit allows.",
                    hint=default_hint(Code.MEMORY_LIMIT),
                    cases=ids,
                    lines=lines,
                    evidence="MemoryError raised under the child's memory limit",
                )
            )
            continue
        if type_name == "SystemExit":
            found.append(
                Diagnosis(
                    code=Code.EXITED,
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
                code=Code.EXCEPTION,
                message=f"The function raised {type_name}{origin} in {_plural(len(ids), 'case')}: {first}",
                hint=default_hint(Code.EXCEPTION),
                evidence=f"raised in {_plural(len(ids), 'case')}: {_case_list(ids)}",
                cases=ids,
                lines=lines,
            )
        )
    return found


def _comparison_diagnoses(results: list[CaseResult], explained: set[str]) -> list[Diagnosis]:
    by_kind: dict[ComparisonKind, list[CaseResult]] = defaultdict(list)
    for result in results:
        if result.comparison is not None and not result.comparison.ok:
            by_kind[result.comparison.kind].append(result)
    by_code: dict[Code, list[CaseResult]] = defaultdict(list)
    for kind, code in CODE_OF_KIND.items():  # a code's cases kind by kind: shape-mismatch before too-large
        by_code[code] += by_kind[kind]
    found = []
    for code in (Code.WRONG_TYPE, Code.STRUCTURE_MISMATCH, Code.SHAPE_MISMATCH, Code.DTYPE_MISMATCH):
        if by_code[code]:
            found.append(_grouped(code, by_code[code]))
    non_finite = [r for r in results if r.comparison and (r.comparison.nan_count or r.comparison.inf_count)]
    if non_finite:
        found.append(_grouped(Code.NON_FINITE, non_finite))
    unexplained = [r for r in by_code[Code.VALUES_MISMATCH] if r.id not in explained]
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


def _grouped(code: Code, members: list[CaseResult]) -> Diagnosis:
    """One finding for the cases that failed the same way: the code's title, the first case's numbers; a
    shape mismatch adds what its wrong shapes have in common."""
    ids = [m.id for m in members]
    first = members[0]
    detail = first.comparison.message if first.comparison else first.message
    message = f"{_sentence(TABLE[code].title)} in {_plural(len(ids), 'case')}: {detail.rstrip('.…')}."
    if code is Code.SHAPE_MISMATCH:
        message = f"{message} {_shape_story(members)}".strip()
    return Diagnosis(
        code=code,
        message=message,
        hint=default_hint(code),
        evidence=f"first seen in case {first.id}",
        cases=ids,
    )


def _values_diagnosis(members: list[CaseResult]) -> Diagnosis:
    ids = [m.id for m in members]
    first = members[0]
    detail = first.comparison.message if first.comparison else first.message
    title = _sentence(TABLE[Code.VALUES_MISMATCH].title)
    return Diagnosis(
        code=Code.VALUES_MISMATCH,
        message=f"{title} in {_plural(len(ids), 'case')}; first in {first.id}: {detail}.",
        hint=default_hint(Code.VALUES_MISMATCH),
        evidence=f"outputs compared element by element in {_plural(len(ids), 'case')}: {_case_list(ids)}",
        cases=ids,
    )
