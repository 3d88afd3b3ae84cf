"""An exercise for people: its prompt as Markdown, the function to write, and how it is graded."""

from __future__ import annotations

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

from grader.exercise.spec import Exercise


def render_exercise(exercise: Exercise, console: Console) -> None:
    spec = exercise.spec
    console.print(
        Panel(Markdown(exercise.prompt_text(), code_theme="ansi_dark"), title=f"[bold]{spec.id}[/]", title_align="left")
    )
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
    table.add_row("tolerance", f"rtol={spec.tolerance.rtol:g}, atol={spec.tolerance.atol:g}")
    console.print(table)
    console.print(f"\nGrade a file with: [bold]grader grade PATH --exercise {spec.id}[/]")
