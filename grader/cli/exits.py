"""How a command ends: the one place that turns the grader's exceptions into messages and exit codes.

Exit codes (a promise to CI users): 0 every case passed; 1 the submission was graded and did not pass
(status ``failed`` or ``error``); 2 usage error; 3 a fault of the grader itself; 4 the grade was made but an
output (a report, the gradebook, ``--output``) could not be written; 130 interrupted (Ctrl-C, or a signal
that ends a command as Ctrl-C does).
"""

from __future__ import annotations

import contextlib
import os
import signal
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from grader.errors import GraderError, OutputError, UsageError

if TYPE_CHECKING:  # typer waits for the first message: the launcher uses this module before it loads typer
    import typer

    from grader.report.schema import BatchReport, Report

EXIT_PASSED, EXIT_NOT_PASSED, EXIT_USAGE, EXIT_FAULT, EXIT_OUTPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
SHOWN_FAILURES = 20  # outputs not written named one by one on stderr; the rest counted

# A kind of GraderError and its exit code: the most specific kind that matches decides.
EXIT_CODES: tuple[tuple[type[GraderError], int], ...] = (
    (UsageError, EXIT_USAGE),
    (OutputError, EXIT_OUTPUT),
    (GraderError, EXIT_FAULT),
)


def exit_code_of(error: GraderError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(error, kind))


def say(message: str) -> None:
    """A message of the grader on stderr: ``grader: ...``."""
    import typer

    typer.echo(f"grader: {message}", err=True)


def fail(message: str, code: int) -> typer.Exit:
    import typer

    say(message)
    return typer.Exit(code)


def _fault(exc: BaseException) -> typer.Exit:
    if os.environ.get("GRADER_DEBUG"):
        traceback.print_exception(exc)
    return fail(f"internal error: {type(exc).__name__}: {exc} (set GRADER_DEBUG=1 for the traceback)", EXIT_FAULT)


@contextlib.contextmanager
def exit_codes() -> Iterator[None]:
    """Maps the grader's exceptions to messages on stderr and the documented exit codes."""
    try:
        yield
    except GraderError as exc:
        raise fail(str(exc), exit_code_of(exc)) from exc
    except KeyboardInterrupt:
        raise fail("interrupted", EXIT_INTERRUPTED) from None
    except Exception as exc:  # any other exception is a bug in the grader
        raise _fault(exc) from exc


@contextlib.contextmanager
def interrupted_by(*signums: signal.Signals) -> Iterator[None]:
    """While the block runs, each of ``signums`` ends it as Ctrl-C does (a cancelled CI job sends SIGTERM,
    a closed terminal SIGHUP): with KeyboardInterrupt, so that what was started is cleaned up."""

    def _stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    with _handled(_stop, signums):
        yield


@contextlib.contextmanager
def signals_ignored(*signums: signal.Signals) -> Iterator[None]:
    """While the block runs, ``signums`` are ignored: cleaning up that a second Ctrl-C would cut short."""
    with _handled(signal.SIG_IGN, signums):
        yield


@contextlib.contextmanager
def _handled(
    handler: Callable[[int, object], None] | signal.Handlers, signums: tuple[signal.Signals, ...]
) -> Iterator[None]:
    before = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, previous in before.items():
            signal.signal(signum, previous)


def report_exit_code(report: Report, *, unwritten: int = 0) -> int:
    """One submission's: 4 when an output could not be written, else 0 passed, 1 not."""
    if unwritten:
        return EXIT_OUTPUT
    return EXIT_PASSED if report.passed else EXIT_NOT_PASSED


def batch_exit_code(
    batch: BatchReport, *, unwritten: bool = False, broken: bool = False, interrupted: bool = False
) -> int:
    """130 interrupted; 4 an output could not be written; 3 the grader failed on one (or its display
    failed); 2 one could not be graded as given; 0 all passed; else 1."""
    if interrupted:
        return EXIT_INTERRUPTED
    if unwritten:
        return EXIT_OUTPUT
    if broken or batch.counts.get("fault"):
        return EXIT_FAULT
    if batch.counts.get("skipped"):
        return EXIT_USAGE
    return EXIT_PASSED if batch.all_passed else EXIT_NOT_PASSED


def say_batch_problems(
    batch: BatchReport, *, broken: list[Exception], unwritten: list[OutputError], interrupted: bool
) -> None:
    """What went wrong around a batch's gradings, on stderr: the front end's own failures, the outputs not
    written (the first ``SHOWN_FAILURES``), and how far an interrupted batch got."""
    for problem in broken:
        say(f"internal error: {type(problem).__name__}: {problem}")
    for failure in unwritten[:SHOWN_FAILURES]:
        say(str(failure))
    if len(unwritten) > SHOWN_FAILURES:
        say(f"and {len(unwritten) - SHOWN_FAILURES} more files not written")
    if interrupted:
        say(f"interrupted: {len(batch.submissions)} of {batch.total} graded and kept")
