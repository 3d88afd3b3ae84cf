"""Exercises for people, as rich renderables: one exercise (its prompt as Markdown, the function to write,
how it is graded), a hint, and the list of exercises with the learner's last result for each (or that list
as JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Protocol

from rich.console import Console, Group
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from grader.exercise.spec import Exercise


class LastResult(Protocol):
    """What the list shows of the learner's last result for an exercise (the learner's state keeps it)."""

    status: str
    score: float
    max_score: float
    path: str

    def model_dump(self) -> dict[str, object]: ...


def exercise_view(exercise: Exercise) -> Group:
    """The exercise's prompt, the function to write and how it is graded, and the command that grades it."""
    spec = exercise.spec
    prompt = Panel(
        Markdown(exercise.prompt_text(), code_theme="ansi_dark"), title=f"[bold]{spec.id}[/]", title_align="left"
    )
    grade = Text.assemble("\nGrade a file with: ", (f"grader grade PATH --exercise {spec.id}", "bold"))
    return Group(prompt, _how_graded(exercise), grade)


def _how_graded(exercise: Exercise) -> Table:
    spec = exercise.spec
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("write", f"def {spec.entry_point.signature}")
    for param in spec.entry_point.parameters:
        kind = f"{param.type} ({param.dtype})" if param.dtype else param.type
        table.add_row("", f"{param.name}: {kind} — {param.description}")
    table.add_row("returns", spec.entry_point.returns_text)
    expanded = " × ".join(f"{len(e.values)} {name} values" for name, e in spec.expand.items())
    table.add_row("graded on", f"{len(spec.cases)} inputs" + (f", each with {expanded}" if expanded else ""))
    hidden = sum(case.hidden for case in spec.cases)
    if hidden:
        table.add_row("", f"{hidden} of them hidden: you see whether they pass, not their inputs")
    fresh = sum(generator.count for generator in spec.generators)
    if fresh:
        table.add_row("", f"with --seed N, {fresh} more inputs made fresh from N (a course may grade with one)")
    table.add_row(
        "tolerance",
        f"rtol={spec.tolerance.rtol:g}, atol={spec.tolerance.atol:g}, plus what float rounding allows at the "
        "outputs' scale",
    )
    for path, (rtol, atol) in spec.leaf_tolerances().items():
        table.add_row("", f"{path}: rtol={rtol:g}, atol={atol:g}")
    return table


def hint_view(number: int, total: int, text: str) -> Group:
    """Hint ``number`` of ``total``: its Markdown under a heading."""
    return Group(Text(f"Hint {number} of {total}", style="bold"), Markdown(text))


def exercises_table(exercises: Iterable[Exercise], last: Mapping[str, LastResult]) -> Table:
    """One row per exercise: its id, title, entry point, and the learner's last result for it."""
    table = Table("id", "title", "entry point", "your last result", title="Exercises")
    for exercise in exercises:
        result = last.get(exercise.id)
        shown = f"{result.status} {result.score:g}/{result.max_score:g} ({result.path})" if result else "not graded yet"
        table.add_row(exercise.id, exercise.spec.title, exercise.spec.entry_point.signature, shown)
    return table


def exercises_json(exercises: Iterable[Exercise], last: Mapping[str, LastResult]) -> str:
    """The same list as JSON, for scripts."""
    rows = [
        {
            "id": exercise.id,
            "title": exercise.spec.title,
            "entry_point": exercise.spec.entry_point.signature,
            "last_result": last[exercise.id].model_dump() if exercise.id in last else None,
        }
        for exercise in exercises
    ]
    return json.dumps(rows, indent=2)


def render_exercise(exercise: Exercise, console: Console) -> None:
    """Prints the exercise on ``console`` (``exercise_view``)."""
    console.print(exercise_view(exercise))
