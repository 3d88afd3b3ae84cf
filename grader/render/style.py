"""How the renderers mark things: one table for every status (its colour, symbol, word, and the emoji
Markdown shows), and the few other styles of the report for people. Every renderer reads its styles here
and nowhere else, so that a status looks the same wherever it is shown.

A status is never told by colour alone: wherever its colour is drawn, its word or its symbol is drawn with
it, so that a report reads the same with ``NO_COLOR``, in a log, or to someone who does not see colours.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType


@dataclasses.dataclass(frozen=True)
class Look:
    """How one status is shown."""

    colour: str  # a rich colour (or ``dim``, for what did not run)
    symbol: str  # one cell wide: the mark in the case table and a case's title
    ascii: str  # the symbol on a stream that cannot encode it (PYTHONIOENCODING=ascii, LANG=C)
    word: str
    emoji: str  # in Markdown (GitHub's step summary)

    @property
    def marked(self) -> str:
        """The emoji and the word, for Markdown: ``✅ passed``."""
        return f"{self.emoji} {self.word}"

    @property
    def strong(self) -> str:
        """The colour, bold: for a status the eye should find (the case table, the verdict)."""
        return f"bold {self.colour}"


# Case statuses (passed, failed, error, skipped), a report's (passed, failed, error), and a batch entry's,
# which adds fault: the grader itself failed on that submission.
LOOKS: Mapping[str, Look] = MappingProxyType(
    {
        "passed": Look("green", "✓", "+", "passed", "✅"),
        "failed": Look("red", "✗", "x", "failed", "❌"),
        "error": Look("magenta", "!", "!", "error", "⚠️"),
        "skipped": Look("dim", "-", "-", "skipped", "⏭️"),
        "fault": Look("yellow", "‼", "!", "fault", "💥"),
    }
)

# The report's other marks: none of them stands for a status.
DIAGNOSIS = "yellow"  # a named mistake's panel
HINT = "bold cyan"
EXPECTED = LOOKS["passed"].colour  # an element's expected value, beside a wrong one
WRONG = LOOKS["failed"].colour  # a wrong element's value and error, the caret under a syntax error


def look(status: str) -> Look:
    """How ``status`` is shown; a status the table does not know is a bug of the grader (``KeyError``)."""
    return LOOKS[status]
