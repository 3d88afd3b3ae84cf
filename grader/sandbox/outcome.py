"""What a run of the entry point over the cases came to: the one typed outcome every runner produces.

A sandboxed child (``process.py``) and ``check()``'s in-process runner (``inprocess.py``) both hand the
pipeline a ``ChildRun``: what the run reported (hello, import, one result per case: a value tree or an
error), and how it ended (``Ending``). Judging and diagnosis read this and nothing of how it was produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from grader.sandbox.protocol import Hello, Imported, Result

Ending = Literal[
    "completed",
    "timeout",
    "crashed",
    "exited",
    "protocol-error",
    "output-limit",
    "memory-limit",
    "harness-error",
    "cancelled",
]


@dataclass
class ChildRun:
    """Everything a child reported, and how it ended."""

    hello: Hello | None = None
    imported: Imported | None = None
    results: list[Result] = field(default_factory=list)
    ending: Ending = "completed"
    phase: str = "start"
    detail: str = ""
    returncode: int | None = None
    signal: int | None = None
    elapsed_s: float = 0.0
    stray_stdout: bytes = b""
    stray_stderr: bytes = b""

    @property
    def current_case(self) -> str | None:
        return self.phase.removeprefix("case:") if self.phase.startswith("case:") else None
