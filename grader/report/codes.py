"""The engine's diagnosis codes: one table of every code the grader gives whatever the exercise.

A diagnosis' ``code`` is part of the report's contract (CI matches on it; the README lists every code of
this table under "Diagnosis codes", and ``tests/test_codes.py`` keeps the two equal). Codes come from two
places: this table, and each exercise's catalog (``exercises/<id>/mistakes.toml``), whose codes are the
exercise's own and never one of these. Every module that writes or compares an engine code takes it from
here (``Code.VALUES_MISMATCH``); the short title and the default hint of each come from here too.

Each entry has a family, which says whose problem the finding is and what it means for the cases:

- ``submission``: the submission as a whole cannot be graded. It does not parse, its import raises, it
  defines no entry point, or it ends the process itself. The cases it keeps from running are skipped
  with the code's title as their reason ("not run: the file does not parse").
- ``run``: the child's run was stopped part-way: a limit reached (time, memory, output), a crash, a
  broken result channel, a grading cancelled from outside. The case it stopped in is ``error``, the ones
  after it are skipped with where and why it stopped.
- ``mistake``: the function ran and its result is wrong: it raised, returned another type, structure,
  shape or dtype, wrong values, or passes only the cases it has seen. A catalog's codes are all of
  this family.

A fault of the grader or of an exercise is never a diagnosis: it is a ``GraderError`` (exit 3).

Some strings are shared with other vocabularies, on purpose, and mean related things there:

- ``Comparison.kind`` (``grader/report/schema.py``) is what one comparison of one case found. The kinds
  ``wrong-type``, ``structure-mismatch``, ``shape-mismatch``, ``dtype-mismatch`` and ``values-mismatch``
  are also codes: the cases whose comparison has that kind are grouped under the code of the same
  string; ``too-large`` cases go under ``shape-mismatch``; ``match`` has no code. ``non-finite`` has no
  kind: it is drawn from the NaN and Inf counts of any comparison.
- ``Ending`` (``grader/sandbox/outcome.py``) is how a child's run ended. The endings ``timeout``,
  ``crashed``, ``exited``, ``output-limit``, ``protocol-error`` and ``cancelled`` give the code of the
  same string; ``harness-error`` (the submission broke the harness) gives ``crashed`` too, and either
  gives ``memory-limit`` instead when the child's last words on stderr say memory ran out; the ending
  ``memory-limit`` is reported through the case whose ``MemoryError`` stopped the run; ``completed`` has
  no code. ``grader/pipeline/diagnose.py`` holds both mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

Family = Literal["submission", "run", "mistake"]


class Code(StrEnum):
    """An engine code. Each value is the string the JSON report carries; the order is the README's."""

    SYNTAX_ERROR = "syntax-error"
    IMPORT_ERROR = "import-error"
    MISSING_ENTRY_POINT = "missing-entry-point"
    NOT_ATTEMPTED = "not-attempted"
    EXCEPTION = "exception"
    EXITED = "exited"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    MEMORY_LIMIT = "memory-limit"
    OUTPUT_LIMIT = "output-limit"
    PROTOCOL_ERROR = "protocol-error"
    CANCELLED = "cancelled"
    WRONG_TYPE = "wrong-type"
    STRUCTURE_MISMATCH = "structure-mismatch"
    SHAPE_MISMATCH = "shape-mismatch"
    DTYPE_MISMATCH = "dtype-mismatch"
    NON_FINITE = "non-finite"
    VALUES_MISMATCH = "values-mismatch"
    FAILS_FRESH_CASES = "fails-fresh-cases"


@dataclass(frozen=True)
class CodeInfo:
    """One engine code: what it is called, what to try first, whose problem it is.

    ``title``: a short clause ("the file does not parse"), used where the code is named in running text.
    ``hint``: the hint a diagnosis with this code carries unless it knows better (a missing module, a
    catalog's fix for a known exception, the exercise's ``[feedback]``); None where the grader has no
    advice. ``{entry_point}`` in it stands for the exercise's function name (``default_hint`` fills it
    in; a literal brace is written twice).
    ``case_detail``: whether, when this diagnosis leads the report, the failing cases' detail (inputs,
    expected against actual rows, tracebacks) is shown after it; False where every case only repeats it.
    """

    code: Code
    title: str
    hint: str | None
    family: Family
    case_detail: bool = True


