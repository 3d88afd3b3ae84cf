"""Faults of the tool or of an exercise, as opposed to mistakes in a submission.

A submission's mistakes are never exceptions: they become failed cases and diagnoses in the report.
Everything here is a ``GraderError``; only the CLI turns these into messages and exit codes.
"""

from __future__ import annotations


class GraderError(Exception):
    """Something is wrong with the grader, its configuration or an exercise: not the learner's doing."""


class UsageError(GraderError):
    """The command was asked for something that cannot be done: no such file, unknown exercise."""


class SpecError(GraderError):
    """An exercise spec is malformed. The message names the file and the field."""


class ReferenceSolutionError(GraderError):
    """The reference solution failed to produce the expected outputs.

    ``transient``: the run ended early (a timeout, a crash, a cancel), which another run may not repeat.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class SandboxError(GraderError):
    """A child process could not be started or supervised."""


class OutputError(GraderError):
    """An output (a report, the gradebook or its journal, the batch's document) could not be written. The
    grades stand; the CLI names the file and exits with its own code (4)."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = str(path)