def _entries(*entries: CodeInfo) -> Mapping[Code, CodeInfo]:
    return MappingProxyType({entry.code: entry for entry in entries})


TABLE: Mapping[Code, CodeInfo] = _entries(
    CodeInfo(
        Code.SYNTAX_ERROR,
        "the file does not parse",
        "Fix the syntax at the line shown; the caret marks where Python gave up.",
        "submission",
    ),
    CodeInfo(
        Code.IMPORT_ERROR,
        "the file could not be imported",
        "Code at the top level runs when the file is imported: keep it to imports and definitions.",
        "submission",
    ),
    CodeInfo(
        Code.MISSING_ENTRY_POINT,
        "the entry point is missing",
        "Define a function named {entry_point!r} at the top level of the file.",
        "submission",
    ),
    CodeInfo(
        Code.NOT_ATTEMPTED,
        "not attempted yet",
        "Replace the `raise NotImplementedError` lines with your solution, then grade again.",
        "mistake",
        case_detail=False,
    ),
    CodeInfo(
        Code.EXCEPTION,
        "the function raised an exception",
        "Read the traceback of the first failing case below; the lines shown are yours.",
        "mistake",
    ),
    CodeInfo(
        Code.EXITED,
        "the submission ended the process",
        "Do not call sys.exit(), exit() or os._exit() in the submission: return the result instead.",
        "submission",
    ),
    CodeInfo(
        Code.TIMEOUT,
        "the run took longer than its time limit",
        "Look for an endless loop or a very slow computation; each case has a time limit.",
        "run",
    ),
    CodeInfo(Code.CRASHED, "the process died", "Look for unbounded memory use or deep recursion.", "run"),
    CodeInfo(
        Code.MEMORY_LIMIT,
        "the function ran out of memory",
        "Look for a structure that grows without bound, or arrays far larger than the input.",
        "run",
    ),
    CodeInfo(
        Code.OUTPUT_LIMIT,
        "the function printed or returned more than the limits allow",
        "Return only the array the exercise asks for.",
        "run",
    ),
    CodeInfo(Code.PROTOCOL_ERROR, "the result channel carried an invalid message", None, "run"),
    CodeInfo(Code.CANCELLED, "the grading was stopped before the run finished", None, "run"),
    CodeInfo(
        Code.WRONG_TYPE,
        "the function returned something other than an array",
        "Return the array itself: not a tuple, a dict of parameters, a list or None.",
        "mistake",
    ),
    CodeInfo(
        Code.STRUCTURE_MISMATCH,
        "the function returned another structure than expected",
        "Return the structure the exercise asks for: the same tuple, list or dict, with the same keys, "
        "and an array at every leaf.",
        "mistake",
    ),
    CodeInfo(
        Code.SHAPE_MISMATCH,
        "the function returned an array of the wrong shape",
        "Return an array of the shape the exercise asks for: check layer sizes and any reshaping.",
        "mistake",
    ),
    CodeInfo(
        Code.DTYPE_MISMATCH,
        "the function returned the right values in another dtype",
        "Return the model's output as it is, without casting it.",
        "mistake",
    ),
    CodeInfo(
        Code.NON_FINITE,
        "the function returned NaN or Inf values",
        "Look for a division by zero or an overflow.",
        "mistake",
    ),
    CodeInfo(
        Code.VALUES_MISMATCH,
        "values differ from the reference",
        "Compare each step with the exercise text; `grader show` prints it again.",
        "mistake",
    ),
    CodeInfo(
        Code.FAILS_FRESH_CASES,
        "the function fails fresh cases it has not seen",
        "Compute the output from the arguments alone: no outputs written into the file, no special "
        "cases for known inputs, no sizes or seeds fixed to the ones in the examples.",
        "mistake",
    ),
)


def info(code: str) -> CodeInfo | None:
    """The table's entry for ``code``; None for a code that is not the engine's (an exercise's catalog)."""
    try:
        return TABLE[Code(code)]
    except ValueError:
        return None


def default_hint(code: Code, **names: str) -> str | None:
    """The code's default hint, with the names it mentions (``entry_point``) filled in; a name it mentions
    and that is not given raises ``KeyError``, so that no placeholder reaches a report."""
    hint = TABLE[code].hint
    return None if hint is None else hint.format(**names)
